"""The shipped etc/ files agree with the example config."""

from __future__ import annotations

from pathlib import Path

from pbx_recorder.config import LocalTierConfig, load_config

REPO = Path(__file__).resolve().parents[2]
ENV = {
    "PBX_RECORDER_PBX__AMI__SECRET": "x",
    "PBX_RECORDER_STORAGE__TIERS__COLD__SECRET_ACCESS_KEY": "y",
}


def _unit_values(key: str) -> list[str]:
    text = (REPO / "etc" / "pbx-recorder.service").read_text(encoding="utf-8")
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_systemd_unit_can_write_where_the_example_config_writes() -> None:
    cfg = load_config(REPO / "etc" / "pbx-recorder.yaml", env=ENV)
    writable = [Path(p.lstrip("-")) for p in _unit_values("ReadWritePaths")]
    hot = cfg.storage.tiers[cfg.storage.hot]
    assert isinstance(hot, LocalTierConfig)
    for needed in (cfg.spool.dir, hot.path, cfg.catalog.path, cfg.pbx.monitor_dir):
        assert any(needed.is_relative_to(w) for w in writable), needed
    assert _unit_values("TimeoutStopSec") == ["30s"]
    assert _unit_values("User") == ["pbx-recorder"] and _unit_values("Group") == ["pbx-recorder"]
    assert _unit_values("SupplementaryGroups") == ["asterisk"]  # the drop folder only (test_shipped_units)
    assert any("--config /etc/pbx-recorder/pbx-recorder.yaml run" in v for v in _unit_values("ExecStart"))


def test_manager_snippet_is_least_privilege() -> None:
    text = (REPO / "etc" / "manager.conf.d" / "pbx-recorder.conf").read_text(encoding="utf-8")
    settings = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith(";")]
    values: dict[str, list[str]] = {}
    for key, value in settings:
        values.setdefault(key.strip(), []).append(value.strip())
    assert values["write"] == ["system,call"]
    assert values["read"] == ["system,call,cdr,dialplan,agent,user"]  # user: the snippet's UserEvent
    assert values["permit"] == ["127.0.0.1/255.255.255.255"]
    assert len(values["eventfilter"]) == 4
    from ami.actions import EARLY_START_FILTER, UNAVAILABLE_FILTER
    assert EARLY_START_FILTER in values["eventfilter"]
    assert UNAVAILABLE_FILTER in values["eventfilter"]  # the snippet's fail direction and its reason


def test_timer_units_run_existing_commands():
    import shlex

    from click.testing import CliRunner

    from pbx_recorder.cli import cli

    for unit in ("pbx-recorder-lifecycle.service", "pbx-recorder-retention.service",
                 "pbx-recorder-qa-sample.service", "pbx-recorder-reports.service"):
        lines = (REPO / "etc" / unit).read_text(encoding="utf-8").splitlines()
        execs = [shlex.split(line.split("=", 1)[1]) for line in lines if line.startswith("ExecStart=")]
        assert execs, unit
        for argv in execs:
            words = [w for w in argv[1:] if not w.startswith("-") and not w.endswith(".yaml")]
            result = CliRunner().invoke(cli, [*words, "--help"])
            assert result.exit_code == 0, (unit, words, result.output)
        timer = (REPO / "etc" / unit.replace(".service", ".timer")).read_text(encoding="utf-8")
        assert "OnCalendar=" in timer
