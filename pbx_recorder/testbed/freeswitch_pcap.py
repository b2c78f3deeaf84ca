"""Caller audio for sipp as ONE continuous RTP stream: A-law speech for the whole call, with
RFC 2833 (PT 101) digits inside the same stream.

sipp's ``play_pcap_audio`` stops the running pcap when another starts, and ``g711a.pcap`` lasts
7 s: replaying it leaves gaps and restarts the SSRC/sequence, which FreeSWITCH records as a
shorter file.  ``caller_pcap`` writes a pcap of ``duration_ms`` of 30 ms PCMA packets (the
speech payloads of ``g711a.pcap``, looped, with one SSRC and continuous sequence numbers and
timestamps); a digit replaces the audio for ``DIGIT_MS`` with telephone-event packets (first
with the marker bit, three end packets with the E bit), as a hardware phone does.  Offer
``a=ptime:30`` with it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

SOURCE_PCAP = "/usr/share/sip-tester/g711a.pcap"
PTIME_MS = 30
SAMPLES = 8 * PTIME_MS  # 240 A-law bytes per packet
DIGIT_MS = 240
EVENT_PT = 101
PCMA_PT = 8
_EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def _pcap_records(data: bytes) -> list[bytes]:
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0xA1B2C3D4 else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    skip = 14 if link == 1 else 0  # Ethernet header
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ihl = (frame[skip] & 0x0F) * 4
        out.append(frame[skip + ihl + 8:])  # the RTP packet (after IPv4 + UDP)
    return out


@lru_cache(maxsize=4)
def speech_payloads(source: str = SOURCE_PCAP) -> tuple[bytes, ...]:
    """The 240-byte PCMA payloads of ``source`` (RTP header stripped)."""
    payloads = []
    for rtp in _pcap_records(Path(source).read_bytes()):
        cc = rtp[0] & 0x0F
        body = rtp[12 + 4 * cc:]
        if (rtp[1] & 0x7F) == PCMA_PT and len(body) == SAMPLES:
            payloads.append(body)
    if not payloads:
        raise ValueError(f"no 30 ms PCMA packets in {source}")
    return tuple(payloads)


def _frame(rtp: bytes) -> bytes:
    """Ethernet + IPv4 + UDP around ``rtp`` (sipp rewrites addresses and ports when it plays)."""
    udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    checksum = _ip_checksum(ip)
    ip = ip[:10] + struct.pack("!H", checksum) + ip[12:]
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def rtp_packets(duration_ms: int, digits: Sequence[tuple[int, str]] = (),
                ssrc: int = 0x5EED0001) -> list[tuple[int, bytes]]:
    """``[(send_at_ms, rtp_packet)]``: continuous speech, ``digits`` ``[(at_ms, digit)]`` in between."""
    speech = speech_payloads()
    events = sorted((at - at % PTIME_MS, _EVENT_CODES[d]) for at, d in digits)
    packets: list[tuple[int, bytes]] = []
    seq, n_audio, t = 1000, 0, 0
    while t < duration_ms:
        if events and t >= events[0][0]:
            _, code = events.pop(0)
            stamp = t * 8
            steps = DIGIT_MS // PTIME_MS
            for i in range(1, steps + 3):
                end = i >= steps
                length = min(i, steps) * SAMPLES
                header = struct.pack("!BBHII", 0x80, (0x80 if i == 1 else 0) | EVENT_PT, seq & 0xFFFF,
                                     stamp, ssrc)
                payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, length)
                packets.append((t + min(i - 1, steps - 1) * PTIME_MS, header + payload))
                seq += 1
            t += DIGIT_MS
            continue
        header = struct.pack("!BBHII", 0x80, PCMA_PT, seq & 0xFFFF, (t * 8) & 0xFFFFFFFF, ssrc)
        packets.append((t, header + speech[n_audio % len(speech)]))
        seq, n_audio, t = seq + 1, n_audio + 1, t + PTIME_MS
    return packets


def write_pcap(path: Path, packets: list[tuple[int, bytes]]) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    base = 1_700_000_000
    for at_ms, rtp in packets:
        frame = _frame(rtp)
        out.append(struct.pack("<IIII", base + at_ms // 1000, (at_ms % 1000) * 1000, len(frame), len(frame)))
        out.append(frame)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"".join(out))
    tmp.replace(path)
    return path


def caller_pcap(directory: Path, duration_ms: int, digits: Sequence[tuple[int, str]] = ()) -> Path:
    """The pcap for this (duration, digits), written once into ``directory`` (absolute path)."""
    key = hashlib.sha256(repr((duration_ms, sorted(digits))).encode()).hexdigest()[:16]
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / f"caller-{key}.pcap").resolve()
    if not path.exists():
        write_pcap(path, rtp_packets(duration_ms, digits))
    return path
