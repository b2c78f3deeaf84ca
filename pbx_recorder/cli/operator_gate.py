"""When root acts for a named operator: the root-owned default config only, and only commands that
authorize an action.

A root front end (a sudo rule for ``env PBX_RECORDER_USER=alice pbx-recorder ...``) passes the
operator's arguments through and may keep their environment.  Two ways out of their role follow
unless this module closes them:

* the config names the roles (``access.users``) and every path opened and written as root (keys,
  tiers, the catalog): a copy named by ``--config``, ``PBX_RECORDER_CONFIG`` or one
  ``PBX_RECORDER_ACCESS__USERS__ALICE=admin`` variable would make the operator admin of whatever
  they like.  So such a run refuses all three (``config_overrides``) and loads the default file;
* a command that never asks ``authz.authorize`` runs with root's power for anyone the front end
  lets in.  So every leaf command a named operator runs must be listed in ``OPERATOR_COMMANDS``
  with the action it authorizes; one missing from the table is refused (fail closed: a command
  added later cannot slip through before someone decides who may run it).

The table is checked against the command tree by ``tests/unit/test_cli_operator_gate.py``.
Root without ``PBX_RECORDER_USER`` (the host administrator) and the service user are not
affected.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import click

from pbx_recorder.cli import authz, privilege

GATE_MARK = "pbxr_operator_gate"  #: set on every wrapped callback (wrapped once)
CONFIG_ACTION = "config.override"  #: audited as ``denied:config.override``
UNMAPPED_ACTION = "command.unmapped"  #: audited as ``denied:command.unmapped`` (target: the command)

#: every command a named operator may start, with the action it authorizes (the command checks it,
#: with its own target and options, e.g. ``--unmask``); a group runs its callback before its
#: sub-commands, so a group listed here (``erase``) is one run without a sub-command
OPERATOR_COMMANDS: Mapping[str, str] = {
    "asterisk check": "asterisk.check",
    "audit list": "audit.read",
    "audit verify": "audit.read",
    "calls search": "calls.search",
    "calls show": "calls.show",
    "calls pause": "calls.pause",
    "calls resume": "calls.pause",
    "calls live": "calls.search",
    "catalog backup": "catalog.backup",
    "catalog backup-nodes": "catalog.backup",
    "catalog restore": "catalog.restore",
    "catalog backups": "catalog.backup",
    "catalog migrate": "catalog.restore",
    "erase": "erase.request",
    "erase status": "erase.status",
    "hold add": "hold.add",
    "hold remove": "hold.remove",
    "hold list": "hold.list",
    "keys init": "keys.manage",
    "keys generate": "keys.manage",
    "keys rotate": "keys.manage",
    "keys rotate-index": "keys.manage",
    "keys list": "keys.manage",
    "ledger root": "ledger.read",
    "ledger verify": "ledger.read",
    "ledger checkpoint": "ledger.checkpoint",
    "prompts generate": "prompts.generate",
    "prompts list": "prompts.generate",
    "recordings get": "recordings.read_audio",
    "recordings restore": "recordings.restore",
    "recordings migrate": "recordings.migrate",
    "recordings capacity": "recordings.capacity",
    "reports run": "reports.run",
    "retention report": "retention.report",
    "retention apply": "retention.apply",
    "retention set-class": "retention.set_class",
    "review sample": "qa.assign",
    "rules explain": "rules.explain",
    "users add": "users.manage",
    "users disable": "users.manage",
    "users reset-password": "users.manage",
    "users set-role": "users.manage",
    "users set-teams": "users.manage",
    "users list": "users.manage",
    "users teams": "users.manage",
    "users team-agents": "users.manage",
    "users assign-review": "users.manage",
    "users totp-key init": "users.manage",
    "users seal": "users.manage",
    "users reset-totp": "users.manage",
    "users token create": "users.manage",
    "users token list": "users.manage",
    "users token revoke": "users.manage",
    "verify": "verify.run",
}


def _same_file(given: str, default: str) -> bool:
    return os.path.abspath(given) == os.path.abspath(default)


def config_overrides(cli_config: str | None, env: Mapping[str, str], default: str) -> list[str]:
    """What would replace the default config (pure): ``--config FILE`` and ``PBX_RECORDER_CONFIG``
    naming another file, and every ``PBX_RECORDER_<SECTION>__...`` variable (names only, never
    values: one may be a secret)."""
    from pbx_recorder.config.layers import override_variables  # only for a named operator (start time)

    found = []
    if cli_config is not None and not _same_file(cli_config, default):
        found.append(f"--config {cli_config}")
    if "PBX_RECORDER_CONFIG" in env and not _same_file(env["PBX_RECORDER_CONFIG"], default):
        found.append("PBX_RECORDER_CONFIG")
    return found + override_variables(env)


def _default_config(path: str) -> Any:
    """The default config without any variable (None when it cannot be loaded): only to audit."""
    from pbx_recorder.config import ConfigErrors, load_config

    try:
        return load_config(path, env={})
    except ConfigErrors:
        return None


def refuse_overrides(operator: str, found: list[str], default: str) -> None:
    """``AccessDenied`` (exit 7), audited ``denied:config.override`` in the default config's catalog."""
    authz.refuse(_default_config(default), None, CONFIG_ACTION, ", ".join(found)[:500],
                 f"user {operator!r}: a root front end acting for an operator runs with the default config "
                 f"({default}) only; refused: {', '.join(found)}")


def check_config(cli_config: str | None, default: str) -> None:
    """For a named operator: refuse anything that replaces the default config (else nothing)."""
    operator = authz.named_operator()
    if operator is None:
        return
    found = config_overrides(cli_config, os.environ, default)
    if found:
        refuse_overrides(operator, found, default)


def _checked(path: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        operator = authz.named_operator()
        if operator is not None and path not in OPERATOR_COMMANDS:
            obj = click.get_current_context().find_root().obj or {}
            config = _default_config(obj["config_path"]) if "config_path" in obj else None
            authz.refuse(config, None, UNMAPPED_ACTION, path,
                         f"user {operator!r}: 'pbx-recorder {path}' is not open to an operator named by a "
                         f"root front end (no role may run it that way)")
        return callback(*args, **kwargs)

    setattr(run, GATE_MARK, True)
    return run


def gate(name: str, command: click.Command) -> click.Command:
    """``command`` (top-level ``name``, open commands included) with each leaf callback (and that of
    a group run without a sub-command) refusing a named operator when its path is not in
    ``OPERATOR_COMMANDS``.  Walked on every lookup; a callback is wrapped once."""
    privilege.wrap_callbacks(name, command, GATE_MARK, _checked)
    return command
