"""VIP caller lookup for the consent AGI server (runs in AGI threads: sync I/O is fine).

Sources: a text file (one number per line, ``#`` comments, re-read when its mtime
changes) and/or a Redis set (``SISMEMBER``) when ``redis_url`` is configured.  Numbers are
compared after removing spaces, dashes, dots and parentheses.  A Redis failure is logged
and the file (if any) answers: the lookup never blocks a call for long (0.5 s timeouts).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from pbx_recorder.core.masking import mask_number

log = logging.getLogger(__name__)
_JUNK = re.compile(r"[\s\-.()]")


def normalize_number(number: str) -> str:
    return _JUNK.sub("", number or "")[:40]


class VipDirectory:
    def __init__(
        self,
        file: str | Path | None = None,
        redis_url: str | None = None,
        redis_key: str = "pbx-recorder:vip",
        redis_client: Any = None,
    ) -> None:
        self.file = Path(file) if file else None
        self.redis_key = redis_key
        self._redis = redis_client
        if self._redis is None and redis_url:
            import redis  # only the composition of a Redis deployment needs it

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._numbers: frozenset[str] = frozenset()
        self._mtime: float | None = None
        self._lock = threading.Lock()

    def _file_numbers(self) -> frozenset[str]:
        if self.file is None:
            return frozenset()
        try:
            mtime = os.stat(self.file).st_mtime
        except OSError:
            return self._numbers
        with self._lock:
            if mtime != self._mtime:
                try:
                    lines = self.file.read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError as exc:
                    log.warning("VIP file %s unreadable: %s", self.file, exc)
                    return self._numbers
                self._numbers = frozenset(
                    n for n in (normalize_number(line.split("#", 1)[0]) for line in lines) if n
                )
                self._mtime = mtime
                log.info("VIP file %s: %d number(s)", self.file, len(self._numbers))
            return self._numbers

    def is_vip(self, number: str) -> bool:
        key = normalize_number(number)
        if not key:
            return False
        if self._redis is not None:
            try:
                return bool(self._redis.sismember(self.redis_key, key))
            except Exception as exc:  # redis errors: fall back to the file
                log.warning("VIP lookup in Redis failed for %s (%s); using the file", mask_number(key), exc)
        return key in self._file_numbers()
