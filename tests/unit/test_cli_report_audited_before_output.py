"""``retention report`` and ``recordings migrate --dry-run`` print call and recording ids (and the
reasons holds give): their audit row was written after the output, so a row that could not be
written left a read nobody can find.  The row now comes first (with the evaluation time, from
which the same report can be produced again): when it cannot be written nothing is printed."""

from __future__ import annotations

import json
import time

import pytest
from lifecycle_support import NOW, add_call, add_recording, make_cli_env

from pbx_recorder.cli import main
from pbx_recorder.errors import CatalogError
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.lifecycle.policy import DAY
from pbx_recorder.lifecycle.runtime import Runtime


@pytest.fixture
def cli(tmp_path):
    env, cfg = make_cli_env(tmp_path)
    skew = (NOW - time.time()) / DAY  # the CLI runs at the real clock, the helpers count from NOW
    for i in range(4):
        add_call(env, f"c{i}")
        # r1, r3 past their retention, r0, r2 due for the cold tier only
        add_recording(env, f"c{i}", f"r{i}", age_days=(400 if i % 2 else 60) + skew)
    return env, cfg, tmp_path


def _refuse_audit(monkeypatch) -> None:
    def down(self, action, target, detail=None):  # type: ignore[no-untyped-def]
        raise CatalogError("audit log not writable")

    monkeypatch.setattr(Runtime, "audit", down)


@pytest.mark.parametrize("args", [("retention", "report"), ("retention", "report", "--json"),
                                  ("recordings", "migrate", "--dry-run")])
def test_nothing_is_printed_when_the_audit_row_cannot_be_written(cli, capsys, monkeypatch, args):
    _, cfg, _ = cli
    _refuse_audit(monkeypatch)
    code = main(["--config", cfg, *args])
    out = capsys.readouterr().out
    assert code == CatalogError.exit_code and not any(f"r{i}" in out or f"c{i}" in out for i in range(4)), out


def _rows(tmp_path, action: str) -> list[dict]:
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        return [json.loads(d) for (d,) in conn.execute("SELECT detail FROM audit_log WHERE action = ? "
                                                      "ORDER BY id", (action,))]
    finally:
        conn.close()


def test_the_row_written_first_names_the_evaluation_time(cli, capsys):
    _, cfg, tmp_path = cli
    assert main(["--config", cfg, "retention", "report", "--at", str(NOW + 9)]) == 0
    assert "2 to dispose" in capsys.readouterr().out
    assert _rows(tmp_path, "retention.report") == [{"started": True, "at": NOW + 9}]
    assert main(["--config", cfg, "recordings", "migrate", "--dry-run", "--limit", "2"]) == 0
    assert "2 recording(s) due" in capsys.readouterr().out
    (row,) = _rows(tmp_path, "recordings.migrate")
    assert row["dry_run"] is True and row["started"] is True and row["limit"] == 2 and row["at"] > 0
