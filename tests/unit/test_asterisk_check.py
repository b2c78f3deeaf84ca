"""``pbx-recorder asterisk check`` over sample Asterisk trees in tmp_path (no Asterisk needed).

The sample starts from the shipped files (etc/manager.conf.d, dialplan/asterisk), so a change to
them that the check would flag shows up here.
"""

import json
import shutil
from ipaddress import ip_address
from pathlib import Path

import pytest

from pbx_recorder.asterisk_check.conf_tree import read_tree
from pbx_recorder.asterisk_check.dialplan_checks import GLOBALS, SUBROUTINES
from pbx_recorder.asterisk_check.manager_checks import REQUIRED_READ, REQUIRED_WRITE, classes
from pbx_recorder.cli import main, privilege

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Value-9"
OTHER = "0ther-Secret-7"


def test_required_classes_are_the_shipped_users(tmp_path):
    tree = read_tree(REPO / "etc" / "manager.conf.d" / "pbx-recorder.conf", tmp_path)
    user = tree.section("pbx-recorder")
    assert classes(user.last("read")[0]) == REQUIRED_READ
    assert classes(user.last("write")[0]) == REQUIRED_WRITE


def test_subroutines_and_globals_are_the_shipped_snippets(tmp_path):
    snippet = read_tree(REPO / "dialplan" / "asterisk" / "pbx-recorder.conf", tmp_path)
    assert tuple(s.name for s in snippet.sections) == SUBROUTINES
    text = (REPO / "dialplan" / "asterisk" / "pbx-recorder-globals.conf").read_text()
    names = tuple(line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith(";"))
    assert names == GLOBALS


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A correct installation: /etc/asterisk-like folder and the recorder's config."""
    monkeypatch.setattr(privilege, "os_user", lambda: (0, "root"))
    etc, rec = tmp_path / "asterisk", tmp_path / "rec"
    (etc / "manager.d").mkdir(parents=True)
    rec.mkdir()
    user = (REPO / "etc" / "manager.conf.d" / "pbx-recorder.conf").read_text()
    (etc / "manager.d" / "pbx-recorder.conf").write_text(user.replace("CHANGE-ME-use-openssl-rand", SECRET))
    (etc / "manager.d" / "pbx-recorder.conf").chmod(0o640)
    (etc / "manager.conf").write_text("[general]\nenabled = yes\nbindaddr = 127.0.0.1\n"
                                      "timestampevents = yes\n#include \"manager.d/*.conf\"\n")
    for name in ("pbx-recorder.conf", "pbx-recorder-globals.conf"):
        shutil.copy(REPO / "dialplan" / "asterisk" / name, etc / name)
    (etc / "extensions.conf").write_text(
        "[globals]\n#include \"pbx-recorder-globals.conf\"\n\n#include \"pbx-recorder.conf\"\n\n"
        "[from-trunk]\nexten => _X.,1,Gosub(pbx-recorder-consent,s,1(inbound,${EXTEN},,cn))\n"
        " same => n,Dial(PJSIP/${EXTEN}@office,30)\n")
    (rec / "ami.secret").write_text(SECRET + "\n")
    (rec / "ami.secret").chmod(0o600)
    (rec / "r.yaml").write_text(
        f"timezone: UTC\ncatalog:\n  path: {rec / 'cat.db'}\nstorage:\n  tiers:\n"
        f"    hot: {{type: local, path: {rec / 'hot'}}}\n  hot: hot\n  cold: null\n"
        f"pbx:\n  ami:\n    secret_file: {rec / 'ami.secret'}\n")
    return etc, rec


def run(site, capsys, *extra):
    etc, rec = site
    code = main(["--config", str(rec / "r.yaml"), "asterisk", "check", "--etc", str(etc), "--json", *extra])
    out = capsys.readouterr()
    report = json.loads(out.out) if out.out.strip() else {"findings": []}
    assert "Traceback" not in out.err
    return code, {f["code"]: f for f in report["findings"]}, out


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_correct_site_passes(site, capsys):
    code, found, _ = run(site, capsys)
    assert code == 0
    assert {f["severity"] for f in found.values()} == {"ok"}
    assert {"ami-enabled", "ami-timestampevents", "ami-read", "ami-write", "ami-acl", "ami-secret",
            "dialplan-snippet", "dialplan-gosub", "dialplan-agi"} <= set(found)


