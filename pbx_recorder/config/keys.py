"""Where the keys live: the master-key ring and the keys that must stay out of it.

``encryption.master_key_file`` names the current master key file, ``<ring>/<key id>.key``: its
directory is the key ring (every ``*.key`` in it is a master key that ``keys rotate
--retire-old`` may retire) and its name is the current key id (``encryption.key_id`` may repeat
it, not contradict it).  A directory may be named instead (then ``encryption.key_id`` says which
key is current).

The privacy HMAC key, the signing key and the backup keys are not master keys: a file of theirs
in the ring would be retired with the old master keys (after which ``erase --caller`` and ``hold
add --caller`` fail), so the configuration refuses that layout, naming the key to move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pbx_recorder.config.reader import Ctx

KEY_SUFFIX = ".key"


def master_key_layout(master_key_file: Path, key_id: str | None) -> tuple[Path, str | None]:
    """(ring directory, current key id or None) for ``encryption.master_key_file``."""
    if master_key_file.is_dir() or not master_key_file.suffix:
        return master_key_file, key_id
    return master_key_file.parent, master_key_file.name[: -len(master_key_file.suffix)]


def check_key_layout(ctx: Ctx, config: Any) -> None:
    enc = config.encryption
    if enc.master_key_file is None:
        return
    mkf = Path(enc.master_key_file)
    ring, file_id = master_key_layout(mkf, enc.key_id)
    if ring != mkf:
        if mkf.suffix != KEY_SUFFIX:
            ctx.error(("encryption", "master_key_file"),
                      f"a master key file is named <key id>{KEY_SUFFIX} (e.g. {ring}/k2026-01{KEY_SUFFIX})")
        elif enc.key_id and enc.key_id != file_id:
            ctx.error(("encryption", "key_id"),
                      f"{enc.key_id!r} contradicts master_key_file {mkf.name!r} (key id {file_id!r}): "
                      "the file name is the key id; drop key_id or make them agree")
    others = (
        (("privacy", "hash_key_file"), config.privacy.hash_key_file),
        (("signing", "key_file"), config.signing.key_file),
    )
    for key, path in others:
        if path is not None and Path(path).parent == ring:
            ctx.error(key, f"{path} is inside the master key directory {ring}, where `keys rotate "
                           "--retire-old` would retire it: keep it in another directory")
    if enc.backup_key_dir is not None and Path(enc.backup_key_dir) == ring:
        ctx.error(("encryption", "backup_key_dir"), f"must not be the master key directory {ring}")


def check_drop_folder(ctx: Ctx, config: Any) -> None:
    """Nothing of the recorder's may live inside the PBX's drop folder (``pbx.monitor_dir``),
    the one directory the asterisk account can write to and list."""
    drop = Path(config.pbx.monitor_dir)
    own: list[tuple[tuple[str, ...], Path]] = [
        (("spool", "dir"), Path(config.spool.dir)),
        (("catalog", "path"), Path(config.catalog.path).parent),
    ]
    for name, tier in config.storage.tiers.items():
        path = getattr(tier, "path", None)
        if path is not None:
            own.append((("storage", "tiers", name, "path"), Path(path)))
    for key, path in own:
        if path == drop or drop in path.parents:
            ctx.error(key, f"{path} is inside pbx.monitor_dir {drop}, which the PBX account can read "
                           "and write: keep the recorder's data elsewhere")
