"""Erasure reaches the spool too: recordings of an erased subject still waiting to be shipped.

A call that ended shortly before ``erase`` ran may still sit in the spool (plaintext audio and a
manifest with the CDR numbers); left there, the shipper would store it after the receipt said
``done`` and the subject would be back in the catalog.  ``purge`` removes every spool entry
(complete or still being written) whose manifest names one of the erased calls or the erased
number, and returns the recording ids it removed for the receipt.

``purge_quarantine`` does the same for the leftovers kept in the spool's quarantine
(``recording.spool.Spool.quarantine``: a crash's ``.raw`` original, the caller's voice in clear).
Their note names the call and no number, so they are matched by the erasure's call ids and by the
recording ids of its calls (the folder), never by a number: a leftover whose note names another
call is never touched.  A legal hold keeps them as it keeps a spooled entry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from pbx_recorder.lifecycle import policy
from pbx_recorder.recording.manifest import Manifest
from pbx_recorder.recording.spool import INTENT, MANIFEST, QUARANTINE_DIR, SAFE_ID, Spool

log = logging.getLogger(__name__)


def _numbers(manifest: Manifest) -> set[str]:
    cdr = manifest.cdr if isinstance(manifest.cdr, dict) else dict(manifest.cdr)
    values = (cdr.get("src"), cdr.get("dst"), manifest.callee_num, manifest.did)
    return {policy.normalize_number(str(v)) for v in values if v}


def numbers_of(manifest: Manifest) -> set[str]:
    """The normalized numbers a spooled manifest names (CDR src/dst, callee, DID)."""
    return _numbers(manifest)


#: a recording id (``core.naming``: ``<call id>_<kind>NNN``), the name of its spool folder
_LEFTOVER_ID = re.compile(
    r"(?P<call>[A-Za-z0-9][A-Za-z0-9.-]*_[A-Za-z0-9][A-Za-z0-9.-]*)_[a-z]{1,16}[0-9]{3}")


def _manifest_of(directory: Path) -> Manifest | None:
    for name in (MANIFEST, INTENT):
        try:
            return Manifest.from_json((directory / name).read_bytes())
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError) as exc:
            log.error("spool entry %s: unreadable %s during erasure: %s", directory.name, name, exc)
            return None
    return None


def purge(spool_root: str | Path, *, call_ids: Collection[str], number: str | None,
          keep_call_ids: Collection[str] = (), held: Callable[[Manifest], str | None] = lambda m: None,
          withheld: list[dict[str, str]] | None = None,
          removed_calls: dict[str, str] | None = None) -> list[str]:
    """Remove the spool entries of ``call_ids`` (or naming ``number``), except those of
    ``keep_call_ids`` (calls withheld by a hold) and those ``held`` names a legal hold for
    (appended to ``withheld``); returns the removed recording ids (and fills ``removed_calls``:
    recording id -> call id, what :func:`purge_quarantine` matches by)."""
    root = Path(spool_root)
    if not root.is_dir():
        return []
    spool = Spool(root)
    want = policy.normalize_number(number) if number else ""
    removed = []
    for directory in sorted(root.iterdir()):
        if not directory.is_dir() or not SAFE_ID.match(directory.name):
            continue
        manifest = _manifest_of(directory)
        if manifest is None:
            # no manifest and no intent: a removal an older version's crash cut short (the audio
            # stayed behind); its folder is named by the recording id, which names the call
            leftover = _LEFTOVER_ID.fullmatch(directory.name)
            call = leftover["call"] if leftover else ""
            if call and call in call_ids and call not in keep_call_ids \
                    and not (directory / MANIFEST).exists() and not (directory / INTENT).exists():
                spool.remove(directory.name)
                removed.append(directory.name)
                if removed_calls is not None:
                    removed_calls[directory.name] = call
                log.warning("erasure: spool folder %s (call %s) without a manifest removed", directory.name,
                            call)
            continue
        if manifest.call_id in keep_call_ids:
            continue
        if manifest.call_id in call_ids or (want and want in _numbers(manifest)):
            hold_id = held(manifest)
            if hold_id is not None:  # evidence under legal hold: it ships, the request stays partial
                if withheld is not None:
                    withheld.append({"recording_id": directory.name, "call_id": manifest.call_id,
                                     "hold_id": hold_id, "reason": "legal hold (waiting in the spool)"})
                continue
            spool.remove(directory.name)
            removed.append(directory.name)
            if removed_calls is not None:
                removed_calls[directory.name] = manifest.call_id
            log.info("erasure: spool entry %s (call %s) removed before shipping", directory.name,
                     manifest.call_id)
    return removed


QUARANTINE_HELD = "legal hold (kept in the spool's quarantine)"


def purge_quarantine(spool_root: str | Path, *, call_ids: Collection[str], recordings: Mapping[str, str],
                     keep_call_ids: Collection[str] = (),
                     held: Callable[[str, str], str | None] = lambda rid, cid: None,
                     withheld: list[dict[str, str]] | None = None) -> list[str]:
    """Remove the quarantined leftovers of the erased calls; returns ``<recording id>/<file>``.

    A leftover is the erasure's when its note names one of ``call_ids``, or its folder is one of
    ``recordings`` (recording id -> call id) and the note, if there is one, names that same call.
    One of ``keep_call_ids`` or one ``held(recording id, call id)`` names a hold for is kept and
    appended to ``withheld``."""
    root = Path(spool_root)
    if not (root / QUARANTINE_DIR).is_dir():
        return []
    spool = Spool(root)
    removed = []
    for item in spool.quarantined_files():
        owner = recordings.get(item.recording_id)
        call = item.call_id or owner
        if call is None or not (call in call_ids or call == owner):
            continue  # another call's leftover, or one nothing ties to the erased calls
        hold_id = held(item.recording_id, call)
        if call in keep_call_ids or hold_id is not None:
            if withheld is not None:
                withheld.append({"recording_id": item.recording_id, "call_id": call, "hold_id": hold_id or "",
                                 "reason": QUARANTINE_HELD})
            continue
        spool.drop_quarantined(item)
        removed.append(f"{item.recording_id}/{item.path.name}")
        log.info("erasure: quarantined leftover %s of recording %s (call %s) removed", item.path.name,
                 item.recording_id, call)
    return removed