def test_general_section_findings(site, capsys):
    etc, _ = site
    edit(etc / "manager.conf", "enabled = yes\nbindaddr = 127.0.0.1\ntimestampevents = yes\n",
         "port = 5039\n")
    code, found, _ = run(site, capsys)
    assert code == 1
    assert found["ami-enabled"]["severity"] == "error"
    assert found["ami-timestampevents"]["severity"] == "warning"
    assert found["ami-bindaddr"]["severity"] == "warning"  # all interfaces, recorder on loopback
    assert found["ami-port"]["severity"] == "error"
    assert all(f["fix"] for f in found.values() if f["severity"] != "ok")


def test_remote_recorder_needs_a_reachable_bindaddr(site, capsys):
    _, rec = site
    edit(rec / "r.yaml", "  ami:\n", "  ami:\n    host: 10.1.2.3\n")
    code, found, _ = run(site, capsys)
    assert code == 1 and found["ami-bindaddr"]["severity"] == "error"


def test_classes_missing_and_dangerous(site, capsys):
    etc, _ = site
    user = etc / "manager.d" / "pbx-recorder.conf"
    edit(user, "read = system,call,cdr,dialplan,agent,user", "read = system,call,reporting")
    edit(user, "write = system,call", "write = system,call,originate,command,bogus")
    code, found, _ = run(site, capsys)
    assert code == 1
    assert found["ami-read-missing"]["severity"] == "error"
    assert "agent, cdr, dialplan, user" in found["ami-read-missing"]["message"]
    assert found["ami-read-extra"]["severity"] == "info"
    assert found["ami-write-dangerous"]["severity"] == "warning"
    assert "command, originate" in found["ami-write-dangerous"]["message"]
    assert found["ami-write-unknown"]["severity"] == "warning"


def test_all_covers_but_warns(site, capsys):
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", "write = system,call", "write = all")
    code, found, _ = run(site, capsys)
    assert code == 0
    assert found["ami-write"]["severity"] == "ok"
    assert found["ami-write-dangerous"]["severity"] == "warning"


def test_template_user_is_resolved(site, capsys):
    etc, _ = site
    user = etc / "manager.d" / "pbx-recorder.conf"
    edit(user, "[pbx-recorder]\n", "[rec-tpl](!)\nwrite = system,call\n[pbx-recorder](rec-tpl)\n")
    edit(user, "write = system,call\n\n", "\n")
    code, found, _ = run(site, capsys)
    assert code == 0 and found["ami-write"]["severity"] == "ok"


def test_acl_missing(site, capsys):
    etc, _ = site
    user = etc / "manager.d" / "pbx-recorder.conf"
    edit(user, "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n", "")
    code, found, _ = run(site, capsys)
    assert code == 0 and found["ami-acl"]["severity"] == "warning"  # loopback only: a warning


def test_secret_mismatch_prints_neither_secret(site, capsys):
    _, rec = site
    (rec / "ami.secret").write_text(OTHER)
    code, found, out = run(site, capsys)
    assert code == 1 and found["ami-secret-mismatch"]["severity"] == "error"
    etc, _ = site
    code = main(["--config", str(rec / "r.yaml"), "asterisk", "check", "--etc", str(etc)])
    table = capsys.readouterr()
    assert code == 1
    for text in (out.out, out.err, table.out, table.err):
        assert SECRET not in text and OTHER not in text


def test_world_readable_secret_files(site, capsys):
    etc, rec = site
    (etc / "manager.d" / "pbx-recorder.conf").chmod(0o644)
    (rec / "ami.secret").chmod(0o644)
    code, found, out = run(site, capsys)
    assert code == 1
    report = json.loads(out.out)["findings"]
    flagged = [f["where"] for f in report if f["code"] == "ami-secret-world-readable"]
    assert len(flagged) == 2 and flagged[1] == str(rec / "ami.secret")


