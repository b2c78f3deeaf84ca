import json
import time

import pytest
from click.testing import CliRunner

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import cli, main


@pytest.fixture
def setup(tmp_path, monkeypatch):
    db = tmp_path / "cat.db"
    cfg = tmp_path / "pbx-recorder.yaml"
    cfg.write_text(f"timezone: UTC\ncatalog:\n  path: {db}\n")
    cat = Catalog(db)
    now = time.time()
    cat.upsert_call({"call_id": "n1_1.1", "caller_num": "13812345678", "callee_num": "02087654321",
                     "caller_name": "13812345678", "status": "answered", "agent": "alice", "queue": "sales",
                     "tags": ["vip"], "consent_decision": "granted", "started_at": now - 60, "billsec": 42,
                     "consent": {"decision": "granted", "digit": "1", "prompt": "en/consent-1"},
                     "cdr": {"src": "13812345678", "dst": "02087654321"}})
    cat.upsert_call({"call_id": "n1_2.2", "caller_num": "13900001111", "status": "no_answer",
                     "started_at": now - 120, "caller_name": "Evil\x1b[2J"})
    cat.upsert_recording({"recording_id": "n1_1.1_call001", "call_id": "n1_1.1", "state": "verified",
                          "tier": "hot", "storage_key": "2026/11/21/n1_1.1_120000_n1_1.1_call001.wav",
                          "sha256": "ab" * 32, "duration_s": 41.5, "flags": ["duration_mismatch"],
                          "manifest": {"files": [{"name": "a.wav"}]}})
    cat.close()
    monkeypatch.setenv("PBX_RECORDER_USER", "auditor1")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    return cfg, db


def run(cfg, *args):
    result = CliRunner().invoke(cli, ["--config", str(cfg), "calls", *args], catch_exceptions=False)
    return result


def audit_rows(db):
    c = Catalog(db)
    try:
        return c.audit_entries()
    finally:
        c.close()


def test_search_table_masks_numbers(setup):
    cfg, db = setup
    r = run(cfg, "search", "--preset", "7d")
    assert r.exit_code == 0, r.output
    assert "138****5678" in r.output and "13812345678" not in r.output
    assert "n1_1.1" in r.output and "n1_2.2" in r.output and "2 call(s)" in r.output
    assert "\x1b" not in r.output
    # every search is audited, masked or not: one row, the filter and the rows returned
    (entry,) = audit_rows(db)
    assert (entry["actor"], entry["action"]) == ("auditor1", "calls.search")
    assert entry["detail"]["preset"] == "7d" and entry["detail"]["results"] == 2


def test_search_filters_and_json(setup):
    cfg, _ = setup
    r = run(cfg, "search", "--caller", "5678", "--status", "answered", "--tag", "vip", "--json")
    data = json.loads(r.stdout)
    assert [d["call_id"] for d in data] == ["n1_1.1"]
    assert data[0]["caller_num"] == "138****5678" and data[0]["callee_num"] == "020****4321"
    assert data[0]["cdr"]["src"] == "138****5678" and data[0]["caller_name"] == "138****5678"
    assert "13812345678" not in r.output
    assert json.loads(run(cfg, "search", "--agent", "nobody", "--json").stdout) == []


def test_unmask_shows_numbers_and_is_audited(setup):
    cfg, db = setup
    r = run(cfg, "search", "--caller", "13812345678", "--unmask", "--json")
    assert json.loads(r.stdout)[0]["caller_num"] == "13812345678"
    entry, number = audit_rows(db)  # newest first; every search by a number is audited
    assert number["action"] == "calls.search.number" and "13812345678" not in json.dumps(number["detail"])
    assert entry["actor"] == "auditor1" and entry["action"] == "calls.search.unmask"
    # the audit log never keeps a number in clear (it is chained: erasure cannot rewrite it later)
    assert entry["detail"]["caller"] == "138****5678" and entry["detail"]["results"] == 1


def test_show_masks_and_lists_recordings(setup):
    cfg, db = setup
    r = run(cfg, "show", "n1_1.1")
    assert r.exit_code == 0
    assert "138****5678" in r.output and "13812345678" not in r.output
    assert "tier=hot" in r.output and "41.5s" in r.output and "duration_mismatch" in r.output
    assert "sha256=" + "ab" * 32 in r.output and "n1_1.1_call001.wav" in r.output
    assert "digit" in r.output  # consent evidence
    data = json.loads(run(cfg, "show", "n1_1.1", "--json").stdout)
    assert data["recordings"][0]["files"] == [{"name": "a.wav"}] and "manifest" not in data["recordings"][0]
    # every show is audited, masked or not: one calls.view row per run (as GET /api/calls/{id})
    assert [(e["actor"], e["action"], e["target"]) for e in audit_rows(db)] == \
        [("auditor1", "calls.view", "n1_1.1")] * 2
    r = run(cfg, "show", "n1_1.1", "--unmask")
    assert "13812345678" in r.output
    newest = audit_rows(db)[0]
    assert (newest["action"], newest["target"]) == ("calls.show.unmask", "n1_1.1")
    assert len(audit_rows(db)) == 3


def test_show_unknown_call_exit_code(setup, capsys):
    cfg, _ = setup
    assert main(["--config", str(cfg), "calls", "show", "nope"]) == 6
    assert "no call" in capsys.readouterr().err


def test_bad_time_is_a_usage_error(setup):
    cfg, _ = setup
    r = CliRunner().invoke(cli, ["--config", str(cfg), "calls", "search", "--from", "yesterdayish"])
    assert r.exit_code == 2 and "--from" in r.output


def test_search_table_shows_long_call_ids_whole(setup):
    cfg, db = setup
    long_id = "demo_sbx14792x07b945-1795297992.0"
    cat = Catalog(db)
    cat.upsert_call({"call_id": long_id, "caller_num": "4930001", "status": "answered",
                     "started_at": time.time() - 30})
    cat.close()
    r = run(cfg, "search", "--preset", "7d")
    assert r.exit_code == 0, r.output
    assert long_id in r.output
