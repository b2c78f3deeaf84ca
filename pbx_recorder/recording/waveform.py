"""Waveform peaks of a recording, computed from a stream of WAV bytes (pure, no I/O).

:class:`WavPeaks` is fed the decoded audio block by block (any block sizes: a header or a frame
may be cut anywhere) and keeps only one bucket's worth of samples, so a 1-hour recording costs
the same memory as a 1-second one.  It reads 16-bit (and 8-bit) PCM WAV as Asterisk and
FreeSWITCH write it, and as ``sox`` / ``opusdec`` write it to a pipe (a data chunk whose size is
unknown or wrong: the data then runs to the end of the stream).

Result (:meth:`WavPeaks.result`)::

    {"rate": buckets per second, "duration": seconds, "channels": n,
     "peaks": [0..100 per bucket, all channels],
     "channel_peaks": [[0..100 per bucket] per channel] (only when n == 2)}

A peak is the bucket's largest absolute sample as a percentage of full scale (to 1/128).
"""

from __future__ import annotations

import struct
from typing import Any

from pbx_recorder.errors import RecorderError

#: at most this many buckets per recording (a 1-hour call: 3.3 per second), at most 10 per second
MAX_BUCKETS = 12000
MAX_RATE = 10.0
_HEADER_LIMIT = 1 << 16  # a RIFF header larger than this is not a recording
#: a sample's top byte -> its magnitude 0..127: signed 16-bit (two's complement), unsigned 8-bit
_MAGNITUDE_16 = bytes(b if b < 128 else 255 - b for b in range(256))
_MAGNITUDE_8 = bytes(min(abs(b - 128), 127) for b in range(256))


def _percent(magnitude: int) -> int:
    return min(100, round(100 * magnitude / 127))


class WaveformError(RecorderError):
    """The audio is not WAV PCM this module can read."""


def bucket_rate(duration_hint_s: float | None) -> float:
    """Buckets per second for a recording of about ``duration_hint_s`` seconds."""
    if not duration_hint_s or duration_hint_s <= 0:
        return MAX_RATE
    return min(MAX_RATE, MAX_BUCKETS / duration_hint_s)


class WavPeaks:
    def __init__(self, duration_hint_s: float | None = None) -> None:
        self._head = bytearray()
        self._in_data = False
        self._pending = b""
        self.channels = 0
        self.sample_rate = 0
        self.width = 0
        self.frames = 0
        self._rate = bucket_rate(duration_hint_s)
        self._bucket_frames = 0
        self._peaks: list[int] = []
        self._channel_peaks: list[list[int]] = []

    # -- header ----------------------------------------------------------------------------
    def _parse_header(self) -> None:
        head = bytes(self._head)
        if len(head) >= 12 and (head[:4] != b"RIFF" or head[8:12] != b"WAVE"):
            raise WaveformError("not a WAV stream")
        pos = 12
        while len(head) >= pos + 8:
            cid, size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
            if cid == b"data":
                if not self.channels:
                    raise WaveformError("WAV data before its fmt chunk")
                self._in_data = True
                rest = head[pos + 8:]
                self._head = bytearray()
                self._feed_samples(rest)
                return
            if len(head) < pos + 8 + size:
                break
            if cid == b"fmt ":
                fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, pos + 8)
                if fmt not in (1, 0xFFFE) or bits not in (8, 16) or not 1 <= channels <= 8 or rate <= 0:
                    raise WaveformError(f"WAV format {fmt} with {bits} bits is not PCM this reads")
                self.channels, self.sample_rate, self.width = channels, rate, bits // 8
                self._bucket_frames = max(1, round(rate / self._rate))
                self._channel_peaks = [[] for _ in range(channels)] if channels == 2 else []
            pos += 8 + size + (size & 1)
        if len(head) > _HEADER_LIMIT:
            raise WaveformError("no WAV data chunk in the first 64 KiB")

    def feed(self, block: bytes) -> None:
        if not self._in_data:
            self._head += block
            self._parse_header()
            return
        self._feed_samples(block)

    # -- samples ---------------------------------------------------------------------------
    def _feed_samples(self, block: bytes) -> None:
        step = self._bucket_frames * self.channels * self.width
        data = self._pending + block if self._pending else block
        end = len(data) - len(data) % step
        for start in range(0, end, step):
            self._bucket(data[start:start + step])
        self._pending = bytes(data[end:])

    def _bucket(self, raw: bytes) -> None:
        frame = self.channels * self.width
        usable = len(raw) - len(raw) % frame
        if usable <= 0:
            return
        raw = raw[:usable]
        self.frames += usable // frame
        # the magnitude of each sample's most significant byte (little-endian: the last byte of a
        # sample), mapped by a table in C: 1/128 of full scale is precision enough for a picture,
        # and no Python object is made per sample (bytes iterate as cached small ints)
        table, top = (_MAGNITUDE_16, self.width - 1) if self.width == 2 else (_MAGNITUDE_8, 0)
        per_channel = [max(raw[ch * self.width + top::frame].translate(table))
                       for ch in range(self.channels)]
        self._peaks.append(_percent(max(per_channel)))
        for ch, out in enumerate(self._channel_peaks):
            out.append(_percent(per_channel[ch]))

    def result(self) -> dict[str, Any]:
        if not self._in_data:
            raise WaveformError("the stream ended before the WAV data")
        if self._pending:
            self._bucket(self._pending)
            self._pending = b""
        seconds = self.frames / self.sample_rate if self.sample_rate else 0.0
        return {"rate": self.sample_rate / self._bucket_frames, "duration": round(seconds, 3),
                "channels": self.channels, "peaks": self._peaks, "channel_peaks": self._channel_peaks}