def test_user_missing_names_the_users_found(site, capsys):
    etc, rec = site
    edit(rec / "r.yaml", "  ami:\n", "  ami:\n    username: other\n")
    code, found, _ = run(site, capsys)
    assert code == 1 and "pbx-recorder" in found["ami-user-missing"]["message"]


def test_dialplan_not_included_nor_called(site, capsys):
    etc, _ = site
    (etc / "extensions.conf").write_text("[globals]\n\n[from-trunk]\nexten => _X.,1,Dial(PJSIP/x)\n")
    code, found, _ = run(site, capsys)
    assert code == 1
    assert found["dialplan-snippet-missing"]["severity"] == "error"
    assert found["dialplan-globals-missing"]["severity"] == "error"


def test_dialplan_included_but_never_called_and_wrong_port(site, capsys):
    etc, _ = site
    edit(etc / "extensions.conf", "Gosub(pbx-recorder-consent,s,1(inbound,${EXTEN},,cn))", "NoOp()")
    edit(etc / "pbx-recorder-globals.conf", "PBXREC_AGI_PORT=4573", "PBXREC_AGI_PORT=4574")
    code, found, _ = run(site, capsys)
    assert code == 1
    assert found["dialplan-gosub-missing"]["severity"] == "error"
    assert found["dialplan-agi-port"]["severity"] == "error"


def test_gosubif_counts_as_a_call(site, capsys):
    etc, _ = site
    edit(etc / "extensions.conf", "Gosub(pbx-recorder-consent,",
         "GosubIf($[${LEN(${X})} > 0]?pbx-recorder-consent,")
    code, found, _ = run(site, capsys)
    assert code == 0 and found["dialplan-gosub"]["severity"] == "ok"


def test_include_problems_are_findings(site, capsys):
    etc, _ = site
    edit(etc / "manager.conf", "#include", "#exec /usr/bin/true\n#include \"nosuch.conf\"\n#include")
    code, found, _ = run(site, capsys)
    assert code == 1
    assert found["include-missing"]["severity"] == "error"
    assert found["exec-not-followed"]["severity"] == "warning"


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, b"[general\n", b"x" * (4 * 1024 * 1024 + 1)])
def test_unreadable_manager_conf_exits_2_and_still_checks_the_dialplan(site, capsys, content):
    etc, _ = site
    (etc / "manager.conf").write_bytes(content)
    code, found, out = run(site, capsys)
    assert code == 2
    assert found["unreadable"]["where"] == str(etc / "manager.conf")
    assert found["dialplan-gosub"]["severity"] == "ok"
    assert "error:" in out.err


def test_missing_etc_exits_2(site, capsys, tmp_path):
    _, rec = site
    code = main(["--config", str(rec / "r.yaml"), "asterisk", "check", "--etc", str(tmp_path / "nosuch")])
    out = capsys.readouterr()
    assert code == 2 and "cannot read" in out.out and "Traceback" not in out.err


def test_a_bad_recorder_config_exits_2(site, capsys):
    etc, rec = site
    (rec / "ami.secret").unlink()
    code = main(["--config", str(rec / "r.yaml"), "asterisk", "check", "--etc", str(etc)])
    assert code == 2 and "secret" in capsys.readouterr().err


def test_help_does_not_import_pyst2():
    """README "CLI start time": pyst2 is imported by the check itself, not by the CLI or --help."""
    import subprocess
    import sys
    code = ("import sys; from pbx_recorder.cli import main; main(['asterisk', 'check', '--help']); "
            "print('pyst2' if 'asterisk.config' in sys.modules else 'clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("clean"), out.stderr


# -- the AMI user's ACL applied as Asterisk applies it (asterisk_check/acl_rules.py) -----------
ACL_LINES = "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"


def test_a_permit_that_leaves_out_the_recorder_is_an_error(site, capsys):
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES, "deny = 0.0.0.0/0\npermit = 10.9.9.9\n")
    code, found, _ = run(site, capsys)
    assert code == 1
    assert found["ami-acl-recorder"]["severity"] == "error"
    assert "127.0.0.1 is refused by its permit/deny lines" in found["ami-acl-recorder"]["message"]
    assert found["ami-acl"]["severity"] == "ok"  # nobody else gets in either


