"""The permission table: every role against every action, as the module docstring states it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pbx_recorder.core import access_policy
from pbx_recorder.core.access_policy import ACTIONS, PERMISSIONS, ROLES, check, roles_for

SUPERVISOR = {"calls.search", "calls.show", "calls.unmask", "calls.pause", "recordings.read_audio",
              "recordings.restore", "hold.list", "retention.report", "verify.run", "ledger.read",
              "rules.explain"}
AUDITOR = {"calls.search", "calls.show", "calls.unmask", "recordings.read_audio", "recordings.restore",
           "hold.add", "hold.remove", "hold.list", "erase.request", "erase.status", "retention.report",
           "retention.set_class", "verify.run", "ledger.read", "rules.explain", "audit.read"}
AGENT = {"calls.search", "calls.show", "calls.pause"}
SERVICE = {"recordings.migrate", "recordings.capacity", "catalog.backup", "retention.apply"}  # the timers
EXPECTED = {"admin": set(ACTIONS), "supervisor": SUPERVISOR, "auditor": AUDITOR, "agent": AGENT,
            "service": SERVICE}


def test_roles_and_actions_are_the_documented_sets():
    assert ROLES == ("admin", "supervisor", "auditor", "agent", "service")
    assert len(ACTIONS) == len(set(ACTIONS)) == 29  # + users.manage, qa.assign, reports.run, asterisk.check
    assert set(PERMISSIONS) == set(ROLES)
    for role, allowed in PERMISSIONS.items():
        assert allowed <= set(ACTIONS), role


@pytest.mark.parametrize("role", ROLES)
def test_check_matches_the_table_for_every_action(role):
    assert {a for a in ACTIONS if check(role, a)} == EXPECTED[role]


def test_agents_never_unmask_listen_or_destroy():
    for action in ("calls.unmask", "recordings.read_audio", "retention.apply", "erase.request",
                   "hold.remove", "keys.manage"):
        assert not check("agent", action), action


def test_unknown_or_missing_role_and_unknown_action_are_refused():
    for role in ("", None, "root", "Admin", "auditors"):
        assert not any(check(role, a) for a in ACTIONS), role
    for role in ROLES:
        assert not check(role, "calls.delete") and not check(role, "")


def test_roles_for():
    assert roles_for("recordings.read_audio") == {"admin", "supervisor", "auditor"}
    assert roles_for("retention.apply") == {"admin", "service"}
    assert roles_for("no.such") == frozenset()


def test_docstring_table_is_the_data():
    lines = (access_policy.__doc__ or "").splitlines()
    header = next(ln for ln in lines if ln.strip().startswith("action "))
    rows = {ln.split()[0]: ln for ln in lines if ln.startswith("    ") and "." in ln.split()[0]}
    assert set(rows) == set(ACTIONS)
    for action, line in rows.items():
        for role in ROLES:
            col = header.index(role) + len(role) // 2  # the "x" sits under the middle of the name
            assert ("x" in line[col - 3:col + 3]) == check(role, action), (action, role)


def test_module_is_pure():
    tree = ast.parse(Path(access_policy.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "collections.abc"}
