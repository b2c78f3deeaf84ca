"""Checks of manager.conf (with its includes) against what the recorder needs and its own config.

The classes the recorder's AMI user needs are the ones ``etc/manager.conf.d/pbx-recorder.conf``
grants, each for a named reason there; ``tests/unit/test_asterisk_check.py`` holds these
constants to that file.  Secrets are compared with ``hmac.compare_digest`` and never printed.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pbx_recorder.asterisk_check import acl_rules
from pbx_recorder.asterisk_check.conf_tree import ConfTree, Origin, Section
from pbx_recorder.asterisk_check.findings import ERROR, INFO, OK, WARNING, Finding
from pbx_recorder.config.model import AmiConfig
from pbx_recorder.config.secret import Secret

REQUIRED_READ = frozenset({"system", "call", "cdr", "dialplan", "agent", "user"})
REQUIRED_WRITE = frozenset({"system", "call"})
#: classes that let the account do far more than record (run CLI commands, place calls, edit config)
DANGEROUS = frozenset({"originate", "command", "config", "all"})
#: every class manager.c knows (``perms[]``); another word is ignored by Asterisk
KNOWN_CLASSES = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
                           "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test",
                           "security", "message", "all"})
PLACEHOLDER_SECRET = "CHANGE-ME-use-openssl-rand"  #: the shipped example's value
_TRUE = {"yes", "true", "y", "t", "1", "on"}  #: Asterisk's ast_true()
USER_FILE = "etc/manager.conf.d/pbx-recorder.conf"


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False


def classes(value: str) -> set[str]:
    return {c.strip().lower() for c in value.split(",") if c.strip() and c.strip().lower() != "none"}


#: addresses that stand for "anybody else" when an ACL is tried (documentation ranges, RFC 5737 / 3849)
OTHER_V4, OTHER_V6 = "203.0.113.7", "2001:db8::7"


@dataclass(frozen=True)
class Source:
    """Where Asterisk sees the recorder's AMI connection come from: the addresses it may use (the
    connection tries ``pbx.ami.host``'s addresses in order), and whether the admin gave it
    (``--recorder-address``) or this host worked it out (NAT or a proxy may show Asterisk another)."""

    addresses: list[str] = field(default_factory=list)
    given: bool = False


def check_manager(tree: ConfTree, ami: AmiConfig, acl_conf: ConfTree | None = None,
                  source: Source | None = None) -> Iterator[Finding]:
    """``acl_conf``: acl.conf (its named ACLs), None when there is none; ``source``: the addresses
    the recorder's AMI connection may come from."""
    general = tree.section("general")
    where = str(general.origin) if general else str(tree.path)
    yield from _general(general, where, ami)
    user = tree.section(ami.username)
    if user is None:
        users = sorted(s.name for s in tree.sections if not s.template and s.name != "general")
        yield Finding("ami-user-missing", ERROR, str(tree.path),
                      f"no [{ami.username}] user (pbx.ami.username); "
                      f"users found: {', '.join(users) or 'none'}",
                      f"add the user from {USER_FILE} (or set pbx.ami.username to the right one)")
        return
    yield Finding("ami-user", OK, str(user.origin), f"AMI user [{ami.username}] found")
    yield from _classes(user, "read", REQUIRED_READ)
    yield from _classes(user, "write", REQUIRED_WRITE)
    bind = general.last("bindaddr") if general else None
    yield from _acl(user, ami, acl_conf, source or Source(), (bind[0] if bind else "0.0.0.0").strip())
    yield from _secret(user, ami.secret)


def _general(general: Section | None, where: str, ami: AmiConfig) -> Iterator[Finding]:
    def value(name: str) -> tuple[str | None, str]:
        found = general.last(name) if general else None
        return (found[0], str(found[1])) if found else (None, where)

    enabled, at = value("enabled")
    if is_true(enabled):
        yield Finding("ami-enabled", OK, at, "AMI is enabled")
    else:
        yield Finding("ami-enabled", ERROR, at, "[general] enabled is not yes: the AMI is off",
                      "set `enabled = yes` in [general] of manager.conf, then `manager reload`")
    stamps, at = value("timestampevents")
    if is_true(stamps):
        yield Finding("ami-timestampevents", OK, at, "events carry Asterisk's time")
    else:
        yield Finding("ami-timestampevents", WARNING, at,
                      "timestampevents is not yes: the catalog's call times are the times the recorder "
                      "read the events (README \"1. The AMI account\")",
                      "set `timestampevents = yes` in [general] of manager.conf itself")
    port, at = value("port")
    if (port or "5038").strip() != str(ami.port):
        yield Finding("ami-port", ERROR, at, f"AMI listens on port {port or '5038 (default)'}, the recorder "
                      f"connects to {ami.port} (pbx.ami.port)", "make pbx.ami.port and [general] port agree")
    bind, at = value("bindaddr")
    bind = (bind or "0.0.0.0").strip()
    if is_loopback(ami.host) and not is_loopback(bind):
        yield Finding("ami-bindaddr", WARNING, at,
                      f"AMI listens on {bind}, but the recorder connects over loopback ({ami.host})",
                      "set `bindaddr = 127.0.0.1` in [general] of manager.conf")
    elif not is_loopback(ami.host) and is_loopback(bind):
        yield Finding("ami-bindaddr", ERROR, at, f"AMI listens on {bind} only, the recorder connects to "
                      f"{ami.host} (pbx.ami.host)", "set bindaddr to the address the recorder reaches")
    else:
        yield Finding("ami-bindaddr", OK, at, f"AMI listens on {bind}")


