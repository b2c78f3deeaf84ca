"""Identifiers, file names and storage keys: the template and its parser live together.

Every component that reaches a path or a key goes through :func:`safe_component`, which
maps any string (``../../etc/passwd``, NUL, newlines, 10k characters, unicode, "") to a
bounded ``[A-Za-z0-9._-]`` component that never starts with ``.`` or ``-``.

Injectivity: a string that is already safe (starts with a letter or digit, only allowed
characters, no ``--``, not too long) is kept as is.  Anything else becomes
``<sanitized prefix>--<16 hex of SHA-256 of the original>``; a kept string never contains
``--``, so two distinct inputs cannot give the same component (up to a 64-bit hash clash).

Call ids are ``<node>_<linkedid>`` with ``_`` forbidden inside both parts, so the first
``_`` splits them and a storage key parses back without ambiguity.  When the PBX's start
time is known (AMI ``CoreStatus``), it leads the linkedid part: ``<node>_<boot>-<linkedid>``
(``pbx1_20261201150800-1764601680.3``), because Asterisk's linkedids restart with the PBX and
the same one can come back after a fast restart.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_COMPONENT = 64
_HASH_HEX = 16
_SAFE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SAFE_NO_US_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_KIND_RE = re.compile(r"[a-z]{1,16}")


def safe_component(text: object, max_len: int = MAX_COMPONENT, *, allow_underscore: bool = True) -> str:
    """Return a bounded, path-safe component for ``text`` (see module docstring)."""
    if max_len < _HASH_HEX + 4:
        raise ValueError(f"max_len must be at least {_HASH_HEX + 4}")
    raw = text if isinstance(text, str) else str(text)
    pattern = _SAFE_RE if allow_underscore else _SAFE_NO_US_RE
    if len(raw) <= max_len and pattern.fullmatch(raw) and "--" not in raw:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]
    bad = r"[^A-Za-z0-9.-]" if not allow_underscore else r"[^A-Za-z0-9._-]"
    prefix = re.sub(bad, "_" if allow_underscore else ".", raw[: max_len * 2])
    prefix = re.sub(r"-{2,}", "-", prefix).lstrip("._-")
    prefix = prefix[: max_len - _HASH_HEX - 2].rstrip("-") or "x"
    return f"{prefix}--{digest}"


_BOOT_RE = re.compile(r"[0-9]{8,14}")


def make_call_id(node: str, linkedid: str, boot: str = "") -> str:
    """Globally unique call id: Asterisk uniqueids restart with the PBX, the node name and the
    PBX's start time (``boot``, see :func:`boot_tag`) tell the runs apart."""
    node_part = safe_component(node, 32, allow_underscore=False)
    if boot:
        if not _BOOT_RE.fullmatch(boot):
            raise ValueError(f"bad PBX boot tag {boot[:20]!r}")
        linkedid = f"{boot}-{linkedid}"
    return f"{node_part}_{safe_component(linkedid, allow_underscore=False)}"


def boot_of_call_id(call_id: str) -> str:
    """The PBX boot tag inside a call id made with one ("" otherwise)."""
    _, _, linked = call_id.partition("_")
    boot, sep, _ = linked.partition("-")
    return boot if sep and len(boot) == 14 and boot.isdigit() else ""


def boot_tag(startup_date: str, startup_time: str) -> str:
    """``CoreStatus``'s ``CoreStartupDate`` + ``CoreStartupTime`` (``2026-12-01``, ``15:08:00``)
    as the digits ``20261201150800``; "" when they do not look like a date and a time."""
    digits = re.sub(r"[^0-9]", "", f"{startup_date}{startup_time}")
    return digits if len(digits) == 14 and _BOOT_RE.fullmatch(digits) else ""


def split_call_id(call_id: str) -> tuple[str, str]:
    """``(node, linkedid component)`` of a call id made by :func:`make_call_id`."""
    node, sep, linked = call_id.partition("_")
    if not sep or not node or not linked or "_" in linked:
        raise ValueError(f"not a call id: {call_id[:80]!r}")
    return node, linked


def make_recording_id(call_id: str, kind: str, seq: int) -> str:
    """``<call_id>_<kind><seq:03d>``, e.g. ``pbx1_1732200000.42_call001``."""
    split_call_id(call_id)
    if not _KIND_RE.fullmatch(kind):
        raise ValueError(f"bad recording kind {kind!r}")
    if not 0 <= seq <= 999:
        raise ValueError(f"recording seq out of range: {seq}")
    return f"{call_id}_{kind}{seq:03d}"


def _check_recording_id(recording_id: str) -> str:
    if len(recording_id) > 200 or not _SAFE_RE.fullmatch(recording_id):
        raise ValueError(f"not a recording id: {recording_id[:80]!r}")
    return recording_id


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), tz=UTC)


def recording_basename(recording_id: str, started_at: float) -> str:
    """File stem the PBX writes: ``<recording_id>_<YYYYMMDDTHHMMSSZ>``."""
    return f"{_check_recording_id(recording_id)}_{_utc(started_at):%Y%m%dT%H%M%SZ}"


