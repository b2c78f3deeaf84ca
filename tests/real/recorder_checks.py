"""Assertions on what the recorder leaves behind: catalog rows and stored audio files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbx_recorder.config import load_config
from pbx_recorder.testbed import audio_stats
from pbx_recorder.testbed.recorder import CatalogReader, RecorderProcess
from tests.catalog_redirect import ENGINE, catalog_url

SHIP_TIMEOUT = 45.0


@dataclass
class Recorder:
    """The daemon under test plus what a test needs to check it."""

    process: RecorderProcess
    config_path: Path
    workdir: Path
    catalog: CatalogReader

    @property
    def hot_dir(self) -> Path:
        return self.workdir / "hot"

    def restart(self, how: str = "term") -> None:
        """Stop with SIGTERM (``how="term"``) or SIGKILL (``"kill"``), then start again."""
        if how == "kill":
            self.process.kill()
        else:
            self.process.terminate()
        self.process.start()


def daemon_catalog_url(work: Path) -> str | None:
    """``catalog.url`` for a daemon whose folder is ``work`` (``catalog.path`` is
    ``work/catalog.db``): under ``PBXR_TEST_CATALOG=postgresql`` the schema the test's own opens of
    that path reach (tests/catalog_redirect.py), else None (the SQLite file)."""
    return catalog_url(work / "catalog.db")


def catalog_reader(config_path: Path) -> CatalogReader:
    """A reader of the catalog ``config_path`` names.  On a PostgreSQL run it asserts that the
    catalog is PostgreSQL: a daemon that silently kept a SQLite file would test the wrong engine."""
    catalog = load_config(config_path).catalog
    if ENGINE == "postgresql":
        assert catalog.url, f"{config_path}: PBXR_TEST_CATALOG=postgresql, but the catalog is {catalog.path}"
    return CatalogReader(catalog.path, catalog.url)


SHIPPED = ("stored", "verified", "migrated")


def wait_call(recorder: Recorder, linkedid: str, timeout: float = SHIP_TIMEOUT,
              settled: bool = True) -> dict[str, Any]:
    """The call's catalog row, once it exists (and, with ``settled``, once it is no longer live)."""
    def probe() -> dict[str, Any] | None:
        row = recorder.catalog.call_by_linkedid(linkedid)
        if row and (not settled or row.get("status") not in ("", "live")):
            return row
        return None
    row = recorder.catalog.wait_for(probe, timeout)
    assert row, f"no catalog row for linkedid {linkedid}:\n{recorder.process.log_tail()}"
    return row


def wait_shipped(recorder: Recorder, linkedid: str, count: int = 1,
                 timeout: float = SHIP_TIMEOUT) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The call row and its recordings once ``count`` of them are shipped (stored/verified)."""
    call = wait_call(recorder, linkedid, timeout, settled=False)

    def shipped() -> list[dict[str, Any]] | None:
        rows = [r for r in recorder.catalog.recordings(call["call_id"]) if r["state"] in SHIPPED]
        return rows if len(rows) >= count else None

    recs = recorder.catalog.wait_for(shipped, timeout)
    assert recs, f"recordings of {call['call_id']} not shipped:\n{recorder.process.log_tail()}"
    return wait_call(recorder, linkedid, 10), recs


def stored_file(recorder: Recorder, recording: dict[str, Any]) -> Path:
    path = (recorder.hot_dir / recording["storage_key"]).resolve()
    assert str(path).startswith(str(recorder.hot_dir.resolve()) + os.sep), path
    assert path.is_file(), path
    return path


def assert_audio(recorder: Recorder, recording: dict[str, Any], expect_s: float,
                 tolerance_s: float = 2.0, context: str = "") -> None:
    """Non-silent audio of about ``expect_s`` seconds (skips the check for encrypted objects).
    ``context``: what else a failure should show (e.g. the PBX's RTP counters of the call)."""
    path = stored_file(recorder, recording)
    assert not recording.get("encrypted"), "sandbox config stores plaintext"
    stats = audio_stats(path)
    assert stats.rms > 0.01, (stats, recording.get("flags"), context)
    assert abs(stats.duration_s - expect_s) <= tolerance_s, (stats, expect_s, context)


def audio_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and p.suffix in (".wav", ".raw", ".gsm", ".flac",
                                                                       ".opus", ".enc")} \
        if root.exists() else set()


def recorder_settings(request: Any) -> dict[str, object]:
    """The test's ``recorder_config`` marker's keyword arguments for the recorder fixtures' config
    writer, e.g. ``@pytest.mark.recorder_config(pause_max_s=10)`` (none: the writer's defaults)."""
    marker = request.node.get_closest_marker("recorder_config")
    return dict(marker.kwargs) if marker else {}
