"""``keys list`` counts the recordings each master key wraps in the catalog the config names: a
SQLite file at ``catalog.path``, or with ``catalog.url`` the PostgreSQL catalog (``catalog.path``
is then only the node's folder anchor: no file stands there).  On PostgreSQL it used to look for
the SQLite file and so listed every key with ``recordings=0``.  Both engines."""

from __future__ import annotations

from pathlib import Path

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import main
from storage.keyring import KeyRing
from tests.catalog_redirect import catalog_url


def test_keys_list_counts_the_recordings_of_the_configured_catalog(tmp_path: Path, capsys) -> None:
    (tmp_path / "keys").mkdir()
    KeyRing(tmp_path / "keys").generate("k1")
    url = catalog_url(tmp_path / "var" / "catalog.db")
    cat = Catalog(url or tmp_path / "var" / "catalog.db")
    for rid, encrypted in (("r1", True), ("r2", True), ("r3", False)):
        cat.upsert_recording({"recording_id": rid, "call_id": "c1", "state": "verified",
                              "encrypted": encrypted, "key_id": "k1" if encrypted else ""})
    cat.close()
    if url:  # a PostgreSQL node has no file at catalog.path (the test redirect leaves an empty one)
        (tmp_path / "var" / "catalog.db").unlink()
    catalog = f"{{path: {tmp_path}/var/catalog.db" + (f", url: '{url}'}}" if url else "}")
    (tmp_path / "cfg.yaml").write_text(
        f"catalog: {catalog}\n"
        f"encryption: {{enabled: true, master_key_file: {tmp_path}/keys/k1.key, key_id: k1}}\n")
    code = main(["--config", str(tmp_path / "cfg.yaml"), "keys", "list"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "* k1  present  recordings=2" in out
