"""Progress of whole-catalog commands: on stderr, silent unless a terminal or ``--progress``;
the command's result on stdout is the same either way."""

from __future__ import annotations

import io
import json
import time

from lifecycle_support import NOW, add_call, add_recording, make_cli_env

from pbx_recorder.cli import main
from pbx_recorder.lifecycle.policy import DAY
from pbx_recorder.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reporter_is_silent_off_a_terminal_and_rate_limited_on_one():
    piped = io.StringIO()
    bar = Progress("verify", 10, stream=piped)
    bar.advance(10)
    bar.close()
    assert piped.getvalue() == ""
    now = [0.0]
    tty = Tty()
    bar = Progress("verify", 4, stream=tty, clock=lambda: now[0])
    for t in (0.0, 0.1, 0.2, 0.9):
        now[0] = t
        bar.advance(1, "0 mismatches")
    bar.close()
    lines = tty.getvalue().split("\r")[1:]
    assert len(lines) == 3  # 1st advance, the one 0.5 s later, close -- not one per row
    assert lines[-1].startswith("verify: 4/4 100.0%") and lines[-1].endswith("0 mismatches\n")


def test_retention_report_and_migrate_dry_run_stream_with_progress_on_stderr(tmp_path, capsys):
    env, cfg = make_cli_env(tmp_path)
    skew = (NOW - time.time()) / DAY  # the CLI runs at the real clock, the helpers count from NOW
    for i in range(7):
        add_call(env, f"c{i}")
        add_recording(env, f"c{i}", f"r{i}", age_days=(400 if i % 2 else 60) + skew)

    assert main(["--config", cfg, "retention", "report", "--json", "--progress"]) == 0
    out = capsys.readouterr()
    items = json.loads(out.out)
    assert sorted(d["recording_id"] for d in items) == ["r1", "r3", "r5"]
    assert "retention report: " in out.err and "3 to dispose, 0 refused" in out.err

    assert main(["--config", cfg, "recordings", "migrate", "--dry-run", "--progress", "--limit", "2"]) == 0
    out = capsys.readouterr()
    assert "2 recording(s) due" in out.out and "migrate --dry-run: " in out.err
    assert main(["--config", cfg, "recordings", "migrate", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "4 recording(s) due" in out.out and "migrate --dry-run" not in out.err


def test_erase_and_hold_by_caller_show_rows_read_on_stderr(tmp_path, capsys):
    env, cfg = make_cli_env(tmp_path)
    for i in range(5):
        add_call(env, f"c{i}", caller="+15551112222" if i % 2 else "+15550000000")
        add_recording(env, f"c{i}", f"r{i}")
    assert main(["--config", cfg, "hold", "add", "--caller", "+15550000000", "--reason", "case 2",
                 "--progress"]) == 0
    out = capsys.readouterr()
    assert "3 recording(s) held" in out.out and "hold add: calls read: 5" in out.err
    assert main(["--config", cfg, "erase", "--caller", "+15551112222", "--progress"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["recordings_erased"] == 2 and "erase: catalog rows read: " in out.err