def test_a_deny_permit_pair_that_lets_everybody_in_is_not_taken_for_a_limit(site, capsys):
    """Before, any deny line beside a permit line passed as "limited"; the last matching rule wins."""
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES,
         "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\npermit = 0.0.0.0/0\n")
    code, found, _ = run(site, capsys)
    assert found["ami-acl"]["severity"] == "warning" and "203.0.113.7" in found["ami-acl"]["message"]
    assert found["ami-acl-recorder"]["severity"] == "ok"


def test_named_acls_are_read_from_acl_conf(site, capsys):
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES, "acl = recorder-only\n")
    (etc / "acl.conf").write_text("[recorder-only]\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.0/8\n")
    code, found, _ = run(site, capsys)
    assert code == 0 and found["ami-acl"]["severity"] == "ok"
    assert found["ami-acl-recorder"]["severity"] == "ok"
    (etc / "acl.conf").write_text("[Recorder-Only]\ndeny = 0.0.0.0/0.0.0.0\n")  # names are case-sensitive
    code, found, _ = run(site, capsys)
    assert code == 1
    assert found["ami-acl-unknown"]["severity"] == "error"
    assert "acl.conf has no [recorder-only]" in found["ami-acl-unknown"]["message"]
    assert found["ami-acl-recorder"]["severity"] == "error"  # Asterisk refuses every address then


def test_a_named_acl_without_a_loadable_acl_conf_lets_everybody_in(site, capsys):
    """Asterisk loads acl.conf whole or not at all; not loaded, a named ACL holds no rule."""
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES, "acl = recorder-only\n")
    code, found, _ = run(site, capsys)  # no acl.conf at all
    assert code == 1 and found["ami-acl-conf"]["severity"] == "error"
    assert found["ami-acl"]["severity"] == "warning"  # anybody gets in
    (etc / "acl.conf").write_text("[recorder-only]\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1\n"
                                  "[office]\npermit = 10.0.0.0/33\n")  # another section's bad rule
    code, found, _ = run(site, capsys)
    assert code == 1 and "acl.conf is refused whole" in found["ami-acl-conf"]["message"]
    assert found["ami-acl-conf"]["where"].endswith("acl.conf:5")


def test_the_recorder_address_can_be_given(site, capsys):
    code, found, _ = run(site, capsys, "--recorder-address", "10.9.9.9")
    assert code == 1 and found["ami-acl-recorder"]["severity"] == "error"
    assert "permit = 10.9.9.9/32" in found["ami-acl-recorder"]["fix"]
    code, found, _ = run(site, capsys, "--recorder-address", "::1")
    assert found["ami-acl-recorder"]["severity"] == "ok"  # IPv4 rules do not apply to IPv6
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES, ACL_LINES + "deny = ::/0\n")
    code, found, _ = run(site, capsys, "--recorder-address", "::1")
    assert "permit = ::1/128" in found["ami-acl-recorder"]["fix"]
    assert run(site, capsys, "--recorder-address", "no-address")[0] == 2  # a usage error


def test_a_remote_recorder_refused_as_this_host_sees_it_is_a_warning(site, capsys, monkeypatch):
    """Across NAT or a proxy Asterisk may see another address than this host's: an error only when
    the address is given or the connection is over loopback."""
    import pbx_recorder.asterisk_check as check

    _, rec = site
    edit(rec / "r.yaml", "  ami:\n", "  ami:\n    host: 10.1.2.3\n")
    monkeypatch.setattr(check, "recorder_addresses", lambda host, port: ["10.1.2.50"])
    code, found, _ = run(site, capsys)
    assert found["ami-acl-recorder"]["severity"] == "warning"
    assert "--recorder-address" in found["ami-acl-recorder"]["fix"]
    monkeypatch.setattr(check, "recorder_addresses", lambda host, port: ["::1", "127.0.0.1"])
    edit(rec / "r.yaml", "    host: 10.1.2.3\n", "    host: localhost\n")
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES, ACL_LINES + "deny = ::/0\n")
    code, found, _ = run(site, capsys)  # localhost resolves to ::1 first; the connection falls back
    assert found["ami-acl-recorder"]["severity"] == "ok"
    assert "127.0.0.1" in found["ami-acl-recorder"]["message"]