def recording_paths(monitor_dir: str, call_id: str, recording_id: str, started_at: float,
                    mode: str) -> tuple[str, ...]:
    """Absolute paths the PBX writes for one recording.

    ``mixed``: one ``.wav``; ``stereo``: one ``.raw`` (MixMonitor option ``D``, Asterisk 22+:
    interleaved signed 16-bit 8 kHz, channel 1 the caller; with ``.wav`` Asterisk writes a header
    that says mono); ``dual``: two leg files, ``-rx`` (MixMonitor ``r()``:
    audio read from the channel) and ``-tx`` (``t()``: audio written to it).  The mixed file of a dual
    recording is :func:`mixed_path`.  ``call_id`` is checked, the id carries it already.
    """
    if not posixpath.isabs(monitor_dir):
        raise ValueError(f"monitor_dir must be absolute: {monitor_dir!r}")
    if not recording_id.startswith(call_id + "_"):
        raise ValueError("recording id does not belong to the call")
    base = posixpath.join(posixpath.normpath(monitor_dir), recording_basename(recording_id, started_at))
    if mode == "mixed":
        return (base + ".wav",)
    if mode == "stereo":
        return (base + ".raw",)
    if mode == "dual":
        return (base + "-rx.wav", base + "-tx.wav")
    raise ValueError(f"unknown recording mode {mode!r}")


RECORDING_FILE_RE = re.compile(
    r"(?P<rid>(?P<call>[A-Za-z0-9][A-Za-z0-9.-]*_[A-Za-z0-9][A-Za-z0-9.-]*)_(?P<kind>[a-z]{1,16})[0-9]{3})"
    r"_(?P<ts>[0-9]{8}T[0-9]{6}Z)(?P<leg>-rx|-tx)?\.(?P<ext>wav|raw)")


@dataclass(frozen=True, slots=True)
class RecordingFile:
    """A file name made by :func:`recording_paths`, parsed back."""

    recording_id: str
    call_id: str
    kind: str
    leg: str  # "" | "-rx" | "-tx"
    ext: str


def parse_recording_file(name: str) -> RecordingFile | None:
    """The inverse of :func:`recording_paths` for one file name; None for any other name."""
    m = RECORDING_FILE_RE.fullmatch(name)
    if m is None or len(m["rid"]) > 200:
        return None
    return RecordingFile(m["rid"], m["call"], m["kind"], m["leg"] or "", m["ext"])


def mixed_path(monitor_dir: str, recording_id: str, started_at: float) -> str:
    if not posixpath.isabs(monitor_dir):
        raise ValueError(f"monitor_dir must be absolute: {monitor_dir!r}")
    stem = recording_basename(recording_id, started_at)
    return posixpath.join(posixpath.normpath(monitor_dir), stem + ".wav")


# --- storage keys: template + parser, round-trip tested ---

_EXT_RE = re.compile(r"[A-Za-z0-9]{1,10}")
STORAGE_KEY_RE = re.compile(
    r"^(?:(?P<region>[A-Za-z0-9][A-Za-z0-9._-]*)/)?"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P<call_id>[A-Za-z0-9][A-Za-z0-9.-]*_[A-Za-z0-9][A-Za-z0-9.-]*)_"
    r"(?P<hms>\d{6})_"
    r"(?P<recording_id>[A-Za-z0-9][A-Za-z0-9._-]*)\."
    r"(?P<ext>[A-Za-z0-9]{1,10})$"
)


@dataclass(frozen=True, slots=True)
class StorageKey:
    region: str
    call_id: str
    recording_id: str
    started_at: float  # whole seconds, UTC
    ext: str


def storage_key(call_id: str, recording_id: str, started_at: float, ext: str, region: str = "") -> str:
    """``[region/]YYYY/MM/DD/<call>_<HHMMSS>_<rec>.<ext>``, date-partitioned in UTC."""
    split_call_id(call_id)
    if not _EXT_RE.fullmatch(ext):
        raise ValueError(f"bad extension {ext!r}")
    rec = _check_recording_id(recording_id)
    when = _utc(started_at)
    prefix = f"{safe_component(region)}/" if region else ""
    return f"{prefix}{when:%Y/%m/%d}/{call_id}_{when:%H%M%S}_{rec}.{ext}"


def parse_storage_key(key: str) -> StorageKey:
    """Inverse of :func:`storage_key`; ``ValueError`` for anything else."""
    m = STORAGE_KEY_RE.match(key)
    if not m:
        raise ValueError(f"not a storage key: {key[:200]!r}")
    hms = m["hms"]
    try:
        when = datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(hms[:2]), int(hms[2:4]), int(hms[4:]),
                        tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"bad date in storage key: {key[:200]!r}") from exc
    return StorageKey(region=m["region"] or "", call_id=m["call_id"], recording_id=m["recording_id"],
                      started_at=when.timestamp(), ext=m["ext"])
