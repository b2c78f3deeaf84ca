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

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pbx_recorder import audit_trail
from pbx_recorder.catalog.scopes import MAX_ASSIGNED
from pbx_recorder.errors import CatalogError, ConfigError, LoginRefused, NotFound
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import access_seal, qa_store, request_tag
from pbx_recorder.service.access_seal import AccessSeal
from pbx_recorder.service.roles import ROLES, scope_for

log = logging.getLogger(__name__)

MAX_FAILURES = 5  #: consecutive failed logins that lock an account
LOCK_SECONDS = 15 * 60  #: how long a locked account stays locked
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  #: longer is refused before hashing (no hashing of megabytes)
MAX_NAME = 64
_REFUSED = "wrong user name or password, or the account is disabled or locked"
_DUMMY_PASSWORD = "not a password of anyone"
_UNLOCKED = "(locked_until IS NULL OR locked_until <= ?)"  #: a users row's lock passed (bound: now)
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


def check_name(name: str, what: str = "user name") -> str:
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "._-@" for c in name):
        raise ConfigError(f"{what} {name[:MAX_NAME]!r}: 1-{MAX_NAME} letters, digits, . _ - @")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


class Accounts:
    """The account tables of one catalog connection (``users``, ``user_teams``, ``team_agents``,
    ``qa_assignments``).  ``hasher``: an ``argon2.PasswordHasher`` (tests pass a cheaper one).
    ``seal``: the access rows' seal (:mod:`~pbx_recorder.service.access_seal`) when
    ``web.secret_key_file`` is set: rows are written sealed, and a row that fails its seal is
    read as absent."""

    def __init__(self, conn: sqlite3.Connection, *, hasher: PasswordHasher | None = None,
                 max_failures: int = MAX_FAILURES, lock_seconds: float = LOCK_SECONDS,
                 seal: AccessSeal | None = None) -> None:
        self.conn = conn
        self.seal = seal
        self.hasher = hasher or PasswordHasher()
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds

    @property
    def _dummy(self) -> str:
        """A hash to verify against for an unknown name (:func:`dummy_hash`)."""
        return dummy_hash(self.hasher)

    # -- reads -------------------------------------------------------------------
    def _user_row(self, name: str) -> dict[str, Any] | None:
        """``name``'s row (its sealed columns, failures and lock), None when absent or when it fails
        its seal."""
        row = self.conn.execute(f"SELECT {access_seal.columns('users')}, failed_logins, locked_until "
                                "FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        found = access_seal.as_row("users", row[:-2])
        if not access_seal.valid(self.seal, "users", found):
            return None
        return {**found, "failed_logins": row[-2], "locked_until": row[-1]}

    def get(self, name: str) -> User | None:
        """The account ``name``; None when there is none or its row fails its seal."""
        row = self._user_row(name)
        if row is None:
            return None
        return User(str(row["name"]), str(row["role"]), bool(row["disabled"]), int(row["failed_logins"]),
                    None if row["locked_until"] is None else float(row["locked_until"]), self.teams_of(name))

    def list(self) -> list[User]:
        names = [str(r[0]) for r in self.conn.execute("SELECT name FROM users ORDER BY name").fetchall()]
        return [u for u in (self.get(n) for n in names) if u is not None]

    def teams_of(self, name: str) -> tuple[str, ...]:
        rows = self.conn.execute(f"SELECT {access_seal.columns('user_teams')} FROM user_teams "
                                 "WHERE user_name = ? ORDER BY team", (name,)).fetchall()
        found = (access_seal.as_row("user_teams", r) for r in rows)
        return tuple(str(r["team"]) for r in found if access_seal.valid(self.seal, "user_teams", r))

    def team_map(self) -> dict[str, list[str]]:
        """Every team an account belongs to or that covers agents, with its agents (sorted): each
        access table read once; only rows that pass their seal count."""
        teams: dict[str, set[str]] = {}
        for table in ("user_teams", "team_agents"):
            rows = self.conn.execute(f"SELECT {access_seal.columns(table)} FROM {table}").fetchall()
            for r in (access_seal.as_row(table, row) for row in rows):
                if access_seal.valid(self.seal, table, r):
                    agents = teams.setdefault(str(r["team"]), set())
                    if table == "team_agents":
                        agents.add(str(r["agent"]))
        return {team: sorted(teams[team]) for team in sorted(teams)}

    def agents_of(self, teams: Iterable[str]) -> frozenset[str]:
        """The agents of ``teams`` (a row that fails its seal is not one of them)."""
        agents: set[str] = set()
        for team in teams:
            rows = self.conn.execute(f"SELECT {access_seal.columns('team_agents')} FROM team_agents "
                                     "WHERE team = ?", (team,)).fetchall()
            found = (access_seal.as_row("team_agents", r) for r in rows)
            agents.update(str(r["agent"]) for r in found if access_seal.valid(self.seal, "team_agents", r))
        return frozenset(agents)

    def assigned_calls(self, reviewer: str) -> frozenset[str]:
        """The calls assigned to ``reviewer`` whose assignment holds its seal (the newest
        :data:`~pbx_recorder.catalog.scopes.MAX_ASSIGNED`)."""
        rows = self.conn.execute(f"SELECT {access_seal.columns('qa_assignments')} FROM qa_assignments "
                                 "WHERE reviewer = ? ORDER BY assigned_at DESC, call_id LIMIT ?",
                                 (reviewer, MAX_ASSIGNED)).fetchall()
        if len(rows) == MAX_ASSIGNED:
            log.warning("reviewer %s has more than %d assignments: only the newest are in their scope",
                        reviewer, MAX_ASSIGNED)
        found = (access_seal.as_row("qa_assignments", r) for r in rows)
        return frozenset(str(r["call_id"]) for r in found
                         if access_seal.valid(self.seal, "qa_assignments", r))

    def scope(self, user: User) -> Any:
        """The user's row scope (:class:`pbx_recorder.catalog.scopes.Scope`), read fresh.  With
        sealed rows a reviewer's scope is the calls of their assignments that hold their seal."""
        agents = self.agents_of(user.teams) if user.role == "supervisor" else frozenset()
        if user.role == "qa" and self.seal is not None:
            return scope_for(user.role, user.name, agents, assigned=self.assigned_calls(user.name))
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
            access_seal.insert(self.conn, self.seal, "users", {
                "name": name, "role": role, "password_hash": digest, "disabled": 0, "totp_secret": "",
                "totp_last_step": 0, "created_at": now, "updated_at": now})
            for team in teams:
                access_seal.insert(self.conn, self.seal, "user_teams", {"user_name": name, "team": team})
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
            access_seal.update(self.conn, self.seal, "users", {"name": name},
                               {"disabled": 1, "updated_at": now})
            self.conn.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
            self._audit(actor, actor_role, "users.disable", name, {}, now)

    def reset_password(self, name: str, password: str, *, actor: str, actor_role: str,
                       now: float) -> None:
        """New password, lock and failure count cleared, every session of the user ended."""
        self._existing(name)
        digest = self.hasher.hash(check_password(password))
        with Tx(self.conn):
            access_seal.update(self.conn, self.seal, "users", {"name": name}, {
                "password_hash": digest, "failed_logins": 0, "locked_until": None, "updated_at": now})
            self.conn.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
            self._audit(actor, actor_role, "users.reset_password", name, {}, now)

    def set_team_agents(self, team: str, agents: Iterable[str], *, actor: str, actor_role: str,
                        now: float) -> None:
        agents = sorted(set(agents))
        with Tx(self.conn):
            self.conn.execute("DELETE FROM team_agents WHERE team = ?", (team,))
            for agent in agents:
                access_seal.insert(self.conn, self.seal, "team_agents", {"team": team, "agent": agent})
            self._audit(actor, actor_role, "teams.set_agents", team, {"agents": agents}, now)

    def assign_review(self, call_id: str, reviewer: str, *, actor: str, actor_role: str,
                      now: float) -> None:
        with Tx(self.conn):
            qa_store.assign(self.conn, call_id, reviewer, actor, now, self.seal)  # (replaces a forged row)
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
        exists = self.conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is not None
        row = self._user_row(name) if exists else None
        if row is None:
            self._verify(self._dummy, password)  # the same work as for a real account
            return self._refuse(name, "", "seal" if exists else "unknown", client, now)  # (raises)
        role, digest = str(row["role"]), str(row["password_hash"])
        disabled = bool(row["disabled"])
        allowed = self.begin_attempt(name, role, client, now)  # counted before it is checked
        good = self._verify(digest or self._dummy, password) and bool(digest)  # '' never logs in
        if not allowed:
            self._refuse(name, role, "locked", client, now)
        if disabled:
            self.attempt_passed(name, now)  # not a guess at the password: nothing to count
            self._refuse(name, role, "disabled", client, now)
        if not good:
            self.count_failure(name, role, client, now)
            self._refuse(name, role, "password", client, now)
        with Tx(self.conn):
            # the attempt counted in begin_attempt was good: with a second factor still due only it
            # is taken back (a right password between wrong codes resets nothing); refused when a
            # guess in flight beside this one locked the account meanwhile
            if second_factor:
                locked = not self.attempt_passed(name, now)
            else:
                locked = self.conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL "
                                           f"WHERE name = ? AND {_UNLOCKED}", (name, now)).rowcount != 1
            if not locked:
                if self.hasher.check_needs_rehash(digest):
                    access_seal.update(self.conn, self.seal, "users", {"name": name},
                                       {"password_hash": self.hasher.hash(password)})
                self._audit(name, role, "login.password" if second_factor else "login", name,
                            {"client": client}, now)
        if locked:
            self._refuse(name, role, "locked", client, now)
        user = self.get(name)
        assert user is not None
        return user

    def begin_attempt(self, name: str, role: str, client: str, now: float) -> bool:
        """Count one login attempt (password or second factor) of ``name`` *before* it is checked;
        False when the account is locked, or when the attempts in flight have already spent what
        the lockout allows (then it locks).  A lock test made before any failure was counted let
        every request sent at once through it (up to the thread pool's 40 guesses per lock)."""
        with Tx(self.conn):
            counted = self.conn.execute("UPDATE users SET failed_logins = failed_logins + 1 "
                                        f"WHERE name = ? AND {_UNLOCKED}", (name, now)).rowcount
            if counted != 1:
                return False
            attempts = self._failed_logins(name)
            if attempts <= self.max_failures:
                return True
            self._lock(name, role, client, attempts, now)
        return False

    def attempt_passed(self, name: str, now: float) -> bool:
        """The attempt counted by ``begin_attempt`` was right and clears nothing else: taken back
        (the failures before it stay counted); False when the account locked meanwhile."""
        with Tx(self.conn):
            return self.conn.execute(
                "UPDATE users SET failed_logins = CASE WHEN failed_logins > 0 THEN failed_logins - 1 "
                f"ELSE 0 END WHERE name = ? AND {_UNLOCKED}", (name, now)).rowcount == 1

    def count_failure(self, name: str, role: str, client: str, now: float) -> bool:
        """The attempt counted by ``begin_attempt`` failed; True when the account locks (the
        attempts counted, failed or still in flight, reached ``max_failures``)."""
        with Tx(self.conn):
            failed = self._failed_logins(name)
            return failed >= self.max_failures and self._lock(name, role, client, failed, now)

    def _failed_logins(self, name: str) -> int:
        row = self.conn.execute("SELECT failed_logins FROM users WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def _lock(self, name: str, role: str, client: str, failures: int, now: float) -> bool:
        """Lock ``name`` unless it is locked already (by a guess in flight beside this one)."""
        lock = now + self.lock_seconds
        if self.conn.execute("UPDATE users SET failed_logins = 0, locked_until = ? "
                             f"WHERE name = ? AND {_UNLOCKED}", (lock, name, now)).rowcount != 1:
            return False
        self.conn.execute("DELETE FROM sessions WHERE user_name = ? AND stage <> 'ok'", (name,))
        self._audit(name, role, "login.locked", name,
                    {"client": client, "failures": failures, "until": lock}, now)
        return True

    def login_done(self, name: str, role: str, client: str, now: float) -> bool:
        """The second factor passed: failures cleared, the login audited; False (nothing changed)
        when the account locked meanwhile (a guess sent beside this one)."""
        with Tx(self.conn):
            if self.conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL "
                                 f"WHERE name = ? AND {_UNLOCKED}", (name, now)).rowcount != 1:
                return False
            self._audit(name, role, "login", name, {"client": client, "factor": "totp"}, now)
        return True

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(digest, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _refuse(self, name: str, role: str, reason: str, client: str, now: float) -> Any:
        if reason in ("unknown", "too_long"):
            # no such account: what was typed may be a password or a number typed in the wrong
            # field, so the audit log keeps a digest of it, not the text (the same typed name
            # gives the same digest: a spraying run stays visible; session-45 review)
            name = "unknown:" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:16]
        with Tx(self.conn):
            self._audit(name, role, "login.failed", name, {"client": client, "reason": reason}, now)
        raise LoginRefused(_REFUSED, reason=reason)
