"""Read what an Ogg/Opus file says about itself, without decoding it (RFC 7845).

* ``OpusHead`` (first packet): channel count, pre-skip (48 kHz samples), input rate.
* The last page's granule position counts 48 kHz samples *including* the pre-skip, so
  the decoded length is ``granule - pre_skip`` samples at 48 kHz, whatever the input rate.

The pages are walked from the start by their header lengths (no searching for ``OggS``
inside payloads), which also checks that the file is a complete, single-stream Ogg file
ending with an end-of-stream page.  Packet payload bytes are summed so a benchmark can
report the container overhead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from pbx_recorder.errors import IntegrityError

OPUS_RATE = 48_000
_PAGE = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, seq, crc, segments
_EOS = 0x04


@dataclass(frozen=True, slots=True)
class OpusInfo:
    channels: int
    pre_skip: int  # 48 kHz samples
    input_rate: int  # what the encoder was fed (informational)
    final_granule: int
    pages: int
    packet_bytes: int  # sum of all packet payloads, headers included
    file_bytes: int

    @property
    def samples_48k(self) -> int:
        return self.final_granule - self.pre_skip

    @property
    def duration_s(self) -> float:
        return self.samples_48k / OPUS_RATE

    @property
    def container_bytes(self) -> int:
        """Ogg page headers and segment tables."""
        return self.file_bytes - self.packet_bytes


def read_info(path: Path) -> OpusInfo:
    data = Path(path).read_bytes()
    pos = pages = packet_bytes = 0
    serial = granule = -1
    head = b""
    flags = 0
    while pos < len(data):
        if len(data) - pos < _PAGE.size:
            raise IntegrityError(f"{path.name}: truncated Ogg page header at byte {pos}")
        capture, version, flags, page_granule, page_serial, _seq, _crc, nseg = _PAGE.unpack_from(data, pos)
        if capture != b"OggS" or version != 0:
            raise IntegrityError(f"{path.name}: no Ogg page at byte {pos}")
        if serial not in (-1, page_serial):
            raise IntegrityError(f"{path.name}: more than one logical stream")
        serial = page_serial
        lacing = data[pos + _PAGE.size : pos + _PAGE.size + nseg]
        body = pos + _PAGE.size + nseg
        size = sum(lacing)
        if len(lacing) != nseg or body + size > len(data):
            raise IntegrityError(f"{path.name}: truncated Ogg page at byte {pos}")
        if pages == 0:
            head = data[body : body + size]
        if page_granule != -1:
            granule = page_granule
        packet_bytes += size
        pages += 1
        pos = body + size
    if len(head) < 19 or not head.startswith(b"OpusHead"):
        raise IntegrityError(f"{path.name}: not an Ogg/Opus file (no OpusHead)")
    if not flags & _EOS:
        raise IntegrityError(f"{path.name}: the last Ogg page is not end-of-stream (incomplete file)")
    channels = head[9]
    pre_skip, input_rate = struct.unpack_from("<HI", head, 10)
    if granule < pre_skip:
        raise IntegrityError(f"{path.name}: final granule {granule} is below the pre-skip {pre_skip}")
    return OpusInfo(channels, pre_skip, input_rate, granule, pages, packet_bytes, len(data))