def test_a_list_with_blanks_after_commas_is_warned_and_still_read(site, capsys):
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES,
         "deny = 0.0.0.0/0\npermit = 10.0.0.1, 127.0.0.1\n")
    code, found, _ = run(site, capsys)
    assert found["ami-acl-blank"]["severity"] == "warning"
    assert found["ami-acl-recorder"]["severity"] == "ok"


def test_a_rule_asterisk_does_not_accept_is_an_error(site, capsys):
    etc, _ = site
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES, "deny = 0.0.0.0/0\npermit = 127.0.0.1/33\n")
    code, found, _ = run(site, capsys)
    assert code == 1 and found["ami-acl-invalid"]["severity"] == "error"


def test_ipv4_rules_do_not_limit_ipv6_clients(site, capsys):
    etc, _ = site
    edit(etc / "manager.conf", "bindaddr = 127.0.0.1", "bindaddr = ::")
    code, found, _ = run(site, capsys)
    assert found["ami-acl"]["severity"] == "warning" and "IPv6" in found["ami-acl"]["message"]
    edit(etc / "manager.d" / "pbx-recorder.conf", ACL_LINES, ACL_LINES + "deny = ::/0\n")
    code, found, _ = run(site, capsys)
    assert found["ami-acl"]["severity"] == "ok"


def test_acl_rules_as_asterisk_applies_them():
    from pbx_recorder.asterisk_check.acl_rules import Acl, AclSyntaxError, parse_rules, passes, user_acls

    acl = Acl("", tuple(parse_rules("deny", "0.0.0.0/0")
                        + parse_rules("permit", "10.0.0.0/255.0.0.0, 192.0.2.5")
                        + parse_rules("deny", "10.1.0.0/16")))
    ok = [a for a in ("10.2.3.4", "192.0.2.5", "::ffff:10.2.3.4") if passes(acl, ip_address(a))]
    assert ok == ["10.2.3.4", "192.0.2.5", "::ffff:10.2.3.4"]  # an IPv4-mapped address takes IPv4 rules
    assert not passes(acl, ip_address("10.1.9.9"))  # the last matching rule wins
    assert not passes(acl, ip_address("192.0.2.6"))
    assert passes(acl, ip_address("2001:db8::1"))  # no IPv6 rule: IPv6 is let in
    inverted = Acl("", tuple(parse_rules("permit", "!10.0.0.0/8")))
    assert not passes(inverted, ip_address("10.0.0.1")) and passes(inverted, ip_address("11.0.0.1"))
    assert not passes(Acl("x", (), found=False), ip_address("127.0.0.1"))  # a missing named ACL
    both = user_acls([("acl", "a, b", None), ("permit", "127.0.0.1", None)],
                     {"a": tuple(parse_rules("deny", "0.0.0.0/0")), "b": ()})
    assert [a.name for a in both] == ["", "a", "b"]
    for bad in ("10.0.0.0/33", "10.0.0.300", "10.0.0.0/ffff::", "host.example", "10.0.0.0/\u00b2",
                "!!10.0.0.1"):
        with pytest.raises(AclSyntaxError):
            parse_rules("permit", bad)
    for good, net in (("[2001:db8::]/32", "2001:db8::5"), ("192.168.001.0/24", "192.168.1.9")):
        assert passes(Acl("", tuple(parse_rules("deny", "0.0.0.0/0,::/0") + parse_rules("permit", good))),
                      ip_address(net))
    with pytest.raises(AclSyntaxError, match="given twice"):
        user_acls([("acl", "a,a", None)], {"a": ()})
