"""``keys rotate`` seals saved searches again under the new catalog key.

A saved search is stored as a token under the catalog key (``catalog.saved_search_rows``).  The
rotation re-encrypted calls, live calls, extra numbers and query holds, not saved searches, and
``--retire-old`` did not count them: retiring the old key left every saved search unreadable (its
owner's console showed it empty).  Now the rotation seals them again, and the retirement refuses
while one is still under the old key.
"""

from __future__ import annotations

from pathlib import Path

from test_number_migration import config_for

from pbx_recorder.catalog import Catalog, saved_search_rows
from pbx_recorder.catalog.number_keys import protection_for, protection_under
from pbx_recorder.catalog.number_protection import token_key_id
from pbx_recorder.cli import main
from pbx_recorder.config import load_config
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording.rekey import still_under_other_keys

QUERY = "keyword=Local%2F4915112345678%40from-internal&queue=sales"


def _setup(tmp_path: Path) -> str:
    cfg = config_for(tmp_path)
    extra = (f"encryption: {{master_key_file: {tmp_path}/master/k1.key}}\n"
             f"signing: {{key_file: {tmp_path}/keys/signing.ed25519}}\n")
    Path(cfg).write_text(Path(cfg).read_text() + extra)
    assert main(["--config", cfg, "keys", "init"]) == 0
    cat = Catalog(tmp_path / "catalog.db", numbers=protection_for(load_config(cfg)))
    cat.close()
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        token = saved_search_rows.sealed(protection_for(load_config(cfg)), "ana", "remote agents", QUERY)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO saved_searches (user_name, name, query, created_at) VALUES (?, ?, ?, ?)",
                     ("ana", "remote agents", token, 1000.0))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return cfg


def _stored(tmp_path: Path) -> str:
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        return str(conn.execute("SELECT query FROM saved_searches").fetchone()[0])
    finally:
        conn.close()


def test_keys_rotate_seals_saved_searches_again_and_the_old_key_retires(tmp_path, capsys):
    cfg = _setup(tmp_path)
    assert token_key_id(_stored(tmp_path)) == "k1"
    capsys.readouterr()
    assert main(["--config", cfg, "keys", "rotate", "--to", "k2"]) == 0
    assert "saved searches 1 of 1" in capsys.readouterr().out
    stored = _stored(tmp_path)
    assert token_key_id(stored) == "k2"
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        assert still_under_other_keys(conn, "k2") == {}
    finally:
        conn.close()
    Path(cfg).write_text(Path(cfg).read_text().replace("master/k1.key", "master/k2.key"))
    assert main(["--config", cfg, "keys", "rotate", "--to", "k2", "--retire-old"]) == 0
    assert "retired master key k1" in capsys.readouterr().out
    numbers = protection_under(load_config(cfg), "k2")
    assert saved_search_rows.opened(numbers, "ana", "remote agents", stored) == QUERY


def test_a_saved_search_under_the_old_key_stops_the_retirement(tmp_path):
    _setup(tmp_path)
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        assert still_under_other_keys(conn, "k2") == {"saved_searches.query (number tokens)": 1}
    finally:
        conn.close()
