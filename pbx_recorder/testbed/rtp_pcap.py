"""One continuous RTP stream per call, written as a pcap for sipp's ``play_pcap_audio``.

Why: sipp replays a pcap as recorded (sequence numbers and timestamps included).  Replaying
the 7 s ``g711a.pcap`` again and again, or resuming it after a DTMF pcap, sends the same
sequence numbers again; Asterisk 22 drops those as duplicates, so its recording stopped
growing at the first replay (a 30 s call recorded 7 s).  Here a call's whole caller audio is
one stream: one SSRC, sequence numbers and timestamps that only grow, A-law (payload type 8)
every 20 ms, with RFC 4733 telephone-events (payload type 101, as the scenarios' SDP offers)
in place of the audio while a digit is pressed.

The audio is a speech-band sweep made by sox once per process (``sox -n ... synth``) and
looped.  Files are cached by content (``~/.cache/pbx-recorder/pcaps/call-<sha256>.pcap``),
written atomically.
Pure functions build the bytes (:func:`rtp_stream`, :func:`pcap_bytes`); only
:func:`call_pcap` and :func:`_sox_alaw` touch the disk or run a program.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

PT_ALAW = 8
PT_EVENT = 101
CLOCK = 8000
PTIME_MS = 20
SAMPLES = CLOCK * PTIME_MS // 1000  # 160 per packet
DIGIT_MS = 200  # how long each digit is held
EVENT_END_REPEATS = 3  # RFC 4733 2.5.1.4: the end packet is sent three times
EVENT_VOLUME = 10  # -10 dBm0
_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
FORMAT_VERSION = "1"  # bump when the bytes change, so caches are rebuilt


def event_code(digit: str) -> int:
    try:
        return _EVENTS[digit.upper()]
    except KeyError:
        raise ValueError(f"not a DTMF digit: {digit!r}") from None


def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF,
                       ssrc) + payload


def rtp_stream(duration_ms: int, audio: bytes, digits: Sequence[tuple[int, str]] = (),
               ssrc: int = 0x50425852) -> list[tuple[int, bytes]]:
    """``[(send_at_ms, rtp bytes)]`` for ``duration_ms`` of caller audio with ``digits``
    ``[(at_ms, digit)]`` (each held :data:`DIGIT_MS`) replacing the audio while pressed."""
    if not audio:
        raise ValueError("no audio samples")
    presses = sorted((max(0, at) // PTIME_MS * PTIME_MS, event_code(d)) for at, d in digits)
    for (a, _), (b, _) in zip(presses, presses[1:], strict=False):
        if b - a < DIGIT_MS + 2 * PTIME_MS:
            raise ValueError(f"digits at {a} and {b} ms overlap (each is held {DIGIT_MS} ms)")
    out: list[tuple[int, bytes]] = []
    seq = 0
    tick = 0  # packet slot: send time tick * 20 ms, RTP timestamp tick * 160
    pending = list(presses)
    while tick * PTIME_MS < duration_ms:
        now = tick * PTIME_MS
        if pending and pending[0][0] <= now:
            _, code = pending.pop(0)
            start_ts, slots = tick * SAMPLES, DIGIT_MS // PTIME_MS
            for n in range(slots):
                end = n == slots - 1
                body = struct.pack("!BBH", code, (0x80 if end else 0) | EVENT_VOLUME, (n + 1) * SAMPLES)
                for _ in range(EVENT_END_REPEATS if end else 1):
                    out.append(((tick + n) * PTIME_MS, rtp_packet(PT_EVENT, seq, start_ts, ssrc, body,
                                                                  marker=n == 0)))
                    seq += 1
            tick += slots
            continue
        offset = (tick * SAMPLES) % len(audio)
        chunk = (audio[offset:] + audio)[:SAMPLES] if offset + SAMPLES > len(audio) else \
            audio[offset:offset + SAMPLES]
        out.append((now, rtp_packet(PT_ALAW, seq, tick * SAMPLES, ssrc, chunk)))
        seq += 1
        tick += 1
    return out


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(payload: bytes, sport: int = 6000, dport: int = 6000) -> bytes:
    """Ethernet + IPv4 (127.0.0.1 -> 127.0.0.1) + UDP around ``payload`` (sipp rewrites ports)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def pcap_bytes(packets: Iterable[tuple[int, bytes]]) -> bytes:
    """A classic pcap (DLT_EN10MB) of RTP payloads sent at the given milliseconds."""
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for at_ms, rtp in packets:
        frame = udp_frame(rtp)
        parts.append(struct.pack("<IIII", at_ms // 1000, (at_ms % 1000) * 1000, len(frame), len(frame)))
        parts.append(frame)
    return b"".join(parts)


@functools.lru_cache(maxsize=1)
def _sox_alaw() -> bytes:
    """One second of a 300-3000 Hz sweep at half scale, A-law, 8 kHz mono (raw bytes)."""
    done = subprocess.run(["sox", "-n", "-r", str(CLOCK), "-c", "1", "-e", "a-law", "-t", "raw", "-",
                           "synth", "1", "sine", "300-3000", "vol", "0.5"],
                          capture_output=True, timeout=30, check=True)
    if len(done.stdout) != CLOCK:
        raise RuntimeError(f"sox made {len(done.stdout)} bytes of audio, expected {CLOCK}")
    return done.stdout


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pbx-recorder/pcaps`` (``~/.cache/...``): the user's own, outside /tmp,
    which tests watch for stray files."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pbx-recorder" / "pcaps"


def call_pcap(duration_ms: int, digits: Sequence[tuple[int, str]] = (),
              cache_dir: str | Path | None = None) -> Path:
    """The pcap of one call's caller audio (built once per content, then reused)."""
    audio = _sox_alaw()
    key = hashlib.sha256(repr((FORMAT_VERSION, duration_ms, sorted(digits), audio)).encode()).hexdigest()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"call-{key[:24]}.pcap"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:  # someone else's (or everyone's) folder
        raise PermissionError(f"pcap cache {folder} is not ours alone (owner {info.st_uid}, "
                              f"mode {info.st_mode & 0o777:o})")
    if path.is_file():
        return path
    data = pcap_bytes(rtp_stream(duration_ms, audio, digits))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".call-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
