"""TOTP second factor (RFC 6238 through ``pyotp``): codes, enrolment state, the sealed secret.

``users.totp_secret`` holds the secret sealed by :class:`~pbx_recorder.service.secret_box.SecretBox`
(``web.secret_key_file``), never in clear:

* ``''``                  no second factor;
* ``pending:v1.<sealed>`` enrolment started (``POST /api/me/totp/enrol``), not yet confirmed;
* ``v1.<sealed>``         enrolled: every login needs a code.

A code is accepted for the current 30-second step or one step either side, and only for a step
later than ``users.totp_last_step`` (the last one accepted): a code seen once, by a shoulder or
a proxy log, never logs in again.  A code is :data:`DIGITS` ASCII digits (spaces around or inside
are dropped); anything else is simply a wrong code (no error: it is counted and audited like
one).
"""

from __future__ import annotations

import hmac
import sqlite3

import pyotp

from pbx_recorder.errors import ConfigError, CryptoError
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import access_seal
from pbx_recorder.service.access_seal import AccessSeal
from pbx_recorder.service.secret_box import PREFIX, SecretBox

STEP_S = 30
WINDOW = 1  #: steps accepted either side of the current one
PENDING = "pending:"
ISSUER = "pbx-recorder"
DIGITS = 6  #: pyotp's default, what authenticator apps show


def matching_step(secret: str, code: str, now: float, last_step: int) -> int | None:
    """The time step ``code`` belongs to (current +/- :data:`WINDOW`), if later than
    ``last_step``; else None.  Pure."""
    code = code.strip().replace(" ", "")
    # isascii first: '１２３４５６' passes isdigit, and compare_digest refuses non-ASCII text
    if not (code.isascii() and code.isdigit() and len(code) == DIGITS):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    current = int(now) // STEP_S
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):  # no early exit: same work for all
        if step > last_step and hmac.compare_digest(totp.at(step * STEP_S), code):
            found = step
    return found


def state_of(stored: str) -> str:
    """'none', 'pending' or 'enrolled'."""
    if stored.startswith(PENDING):
        return "pending"
    return "enrolled" if stored.startswith(PREFIX) else "none"


class TotpStore:
    """The TOTP columns of ``users`` on one catalog connection; ``box`` None = not configured."""

    def __init__(self, conn: sqlite3.Connection, box: SecretBox | None,
                 seal: AccessSeal | None = None) -> None:
        self.conn, self.box, self.seal = conn, box, seal  # seal: the users row's (service.access_seal)

    def _sealer(self) -> SecretBox:
        if self.box is None:
            raise ConfigError("TOTP needs web.secret_key_file (pbx-recorder users totp-key init)")
        return self.box

    def _row(self, name: str) -> tuple[str, int] | None:
        """(secret as stored, last step); None when the row fails its seal (``seal`` given)."""
        row = self.conn.execute(f"SELECT {access_seal.columns('users')} FROM users WHERE name = ?",
                                (name,)).fetchone()
        if row is None:
            return ("", 0)
        found = access_seal.as_row("users", row)
        if not access_seal.valid(self.seal, "users", found):
            return None
        return str(found["totp_secret"] or ""), int(found["totp_last_step"] or 0)

    def state(self, name: str) -> str:
        """'none', 'pending' or 'enrolled'; 'enrolled' for a row that fails its seal (fail closed:
        a code is due, and none can be right)."""
        row = self._row(name)
        return "enrolled" if row is None else state_of(row[0])

    def start(self, name: str) -> tuple[str, str]:
        """A new secret for ``name`` stored pending: (secret, otpauth URI), shown once."""
        secret = pyotp.random_base32()
        sealed = self._sealer().seal(secret, name)
        with Tx(self.conn):
            access_seal.update(self.conn, self.seal, "users", {"name": name},
                               {"totp_secret": PENDING + sealed})
        return secret, pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
            name=name, issuer_name=ISSUER)

    def check(self, name: str, code: str, now: float, *, pending: bool = False) -> bool:
        """True (and the step remembered, so the code is spent) when ``code`` is right for the
        enrolled secret (``pending``: for the secret awaiting confirmation, which then becomes
        the enrolled one)."""
        row = self._row(name)
        if row is None:
            return False
        stored, last_step = row
        if state_of(stored) != ("pending" if pending else "enrolled"):
            return False
        try:
            secret = self._sealer().open(stored.removeprefix(PENDING), name)
        except CryptoError:
            return False
        step = matching_step(secret, code, now, last_step)
        if step is None:
            return False
        with Tx(self.conn):  # the step moves forward only: a parallel use of the same code loses
            changed = access_seal.update(
                self.conn, self.seal, "users", {"name": name},
                {"totp_last_step": step, "totp_secret": stored.removeprefix(PENDING)},
                where="totp_last_step < ? AND totp_secret = ?", params=(step, stored))
            return changed == 1

    def reset(self, name: str) -> None:
        with Tx(self.conn):
            access_seal.update(self.conn, self.seal, "users", {"name": name}, {"totp_secret": ""})
