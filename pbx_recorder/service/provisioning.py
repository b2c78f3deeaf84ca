"""Who holds an account: the second person of a two-person decision must be a second person.

A decision for a second person (granting or refusing a replay request, approving or refusing a
deletion request) is only worth its name when no one person holds both accounts.  Two rules:

* **Approver accounts are provisioned on the host.**  An account whose role may decide for a
  second person (``calls.replay_approve`` or ``calls.delete_approve``: admin, auditor) is
  created, given such a role, or given a new password or second factor only by root or the
  service user on the host (``pbx-recorder users``, audited as ``host-admin``), never from the
  console or by a named operator: no console account ever knows an approver's credentials.
  Taking such a role away, disabling the account and the other changes stay the admins'.
* **The one who holds an account does not decide its requests.**  The accounts that *control*
  an account are those that made it, set its password, role or second factor, or minted an API
  token of it (the audit log's ``users.add``, ``users.reset_password``, ``users.set_role``,
  ``users.reset_totp``, ``tokens.create`` rows written by an account), and theirs, and so on.
  A requester and an approver where either controls the other are one person as far as the
  decision goes: refused.  An admin who made
  an agent account cannot grant that agent's replay requests (they could log in as it).

The audit log is the record (its rows are chained and keyed): a change of an account's holder
that left no row there did not go through this code.
"""

from __future__ import annotations

from typing import Any

from pbx_recorder.core.access_policy import HOST_ADMIN
from pbx_recorder.errors import AccessDenied
from pbx_recorder.service.roles import may

#: the admin changes that hand the actor an account: its credentials or its role, or an API token
#: of it (whoever minted a token for an account acts as that account until it expires: before
#: session 51 an admin could mint a supervisor's token, ask a replay with it and grant it)
CONTROLLING = ("users.add", "users.reset_password", "users.set_role", "users.reset_totp", "tokens.create")
#: the verbs of a second person's decision
APPROVER_VERBS = ("calls.replay_approve", "calls.delete_approve")
#: how far up the chain of holders is followed (each step one indexed audit read)
MAX_DEPTH = 32


def decides_for_others(role: str | None) -> bool:
    return any(may(role, verb) for verb in APPROVER_VERBS)


def require_host_for_approver(actor_role: str, role: str | None, name: str, change: str) -> None:
    """AccessDenied unless the actor is the host admin when ``change`` would hand over (or make)
    an account ``name`` whose role ``role`` decides for a second person."""
    if actor_role != HOST_ADMIN and decides_for_others(role):
        raise AccessDenied(f"{change} of {name} ({role}, an approver's role) is made on the host: "
                           f"pbx-recorder users (an approver's credentials are never set from the console)")


def holders(conn: Any, name: str) -> set[str]:
    """Every account that controls ``name`` (made it or set its password, role or second factor),
    and those that control them, and so on (host changes are no account's)."""
    found: set[str] = set()
    todo = [name]
    marks = ",".join("?" * len(CONTROLLING))
    for _ in range(MAX_DEPTH):
        if not todo:
            break
        step: list[str] = []
        for target in todo:
            rows = conn.execute("SELECT DISTINCT actor FROM audit_log WHERE target = ? "
                                f"AND action IN ({marks}) AND role <> ?",
                                (target, *CONTROLLING, HOST_ADMIN)).fetchall()
            step += [str(r[0]) for r in rows if str(r[0]) not in found and str(r[0]) != name]
        found.update(step)
        todo = sorted(set(step))
    return found


def require_independent(conn: Any, requester: str, approver: str, what: str) -> None:
    """AccessDenied when ``approver`` and ``requester`` are one person for ``what``: the same
    account, or either controls the other (:func:`holders`)."""
    if approver == requester:
        raise AccessDenied(f"{what} is decided by someone other than its requester")
    if approver in holders(conn, requester):
        raise AccessDenied(f"{what}: {approver} made or set the credentials or role of the requester's "
                           "account, so it is not decided by them")
    if requester in holders(conn, approver):
        raise AccessDenied(f"{what}: the requester made or set the credentials or role of {approver}'s "
                           "account, so it is not decided by that account")
