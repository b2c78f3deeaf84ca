"""A plaintext ``.db`` on the backup tier is unauthenticated: restore refuses it unless told
``legacy_plaintext`` with a hash from elsewhere, and no restored SQLite file may carry an object
(a trigger, a view, a table) the catalog schema does not define."""

from __future__ import annotations

import hashlib
import io
import sqlite3
from pathlib import Path

import pytest

from pbx_recorder.catalog.schema import apply_migrations
from pbx_recorder.errors import IntegrityError
from pbx_recorder.lifecycle import backup
from pbx_recorder.lifecycle.backup_keys import BackupKeys
from storage.local import LocalTier

pytestmark = pytest.mark.sqlite_only  # SQLite backup files
KEY = "catalog-backups/20991231T235959Z.db"
TRIGGER = ("CREATE TRIGGER t AFTER INSERT ON recordings BEGIN UPDATE recordings SET wrapped_key='' "
           "WHERE recording_id=NEW.recording_id; END;")


def _catalog_file(path: Path, extra_sql: str = "") -> bytes:
    conn = sqlite3.connect(path)
    apply_migrations(conn)
    if extra_sql:
        conn.executescript(extra_sql)
    conn.commit()
    conn.close()
    return path.read_bytes()


def _plant(tmp_path: Path, extra_sql: str = "") -> tuple[LocalTier, str]:
    """What someone with write access to the tier only can do: a .db and its matching sidecar."""
    tier = LocalTier("backups", tmp_path / "tier")
    data = _catalog_file(tmp_path / "planted.db", extra_sql)
    digest = hashlib.sha256(data).hexdigest()
    tier.put(KEY, io.BytesIO(data))
    tier.put(KEY + ".sha256", io.BytesIO(f"{digest}  x\n".encode()))
    return tier, digest


@pytest.fixture()
def keys(tmp_path):
    return BackupKeys(tmp_path / "backup-keys")


def test_a_planted_plaintext_backup_is_refused_even_with_a_matching_sidecar(tmp_path, keys):
    tier, digest = _plant(tmp_path)
    with pytest.raises(IntegrityError, match="unauthenticated plaintext backup"):
        backup.restore(tier, KEY, tmp_path / "restored.db", keys=keys)
    with pytest.raises(IntegrityError, match="needs --sha256"):  # the sidecar is not enough
        backup.restore(tier, KEY, tmp_path / "restored.db", keys=keys, legacy_plaintext=True)
    assert not (tmp_path / "restored.db").exists()
    assert backup.is_unauthenticated(KEY) and not backup.is_unauthenticated(KEY + ".pbxr")


def test_with_the_flag_and_the_hash_from_elsewhere_a_legacy_backup_restores(tmp_path, keys):
    tier, digest = _plant(tmp_path)
    out = tmp_path / "restored.db"
    assert backup.restore(tier, KEY, out, keys=keys, sha256=digest, legacy_plaintext=True) == (digest, 0)
    with pytest.raises(IntegrityError, match="!= expected"):
        backup.restore(tier, KEY, tmp_path / "other.db", keys=keys, sha256="0" * 64, legacy_plaintext=True)
    assert sqlite3.connect(out).execute("SELECT COUNT(*) FROM recordings").fetchone()[0] == 0


@pytest.mark.parametrize("extra", [TRIGGER, "CREATE VIEW v AS SELECT 1;", "CREATE TABLE stash (x);",
                                   # a known trigger's name with other code behind it
                                   "DROP TRIGGER call_tags_delete; CREATE TRIGGER call_tags_delete "
                                   "AFTER DELETE ON calls BEGIN DELETE FROM recordings; END;"])
def test_a_restored_file_carrying_foreign_objects_is_refused(tmp_path, keys, extra):
    tier, digest = _plant(tmp_path, extra)
    scrubbed = []
    with pytest.raises(IntegrityError, match="objects the catalog schema does not define"):
        backup.restore(tier, KEY, tmp_path / "restored.db", keys=keys, sha256=digest, legacy_plaintext=True,
                       scrub=lambda conn: scrubbed.append(conn) or 0)
    assert not scrubbed  # refused before the scrub's first write could fire anything
    assert not (tmp_path / "restored.db").exists()


def test_an_encrypted_backup_of_a_real_catalog_still_restores(tmp_path, keys):
    tier = LocalTier("backups", tmp_path / "tier")
    _catalog_file(tmp_path / "catalog.db")
    info = backup.backup(tmp_path / "catalog.db", tier, 1_800_000_000.0, keys=keys)
    assert backup.restore(tier, info.key, tmp_path / "restored.db", keys=keys)[0] == info.sha256


def test_the_cli_marks_and_refuses_a_planted_backup(tmp_path, capsys):
    from pbx_recorder.cli import main
    from pbx_recorder.lifecycle.journal import open_catalog
    from tests.unit.test_keys_layout import _config

    config = _config(tmp_path)
    assert main(["--config", str(config), "keys", "init"]) == 0
    open_catalog(tmp_path / "catalog.db").close()
    hot = LocalTier("hot", tmp_path / "hot")
    data = _catalog_file(tmp_path / "planted.db", TRIGGER)
    hot.put(KEY, io.BytesIO(data))
    hot.put(KEY + ".sha256", io.BytesIO(f"{hashlib.sha256(data).hexdigest()}  x\n".encode()))
    capsys.readouterr()
    assert main(["--config", str(config), "catalog", "backups"]) == 0
    assert f"{KEY}  (UNAUTHENTICATED plaintext" in capsys.readouterr().out
    out_db = tmp_path / "restored.db"
    assert main(["--config", str(config), "catalog", "restore", "--from", KEY, "--to", str(out_db)]) \
        == IntegrityError.exit_code
    assert "unauthenticated plaintext backup" in capsys.readouterr().err
    code = main(["--config", str(config), "catalog", "restore", "--from", KEY, "--to", str(out_db),
                 "--legacy-plaintext", "--sha256", hashlib.sha256(data).hexdigest()])
    assert code == IntegrityError.exit_code  # the hash is right, the trigger is not
    assert "trigger t" in capsys.readouterr().err and not out_db.exists()
