"""After a CLI command the chain heads are signed over the catalog the config names: with
``catalog.url`` (PostgreSQL) that is the URL; ``catalog.path`` is then only the node's folder
anchor (chain heads, verify progress), never a SQLite catalog of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pbx_recorder.cli import chain_heads_on_exit
from pbx_recorder.lifecycle import journal
from pbx_recorder.recording import chain_head

URL = "postgresql://pbxrec@127.0.0.1:5432/recordings"


class _Conn:
    def close(self) -> None:
        pass


@pytest.mark.parametrize("anchor_file", [False, True], ids=["no-file-at-path", "file-at-path"])
def test_heads_after_a_command_are_signed_over_the_catalog_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anchor_file: bool) -> None:
    """Found by the real tier on PostgreSQL: with ``catalog.url`` the heads were signed only when
    a file stood at ``catalog.path``, and then over a SQLite catalog made in that file, never
    over the PostgreSQL catalog whose audit rows the command had written."""
    (tmp_path / "var").mkdir()
    if anchor_file:
        (tmp_path / "var" / "catalog.db").touch()
    (tmp_path / "sign.pem").write_text("a key the process can read\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"catalog: {{path: {tmp_path}/var/catalog.db, url: '{URL}'}}\n"
                   f"signing: {{key_file: {tmp_path}/sign.pem}}\n")
    opened: list[Any] = []
    signed: list[Any] = []

    def open_catalog(target: Any) -> _Conn:
        opened.append(target)
        return _Conn()

    monkeypatch.setattr(journal, "open_catalog", open_catalog)
    monkeypatch.setattr(chain_head, "checkpoint_if_possible",
                        lambda config, conn, now: signed.append(config.catalog.url) or [])
    chain_heads_on_exit.sign_heads(str(cfg))
    assert opened == [URL] and signed == [URL]
    assert (tmp_path / "var" / "catalog.db").exists() == anchor_file  # no SQLite catalog made there
