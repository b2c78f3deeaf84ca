"""Issue 8, the masked-search oracle through the CLI: root running ``calls search`` for a named
operator whose role may not unmask is held to the service's rule (``service/throttle.py``), on the
same counter as the console."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pbx_recorder.cli import cli, main
from pbx_recorder.errors import AccessDenied
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import throttle

FULL = "+8613812345678"


@pytest.fixture
def cfg(tmp_path: Path) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(f"catalog: {{path: {tmp_path}/catalog.db}}\n"
                    "access: {users: {agent1: agent, boss: admin}}\n"
                    "web: {number_searches: 2, number_search_window_s: 600}\n")
    return str(path)


def _search(cfg: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--config", cfg, "calls", "search", "--json", *args])


def _actions(tmp_path: Path, actor: str) -> list[str]:
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        rows = conn.execute("SELECT action FROM audit_log WHERE actor = ? ORDER BY id", (actor,))
        return [r[0] for r in rows]
    finally:
        conn.close()


def test_root_cli_number_searches_are_throttled_like_the_service(cfg, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PBX_RECORDER_USER", "agent1")  # root acting for a named agent
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    for _ in range(2):
        assert _search(cfg, "--caller", FULL).exit_code == 0
    refused = _search(cfg, "--caller", FULL)
    assert isinstance(refused.exception, AccessDenied) and "too many searches" in str(refused.exception)
    assert _search(cfg, "--caller", "5678").exit_code == 0  # last 4: audited, never throttled
    # each search that ran also writes its one calls.search row, after its throttle row
    assert _actions(tmp_path, "agent1") == [throttle.FULL_ACTION, "calls.search", throttle.FULL_ACTION,
                                            "calls.search", "throttled:" + throttle.FULL_ACTION,
                                            throttle.LAST4_ACTION, "calls.search"]
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        details = [r[0] for r in conn.execute("SELECT detail FROM audit_log WHERE actor = 'agent1'")]
    finally:
        conn.close()
    assert all(FULL not in d and "13812345" not in d and '"caller"' in d for d in details)  # masked


def test_a_role_with_unmask_is_audited_but_not_throttled(cfg, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PBX_RECORDER_USER", "boss")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    for _ in range(4):
        assert _search(cfg, "--callee", FULL).exit_code == 0
    assert _actions(tmp_path, "boss") == [throttle.FULL_ACTION, "calls.search"] * 4


def test_the_cli_and_the_console_share_one_counter(cfg, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from pbx_recorder import audit_trail

    monkeypatch.setenv("PBX_RECORDER_USER", "agent1")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    assert _search(cfg).exit_code == 0  # creates the catalog; no number: its calls.search row only
    conn = open_catalog(tmp_path / "catalog.db")
    try:  # two searches the same user ran in the console a moment ago
        for _ in range(2):
            audit_trail.record(conn, actor="agent1", role="agent", action=throttle.FULL_ACTION, target="",
                               detail={"client": "192.0.2.7"}, now=time.time())
    finally:
        conn.close()
    monkeypatch.setenv("PBX_RECORDER_USER", "agent1")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    assert main(["--config", cfg, "calls", "search", "--caller", FULL]) == AccessDenied.exit_code