def _classes(user: Section, kind: str, required: frozenset[str]) -> Iterator[Finding]:
    found = user.last(kind)
    at = str(found[1]) if found else str(user.origin)
    granted = classes(found[0]) if found else set()
    covered = required if "all" in granted else required & granted
    missing = sorted(required - covered)
    if missing:
        yield Finding(f"ami-{kind}-missing", ERROR, at,
                      f"{kind} lacks {', '.join(missing)} (needed: {', '.join(sorted(required))})",
                      f"set `{kind} = {','.join(sorted(required))}` as in {USER_FILE}")
    else:
        yield Finding(f"ami-{kind}", OK, at, f"{kind} covers {', '.join(sorted(required))}")
    dangerous = sorted((granted - required) & DANGEROUS)
    if dangerous:
        yield Finding(f"ami-{kind}-dangerous", WARNING, at,
                      f"{kind} also grants {', '.join(dangerous)}: far more than recording needs",
                      f"set `{kind} = {','.join(sorted(required))}` as in {USER_FILE}")
    other = sorted((granted & KNOWN_CLASSES) - required - DANGEROUS)
    if other:
        yield Finding(f"ami-{kind}-extra", INFO, at, f"{kind} also grants {', '.join(other)} (not needed)",
                      f"remove {', '.join(other)} from {kind}")
    unknown = sorted(granted - KNOWN_CLASSES)
    if unknown:
        yield Finding(f"ami-{kind}-unknown", WARNING, at, f"{kind}: {', '.join(unknown)} is not an AMI class "
                      "(Asterisk ignores it)", "check the spelling against `manager show settings`")


def _named(acl_conf: ConfTree | None) -> tuple[dict[str, tuple[acl_rules.Rule, ...]] | None, str, str]:
    """acl.conf's named ACLs, or None (with why and where) when Asterisk would not load it."""
    if acl_conf is None:
        return None, "there is no acl.conf", ""
    try:
        return acl_rules.named_acls((s.name, s.items) for s in acl_conf.sections if not s.template), "", ""
    except acl_rules.AclSyntaxError as exc:
        return None, f"acl.conf is refused whole ({exc})", str(exc.where or acl_conf.path)


def _permit_fix(address: str) -> str:
    return f"add `permit = {address}/{128 if ':' in address else 32}` after the deny line (or to that ACL)"


def _acl(user: Section, ami: AmiConfig, acl_conf: ConfTree | None, source: Source,
         bind: str) -> Iterator[Finding]:
    """The user's ACLs applied as Asterisk applies them (``acl_rules``): to the recorder's address
    (refused: it cannot log in), and to an address of nobody's (let in: anybody may log in)."""
    lines = [(key, value, where) for key, value, where in user.items if key in ("permit", "deny", "acl")]
    at = str(lines[0][2] if lines else user.origin)
    for key, value, where in lines:
        if key in ("permit", "deny") and acl_rules.blanks_after_commas(value):
            yield Finding("ami-acl-blank", WARNING, str(where), f"`{key} = {value}`: a blank after a comma "
                          "reaches the C library, which refuses that address (and manager.c the user)",
                          "write the list without blanks: `permit = 10.0.0.0/8,192.168.0.0/16`")
    named, why_not, where_not = _named(acl_conf)
    if named is None and any(key == "acl" for key, _, _ in lines):
        yield Finding("ami-acl-conf", ERROR, where_not or at,
                      f"{why_not}: after a restart Asterisk has no named ACL, and every `acl =` of this "
                      "user lets any address in", "fix acl.conf (every section's rules), then `acl reload`")
    try:
        acls = acl_rules.user_acls(lines, named)
    except acl_rules.AclSyntaxError as exc:
        yield Finding("ami-acl-invalid", ERROR, str(exc.where or at), f"{exc}: Asterisk does not accept this "
                      "and drops the user", "write each rule as `address[/mask]` (mask: a prefix length "
                      "or 255.255.255.0), each named ACL once")
        return
    for acl in acls:
        if not acl.found:
            yield Finding("ami-acl-unknown", ERROR, at,
                          f"acl = {acl.name}: acl.conf has no [{acl.name}] (names are case-sensitive), so "
                          "Asterisk refuses every address to this user (unless it comes from realtime)",
                          f"add [{acl.name}] with its permit/deny lines to acl.conf, or remove it")
    yield from _recorder_passes(acls, source, ami, at)
    if acl_rules.refused_by(acls, OTHER_V4) is None:
        severity = WARNING if is_loopback(ami.host) else ERROR
        yield Finding("ami-acl", severity, at,
                      "the user may log in from any address AMI listens on (its ACL lets "
                      f"{OTHER_V4} in)" if acls else
                      "no deny/permit pair: the user may log in from any address AMI listens on",
                      "add `deny = 0.0.0.0/0.0.0.0` and `permit = <recorder address>/255.255.255.255`")
    elif ":" in bind and acl_rules.refused_by(acls, OTHER_V6) is None:
        yield Finding("ami-acl", WARNING, at, f"AMI listens on IPv6 ({bind}) and the user's ACL lets any "
                      f"IPv6 address in ({OTHER_V6}): IPv4 rules do not apply to IPv6 clients",
                      "add `deny = ::/0` (and a permit for the recorder's IPv6 address if it uses one)")
    else:
        yield Finding("ami-acl", OK, at, "the user is limited to permitted addresses")


