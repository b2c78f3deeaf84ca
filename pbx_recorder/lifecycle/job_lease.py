"""One node at a time for lifecycle jobs (migrate, capacity, retention apply, catalog backup).

With ``redis.url`` configured, several recorder nodes share storage: a job takes a Redis
lease (``storage.claims``: claim-once, renew and release only by the holder) named after
the job, renewed in the background while it runs, so a second node's cron run of the same
job does nothing and says who holds it.  Without Redis (the embedded single-node mode) an
``flock`` on a file beside the catalog keeps two runs on the same host from overlapping.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storage import file_modes

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 300.0


@contextmanager
def exclusive_job(config: Any, job: str, ttl_s: float = DEFAULT_TTL_S) -> Iterator[str]:
    """Yield "" when this process holds the job, else a sentence naming who does."""
    if config.redis.url:
        with _redis_lease(config, job, ttl_s) as busy:
            yield busy
    else:
        with _file_lock(Path(config.catalog.path).parent / f".lifecycle-{job}.lock") as busy:
            yield busy


@contextmanager
def node_lock(key_dir: Path) -> Iterator[str]:
    """This host's lock on its backup keys (a file in ``key_dir``): a backup taken under a key and
    the destruction of that key (``backup_shred.share``) never overlap on one node, whichever
    node holds the cluster's lease.  Yields "" when held, else who holds it."""
    with _file_lock(Path(key_dir) / ".lock") as busy:
        yield busy


@contextmanager
def _redis_lease(config: Any, job: str, ttl_s: float) -> Iterator[str]:
    from storage.claims import RedisClaimer  # redis only where it is configured

    claimer = RedisClaimer(config.redis.url, config.node)
    try:
        with _held(claimer.lease(f"lifecycle:{job}", ttl_s), job, ttl_s) as busy:
            yield busy
    finally:
        claimer.close()  # its connections, not left to the garbage collector


@contextmanager
def _held(lease: Any, job: str, ttl_s: float) -> Iterator[str]:
    if not lease.acquire():
        yield f"{job} is running on node {lease.holder() or 'unknown'}; nothing done here"
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            if not lease.renew():
                log.error("lost the %s lease: another node may start the job", job)
                return

    keeper = threading.Thread(target=renew, name=f"lease-{job}", daemon=True)
    keeper.start()
    try:
        yield ""
    finally:
        stop.set()
        keeper.join(timeout=5)
        lease.release()


@contextmanager
def _file_lock(path: Path) -> Iterator[str]:
    file_modes.private_dir(path.parent, tighten=False)
    try:
        os.close(file_modes.open_new(path))
    except FileExistsError:
        pass
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield f"another run holds {path}; nothing done here"
            return
        try:
            yield ""
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
