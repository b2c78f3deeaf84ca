import json
from pathlib import Path

from pbx_recorder.cli import main

CONFIG = """\
timezone: Europe/Berlin
rules:
  - name: hr-never
    match: {dialed: ["re:^7(00|01)$"]}
    action: {record: never}
  - name: all-force
    match: {direction: [inbound]}
    action: {record: dontcare}
  - name: sales
    match: {direction: [inbound], dialed: ["_800XX"], time: ["Mon-Fri 09:00-18:00"]}
    action: {record: yes, consent: notify, tags: [sales], language: de}
"""


def run(tmp_path: Path, capsys, *args: str) -> tuple[int, str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    code = main(["--config", str(cfg), "rules", "explain", *args])
    return code, capsys.readouterr().out


def test_explain_winning_rule_and_reasons(tmp_path, capsys):
    code, out = run(tmp_path, capsys, "--dialed", "80012", "--caller", "555", "--at", "2026-11-20T10:00")
    assert code == 0
    assert "decision: RECORD by rule 'sales' (yes)" in out
    assert "consent=notify" in out and "tags=sales" in out and "language=de" in out
    assert "rule 'hr-never' (never): miss: dialed" in out
    assert "rule 'all-force' (dontcare): match" in out


def test_explain_outside_window_in_rule_timezone(tmp_path, capsys):
    # Saturday 10:00 Berlin: the sales window does not apply, nothing decides
    code, out = run(tmp_path, capsys, "--dialed", "80012", "--at", "2026-11-21T10:00")
    assert code == 0 and "DO NOT RECORD by default" in out and "Sat 10:00 Europe/Berlin outside" in out


def test_explain_json_and_never(tmp_path, capsys):
    code, out = run(tmp_path, capsys, "--dialed", "700", "--json")
    data = json.loads(out)
    assert code == 0 and data["record"] is False and data["rule"] == "hr-never" and data["verdict"] == "never"


def test_explain_missing_config_is_a_config_error(tmp_path, capsys):
    code = main(["--config", str(tmp_path / "missing.yaml"), "rules", "explain", "--dialed", "1"])
    assert code == 2


def test_explain_bad_at(tmp_path, capsys):
    code, _ = run(tmp_path, capsys, "--dialed", "1", "--at", "tomorrow-ish")
    assert code == 2
