"""Who may do what: the role-based permission table of every operator command (pure, no I/O).

Roles come from ``access.users`` (``name: role``); the CLI resolves the actor and asks
``check(role, action)`` through ``pbx_recorder.cli.authz.authorize``.  An unknown role, an
empty role or an unknown action is refused (fail closed).

    action                 admin  supervisor  auditor  agent  service  command
    calls.search             x        x          x       x     calls search (numbers masked)
    calls.show               x        x          x       x     calls show (numbers masked)
    calls.unmask             x        x          x             calls search|show --unmask
    calls.pause              x        x                  x     calls pause|resume (PCI pause)
    recordings.read_audio    x        x          x             recordings get
    recordings.restore       x        x          x             recordings restore
    recordings.migrate       x                                   x     recordings migrate
    recordings.capacity      x                                   x     recordings capacity
    retention.report         x        x          x             retention report
    retention.apply          x                                   x     retention apply
    retention.set_class      x                   x             retention set-class
    hold.add                 x                   x             hold add
    hold.remove              x                   x             hold remove
    hold.list                x        x          x             hold list
    erase.request            x                   x             erase --caller|--call-id
    erase.status             x                   x             erase status
    keys.manage              x                                 keys generate|rotate|rotate-index|list,
                                                               catalog backup-nodes --forget
    verify.run               x        x          x             verify
    ledger.read              x        x          x             ledger root|verify
    ledger.checkpoint        x                                 ledger checkpoint (needs the signing key)
    audit.read               x                   x             audit list|verify (the audit log)
    catalog.backup           x                                   x     catalog backup|backups|backup-nodes
    catalog.restore          x                                 catalog restore
    prompts.generate         x                                 prompts generate|list
    rules.explain            x        x          x             rules explain
    users.manage             x                                 users ... (accounts, tokens, second factor)
    qa.assign                x                                 review sample (assigns calls to QA reviewers)
    reports.run              x                                 reports run (every schedule's due reports)
    asterisk.check           x                                 asterisk check (compares the AMI secret)

``auditor`` is the compliance officer: holds, erasure requests and retention classes are
theirs; the ``supervisor`` listens and reviews; an ``agent`` sees masked calls and pauses
recording while a card number is read.  ``service`` is the account the shipped lifecycle and
retention timers run as (``pbx-recorder``): the unattended jobs, nothing that reveals data.
``run``, ``demo``, ``check-config`` and ``plan`` are
not operator commands and are not in the table.  The last four rows are the host administrator's
commands: root or the service user run them as ``host-admin``; when a root front end runs them for
a named operator (``PBX_RECORDER_USER``) the operator's role must allow them (admin only: sampling
and scheduled reports span every team, the service scopes a supervisor to theirs).
"""

from __future__ import annotations

from collections.abc import Mapping

#: the role audited for root or the service user acting on the host themselves (no account)
HOST_ADMIN = "host-admin"

ROLES: tuple[str, ...] = ("admin", "supervisor", "auditor", "agent", "service")

ACTIONS: tuple[str, ...] = (
    "calls.search",
    "calls.show",
    "calls.unmask",
    "calls.pause",
    "recordings.read_audio",
    "recordings.restore",
    "recordings.migrate",
    "recordings.capacity",
    "retention.report",
    "retention.apply",
    "retention.set_class",
    "hold.add",
    "hold.remove",
    "hold.list",
    "erase.request",
    "erase.status",
    "keys.manage",
    "verify.run",
    "ledger.read",
    "ledger.checkpoint",
    "audit.read",
    "catalog.backup",
    "catalog.restore",
    "prompts.generate",
    "rules.explain",
    "users.manage",
    "qa.assign",
    "reports.run",
    "asterisk.check",
)

PERMISSIONS: Mapping[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "supervisor": frozenset({
        "calls.search", "calls.show", "calls.unmask", "calls.pause",
        "recordings.read_audio", "recordings.restore",
        "hold.list", "retention.report", "verify.run", "ledger.read", "rules.explain",
    }),
    "auditor": frozenset({
        "calls.search", "calls.show", "calls.unmask",
        "recordings.read_audio", "recordings.restore",
        "hold.add", "hold.remove", "hold.list",
        "erase.request", "erase.status",
        "retention.report", "retention.set_class",
        "verify.run", "ledger.read", "rules.explain", "audit.read",
    }),
    "agent": frozenset({"calls.search", "calls.show", "calls.pause"}),
    "service": frozenset({"recordings.migrate", "recordings.capacity", "catalog.backup", "retention.apply"}),
}


def check(role: str | None, action: str) -> bool:
    """True when ``role`` may perform ``action``; unknown roles and actions are refused."""
    if not role or action not in ACTIONS:
        return False
    return action in PERMISSIONS.get(role, frozenset())


def roles_for(action: str) -> frozenset[str]:
    """The roles allowed to perform ``action`` (empty for an unknown action)."""
    return frozenset(role for role in ROLES if check(role, action))
