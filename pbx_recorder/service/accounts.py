"""Local accounts of the operator service: argon2 password hashes, lockout, teams, QA assignments.

Passwords are hashed with argon2id through ``argon2-cffi`` (its RFC 9106 low-memory profile by
default); only the PHC string is stored.  A login that fails :data:`MAX_FAILURES` times in a row
locks the account for :data:`LOCK_SECONDS`; while locked even the right password is refused.  An
unknown name costs the same hash work as a known one (one verify against :func:`dummy_hash`, a
hash made once per process, never per request), and every refusal says the same thing to the
client (``LoginRefused.reason`` goes to the audit log only).

Every change and every login (success or failure) is written through
:func:`pbx_recorder.audit_trail.record`, in the same transaction as the change.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pbx_recorder import audit_trail
from pbx_recorder.errors import CatalogError, ConfigError, LoginRefused, NotFound
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import request_tag
from pbx_recorder.service.roles import ROLES, scope_for

MAX_FAILURES = 5  #: consecutive failed logins that lock an account
LOCK_SECONDS = 15 * 60  #: how long a locked account stays locked
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  #: longer is refused before hashing (no hashing of megabytes)
MAX_NAME = 64
_REFUSED = "wrong user name or password, or the account is disabled or locked"
_DUMMY_PASSWORD = "not a password of anyone"
_dummies: dict[tuple[Any, ...], str] = {}
_dummies_lock = threading.Lock()


def dummy_hash(hasher: PasswordHasher) -> str:
    """The hash an unknown name's password is verified against, made once per process for each
    hasher and its parameters.  Made per request, it would cost an unknown name a hash on top of
    the verify, and that difference in time tells a guesser which names exist."""
    key = (type(hasher), *(getattr(hasher, attr, None) for attr in
                           ("time_cost", "memory_cost", "parallelism", "hash_len", "salt_len", "type")))
    with _dummies_lock:  # parallel first logins make it once
        if key not in _dummies:
            _dummies[key] = hasher.hash(_DUMMY_PASSWORD)
        return _dummies[key]


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    disabled: bool
    failed_logins: int
    locked_until: float | None
    teams: tuple[str, ...] = ()


def check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "._-@" for c in name):
        raise ConfigError(f"user name {name[:MAX_NAME]!r}: 1-{MAX_NAME} letters, digits, . _ - @")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


class Accounts:
    """The account tables of one catalog connection (``users``, ``user_teams``, ``team_agents``,
    ``qa_assignments``).  ``hasher``: an ``argon2.PasswordHasher`` (tests pass a cheaper one)."""

    def __init__(self, conn: sqlite3.Connection, *, hasher: PasswordHasher | None = None,
                 max_failures: int = MAX_FAILURES, lock_seconds: float = LOCK_SECONDS) -> None:
        self.conn = conn
        self.hasher = hasher or PasswordHasher()
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds

    @property
    def _dummy(self) -> str:
        """A hash to verify against for an unknown name (:func:`dummy_hash`)."""
        return dummy_hash(self.hasher)

    # -- reads -------------------------------------------------------------------
    def get(self, name: str) -> User | None:
        row = self.conn.execute("SELECT name, role, disabled, failed_logins, locked_until FROM users "
                                "WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return User(str(row[0]), str(row[1]), bool(row[2]), int(row[3]),
                    None if row[4] is None else float(row[4]), self.teams_of(name))

    def list(self) -> list[User]:
        names = [str(r[0]) for r in self.conn.execute("SELECT name FROM users ORDER BY name").fetchall()]
        return [u for u in (self.get(n) for n in names) if u is not None]

    def teams_of(self, name: str) -> tuple[str, ...]:
        rows = self.conn.execute("SELECT team FROM user_teams WHERE user_name = ? ORDER BY team",
                                 (name,)).fetchall()
        return tuple(str(r[0]) for r in rows)

    def agents_of(self, teams: Iterable[str]) -> frozenset[str]:
        agents: set[str] = set()
        for team in teams:
            rows = self.conn.execute("SELECT agent FROM team_agents WHERE team = ?", (team,)).fetchall()
            agents.update(str(r[0]) for r in rows)
        return frozenset(agents)

    def scope(self, user: User) -> Any:
        """The user's row scope (:class:`pbx_recorder.catalog.scopes.Scope`), read fresh."""
        agents = self.agents_of(user.teams) if user.role == "supervisor" else frozenset()
        return scope_for(user.role, user.name, agents)

    # -- changes (each audited in its own transaction) ------------------------------
    def _audit(self, actor: str, role: str, action: str, target: str, detail: dict[str, Any],
               now: float) -> None:
        audit_trail.record(self.conn, actor=actor, role=role, action=action, target=target,
                           detail=request_tag.tagged(detail), now=now)

    def add(self, name: str, role: str, password: str, *, teams: Iterable[str] = (), actor: str,
            actor_role: str, now: float) -> User:
        check_name(name)
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        digest = self.hasher.hash(check_password(password))
        teams = sorted(set(teams))
        with Tx(self.conn):
            if self.get(name) is not None:
                raise CatalogError(f"user {name!r} exists")
            self.conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?,?,?,?,?)",
                (name, role, digest, now, now))
            for team in teams:
                self.conn.execute("INSERT INTO user_teams (user_name, team) VALUES (?, ?)", (name, team))
            self._audit(actor, actor_role, "users.add", name, {"role": role, "teams": teams}, now)
        user = self.get(name)
        assert user is not None
        return user

    def _existing(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    def disable(self, name: str, *, actor: str, actor_role: str, now: float) -> None:
        """Disable the account and end its sessions."""
        self._existing(name)
        with Tx(self.conn):
            self.conn.execute("UPDATE users SET disabled = 1, updated_at = ? WHERE name = ?", (now, name))
            self.conn.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
            self._audit(actor, actor_role, "users.disable", name, {}, now)

    def reset_password(self, name: str, password: str, *, actor: str, actor_role: str,
                       now: float) -> None:
        """New password, lock and failure count cleared, every session of the user ended."""
        self._existing(name)
        digest = self.hasher.hash(check_password(password))
        with Tx(self.conn):
            self.conn.execute("UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = NULL, "
                              "updated_at = ? WHERE name = ?", (digest, now, name))
            self.conn.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
            self._audit(actor, actor_role, "users.reset_password", name, {}, now)

    def set_team_agents(self, team: str, agents: Iterable[str], *, actor: str, actor_role: str,
                        now: float) -> None:
        agents = sorted(set(agents))
        with Tx(self.conn):
            self.conn.execute("DELETE FROM team_agents WHERE team = ?", (team,))
            for agent in agents:
                self.conn.execute("INSERT INTO team_agents (team, agent) VALUES (?, ?)", (team, agent))
            self._audit(actor, actor_role, "teams.set_agents", team, {"agents": agents}, now)

    def assign_review(self, call_id: str, reviewer: str, *, actor: str, actor_role: str,
                      now: float) -> None:
        with Tx(self.conn):
            self.conn.execute("INSERT INTO qa_assignments (call_id, reviewer, assigned_by, assigned_at) "
                              "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (call_id, reviewer, actor, now))
            self._audit(actor, actor_role, "qa.assign", call_id, {"reviewer": reviewer}, now)

    # -- login -------------------------------------------------------------------------
    def authenticate(self, name: str, password: str, *, client: str, now: float,
                     second_factor: bool = False) -> User:
        """The user, when ``password`` is theirs and the account is usable; else ``LoginRefused``.
        Success and failure are audited (the failure with its reason).  ``second_factor``: a
        TOTP code must follow, so the success is audited as ``login.password`` and the failure
        count is left as it is (a right password between wrong codes does not reset it)."""
        if len(password) > MAX_PASSWORD or len(name) > MAX_NAME:
            self._refuse(name[:MAX_NAME], "", "too_long", client, now)
        row = self.conn.execute("SELECT role, password_hash, disabled, failed_logins, locked_until "
                                "FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._verify(self._dummy, password)  # the same work as for a real account
            self._refuse(name, "", "unknown", client, now)
        role, digest, disabled, locked_until = str(row[0]), str(row[1]), bool(row[2]), row[4]
        good = self._verify(digest or self._dummy, password) and bool(digest)  # '' never logs in
        if locked_until is not None and float(locked_until) > now:
            self._refuse(name, role, "locked", client, now)
        if disabled:
            self._refuse(name, role, "disabled", client, now)
        if not good:
            self.count_failure(name, role, client, now)
            self._refuse(name, role, "password", client, now)
        with Tx(self.conn):
            if not second_factor:
                self.conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?",
                                  (name,))
            if self.hasher.check_needs_rehash(digest):
                self.conn.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                                  (self.hasher.hash(password), name))
            self._audit(name, role, "login.password" if second_factor else "login", name,
                        {"client": client}, now)
        user = self.get(name)
        assert user is not None
        return user

    def count_failure(self, name: str, role: str, client: str, now: float) -> bool:
        """One more failed login (password or second factor) of ``name``; True when it locks."""
        with Tx(self.conn):  # counted in the database: parallel guesses are all counted
            self.conn.execute("UPDATE users SET failed_logins = failed_logins + 1 WHERE name = ?", (name,))
            failed = int(self.conn.execute("SELECT failed_logins FROM users WHERE name = ?",
                                           (name,)).fetchone()[0])
            if failed < self.max_failures:
                return False
            lock = now + self.lock_seconds
            self.conn.execute("UPDATE users SET failed_logins = 0, locked_until = ? WHERE name = ?",
                              (lock, name))
            self.conn.execute("DELETE FROM sessions WHERE user_name = ? AND stage <> 'ok'", (name,))
            self._audit(name, role, "login.locked", name,
                        {"client": client, "failures": failed, "until": lock}, now)
        return True

    def login_done(self, name: str, role: str, client: str, now: float) -> None:
        """The second factor passed: failures cleared, the login audited."""
        with Tx(self.conn):
            self.conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?",
                              (name,))
            self._audit(name, role, "login", name, {"client": client, "factor": "totp"}, now)

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(digest, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _refuse(self, name: str, role: str, reason: str, client: str, now: float) -> Any:
        with Tx(self.conn):
            self._audit(name, role, "login.failed", name, {"client": client, "reason": reason}, now)
        raise LoginRefused(_REFUSED, reason=reason)
