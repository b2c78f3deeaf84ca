"""Claim-once job ownership across shipper nodes, and leases for one-node-at-a-time jobs.

* ``claim(recording_id, ttl_s) -> bool``: True for exactly one caller until ``release`` or
  the TTL runs out (a crashed node's claim expires).  False once ``done`` was recorded.
* ``done(recording_id)``: a durable "shipped" marker; later claims return False, so a job
  is idempotent across nodes.  ``forget`` clears it (a deliberate re-ship).
* ``Lease(name, ttl_s)``: ``acquire`` / ``renew`` / ``release``; renewal and release only
  succeed for the holder's own token (compare-and-set Lua scripts, run by redis-py).

``LocalClaimer`` is the same contract in one process (tests, single-node installs).
The shipper only needs ``claim(recording_id) -> bool`` and ``release(recording_id)``.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import RedisError

from pbx_recorder.errors import TierUnavailable

log = logging.getLogger(__name__)
DEFAULT_CLAIM_TTL_S = 900.0

# KEYS[1] = key, ARGV[1] = token: delete only if we still hold it.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] = key, ARGV[1] = token, ARGV[2] = ttl ms: extend only if we still hold it.
RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS[1] = claim key, KEYS[2] = done key, ARGV[1] = token, ARGV[2] = ttl ms.
CLAIM_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""


class RedisClaimer:
    def __init__(self, redis_url: str, node: str, *, namespace: str = "pbx-recorder",
                 default_ttl_s: float = DEFAULT_CLAIM_TTL_S, client: Any = None) -> None:
        self.node = node
        self.namespace = namespace
        self.default_ttl_s = default_ttl_s
        self._own_client = client is None  # made here: closed by close()
        self.redis = client or redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._claim = self.redis.register_script(CLAIM_LUA)
        self._release = self.redis.register_script(RELEASE_LUA)
        self._renew = self.redis.register_script(RENEW_LUA)
        self._tokens: dict[str, str] = {}
        self._guard = threading.Lock()

    def _key(self, kind: str, name: str) -> str:
        return f"{self.namespace}:{kind}:{name}"

    def _run(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except RedisError as exc:
            raise TierUnavailable(f"redis claims ({what}): {exc}") from exc

    def claim(self, recording_id: str, ttl_s: float | None = None) -> bool:
        token = f"{self.node}:{secrets.token_hex(8)}"
        ttl_ms = int((ttl_s or self.default_ttl_s) * 1000)
        keys = [self._key("claim", recording_id), self._key("done", recording_id)]
        got = bool(self._run("claim", lambda: self._claim(keys=keys, args=[token, ttl_ms])))
        if got:
            with self._guard:
                self._tokens[recording_id] = token
        log.debug("claim %s by %s: %s", recording_id, self.node, "won" if got else "held elsewhere or done")
        return got

    def renew(self, recording_id: str, ttl_s: float | None = None) -> bool:
        token = self._tokens.get(recording_id)
        if token is None:
            return False
        ttl_ms = int((ttl_s or self.default_ttl_s) * 1000)
        key = self._key("claim", recording_id)
        return bool(self._run("renew", lambda: self._renew(keys=[key], args=[token, ttl_ms])))

    def release(self, recording_id: str) -> None:
        with self._guard:
            token = self._tokens.pop(recording_id, None)
        if token is not None:
            key = self._key("claim", recording_id)
            self._run("release", lambda: self._release(keys=[key], args=[token]))

    def done(self, recording_id: str) -> None:
        """Record durably that ``recording_id`` is shipped (no expiry), then drop our claim."""
        self._run("done", lambda: self.redis.set(self._key("done", recording_id), self.node))
        self.release(recording_id)

    def is_done(self, recording_id: str) -> bool:
        return bool(self._run("is_done", lambda: self.redis.exists(self._key("done", recording_id))))

    def forget(self, recording_id: str) -> None:
        self._run("forget", lambda: self.redis.delete(self._key("done", recording_id)))

    def lease(self, name: str, ttl_s: float) -> RedisLease:
        return RedisLease(self, name, ttl_s)

    def close(self) -> None:
        """Close the connections of a client made here (a passed-in client is its owner's)."""
        if self._own_client:
            self.redis.close()


class RedisLease:
    """A named lease held by one node at a time; renew it well within ``ttl_s``."""

    def __init__(self, claimer: RedisClaimer, name: str, ttl_s: float) -> None:
        self.claimer = claimer
        self.name = name
        self.ttl_ms = int(ttl_s * 1000)
        self.token = f"{claimer.node}:{secrets.token_hex(8)}"
        self.key = claimer._key("lease", name)
        self.held = False

    def acquire(self) -> bool:
        r = self.claimer.redis
        ok = self.claimer._run("lease", lambda: r.set(self.key, self.token, nx=True, px=self.ttl_ms))
        self.held = bool(ok)
        return self.held

    def renew(self) -> bool:
        args: list[str | int] = [self.token, self.ttl_ms]
        self.held = bool(self.claimer._run("lease renew",
                                           lambda: self.claimer._renew(keys=[self.key], args=args)))
        return self.held

    def release(self) -> bool:
        script, keys, args = self.claimer._release, [self.key], [self.token]
        done = self.claimer._run("lease release", lambda: script(keys=keys, args=args))
        self.held = False
        return bool(done)

    def holder(self) -> str:
        value = self.claimer._run("lease holder", lambda: self.claimer.redis.get(self.key))
        return value.decode().rsplit(":", 1)[0] if value else ""

    def __enter__(self) -> RedisLease:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.release()


class LocalClaimer:
    """The same contract within one process (monotonic clock, thread-safe)."""

    def __init__(self, node: str = "local", *, default_ttl_s: float = DEFAULT_CLAIM_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.default_ttl_s = default_ttl_s
        self.clock = clock
        self._claims: dict[str, tuple[str, float]] = {}  # key -> (token, expires_at)
        self._done: set[str] = set()
        self._tokens: dict[str, str] = {}
        self._guard = threading.Lock()

    def _take(self, key: str, token: str, ttl_s: float) -> bool:
        now = self.clock()
        held = self._claims.get(key)
        if held and held[1] > now:
            return False
        self._claims[key] = (token, now + ttl_s)
        return True

    def _drop(self, key: str, token: str) -> bool:
        held = self._claims.get(key)
        if held and held[0] == token:
            del self._claims[key]
            return True
        return False

    def _extend(self, key: str, token: str, ttl_s: float) -> bool:
        held = self._claims.get(key)
        if held and held[0] == token and held[1] > self.clock():
            self._claims[key] = (token, self.clock() + ttl_s)
            return True
        return False

    def claim(self, recording_id: str, ttl_s: float | None = None) -> bool:
        token = secrets.token_hex(8)
        with self._guard:
            if recording_id in self._done or not self._take("claim:" + recording_id, token,
                                                            ttl_s or self.default_ttl_s):
                return False
            self._tokens[recording_id] = token
            return True

    def renew(self, recording_id: str, ttl_s: float | None = None) -> bool:
        with self._guard:
            token = self._tokens.get(recording_id, "")
            return self._extend("claim:" + recording_id, token, ttl_s or self.default_ttl_s)

    def release(self, recording_id: str) -> None:
        with self._guard:
            token = self._tokens.pop(recording_id, None)
            if token:
                self._drop("claim:" + recording_id, token)

    def done(self, recording_id: str) -> None:
        with self._guard:
            self._done.add(recording_id)
        self.release(recording_id)

    def is_done(self, recording_id: str) -> bool:
        with self._guard:
            return recording_id in self._done

    def forget(self, recording_id: str) -> None:
        with self._guard:
            self._done.discard(recording_id)

    def lease(self, name: str, ttl_s: float) -> LocalLease:
        return LocalLease(self, name, ttl_s)


class LocalLease:
    def __init__(self, claimer: LocalClaimer, name: str, ttl_s: float) -> None:
        self.claimer, self.name, self.ttl_s = claimer, name, ttl_s
        self.token = f"{claimer.node}:{secrets.token_hex(8)}"
        self.held = False

    def acquire(self) -> bool:
        with self.claimer._guard:
            self.held = self.claimer._take("lease:" + self.name, self.token, self.ttl_s)
        return self.held

    def renew(self) -> bool:
        with self.claimer._guard:
            self.held = self.claimer._extend("lease:" + self.name, self.token, self.ttl_s)
        return self.held

    def release(self) -> bool:
        with self.claimer._guard:
            self.held = False
            return self.claimer._drop("lease:" + self.name, self.token)

    def __enter__(self) -> LocalLease:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.release()


def Lease(claimer: RedisClaimer | LocalClaimer, name: str, ttl_s: float) -> RedisLease | LocalLease:  # noqa: N802
    """``Lease(claimer, name, ttl_s)``: a lease on the claimer's backend."""
    return claimer.lease(name, ttl_s)