def _recorder_passes(acls: list[acl_rules.Acl], source: Source, ami: AmiConfig, at: str) -> Iterator[Finding]:
    """Does one of the addresses the recorder's connection may come from pass every ACL?  An error
    when the admin gave the address or the recorder connects over loopback (no NAT between);
    otherwise a warning: this host's view may not be what Asterisk sees."""
    if not source.addresses:
        yield Finding("ami-acl-recorder", INFO, at, f"could not tell the address the recorder connects to "
                      f"{ami.host} from", "run the check with --recorder-address IP")
        return
    passing = [a for a in source.addresses if acl_rules.refused_by(acls, a) is None]
    if passing:
        yield Finding("ami-acl-recorder", OK, at, f"the recorder's address {passing[0]} may log in")
        return
    first = source.addresses[0]
    refusing = acl_rules.refused_by(acls, first)
    which = f"ACL [{refusing.name}]" if refusing is not None and refusing.name else "its permit/deny lines"
    shown = ", ".join(source.addresses)
    if source.given or is_loopback(ami.host):
        yield Finding("ami-acl-recorder", ERROR, at,
                      f"the recorder's address {shown} is refused by {which}: it cannot log in",
                      _permit_fix(first))
    else:
        yield Finding("ami-acl-recorder", WARNING, at,
                      f"this host's address toward {ami.host} ({shown}) is refused by {which}; if Asterisk "
                      "sees the recorder so, it cannot log in (NAT or a proxy may show it another)",
                      _permit_fix(first) + ", or run the check with --recorder-address IP")


def world_readable(path: str) -> bool | None:
    """True/False for a file's mode; None when it cannot be looked at."""
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return None


def secret_file(secret: Secret) -> str | None:
    """The file the recorder read its AMI secret from (a ``*_file`` key or the config file itself)."""
    source = secret.source
    if source.startswith("file "):
        return source[len("file "):]
    return source if os.path.isabs(source) else None  # "env NAME" / "inline": no file


def _secret(user: Section, secret: Secret | None) -> Iterator[Finding]:
    found = user.last("secret")
    if found is None:
        yield Finding("ami-secret-missing", ERROR, str(user.origin), "the user has no secret",
                      "set `secret = ` to the value of the recorder's pbx.ami.secret_file")
        return
    value, where = found
    yield from _mode(where, "the Asterisk file holding the AMI secret", "0640 root:asterisk")
    if secret is None:
        yield Finding("ami-secret-mismatch", ERROR, str(where),
                      "the recorder has no AMI secret (pbx.ami.secret)",
                      "set pbx.ami.secret_file to a file holding the user's secret")
        return
    if hmac.compare_digest(value.encode(), PLACEHOLDER_SECRET.encode()):
        yield Finding("ami-secret-placeholder", ERROR, str(where),
                      "the secret is still the shipped example's",
                      "generate one (openssl rand -base64 32) and put it in both files")
    if hmac.compare_digest(value.encode(), secret.reveal().encode()):
        yield Finding("ami-secret", OK, str(where), "the secret equals the recorder's (not shown)")
    else:
        yield Finding("ami-secret-mismatch", ERROR, str(where),
                      f"the secret differs from the recorder's ({secret.source}); neither is shown",
                      "copy the recorder's secret file content into `secret =`, then `manager reload`")
    path = secret_file(secret)
    if path is not None:
        yield from _mode(Origin(path, 0), "the recorder's file holding the AMI secret", "0600 pbx-recorder")


def _mode(where: Origin, what: str, wanted: str) -> Iterator[Finding]:
    label = str(where) if where.line else where.file
    readable = world_readable(where.file)
    if readable:
        yield Finding("ami-secret-world-readable", ERROR, label, f"{what} is readable by every local user",
                      f"chmod o-rwx {Path(where.file)} (it should be {wanted})")
    elif readable is False:
        yield Finding("ami-secret-file-mode", OK, label, f"{what} is not world-readable")
