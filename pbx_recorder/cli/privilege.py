"""Who may run the CLI's operator commands: root or the service user, checked before any config is read.

The catalog, the keys and the AMI account are the service's (``pbx-recorder serve`` and the
daemon run as the service user, ``SERVICE_USER``).  A command that opens one of them refuses to
run for anyone else, *before* the config the caller named is read: a copied config with
``agent1: admin`` therefore changes nothing (issue 8).  When root runs a command,
``PBX_RECORDER_USER`` names the operator it acts for (``cli.authz.current_actor``).

Per top-level command (README "Who may run the CLI")::

    open to any user     check-config, demo (its own private sandbox), plan, rules, prompts,
                         run (the daemon), and every --help
    root / service user  audit, calls, catalog, erase, hold, keys, ledger, recordings,
                         retention, serve, users, verify, and any command not listed above

``run`` stays open: it has no operator and no role, and it opens only what the config it is
given names.  The production config and data are readable by the service user alone (systemd
runs ``run`` as that user), so for anyone else ``run`` can only drive a private recorder of
their own (``demo`` starts one that way), never the installation's catalog or AMI account.

The gate wraps the callback of every leaf command (and of a group that runs without a
sub-command) of a privileged top-level command, so ``--help`` (handled by click while parsing,
before any callback) still works, and an option value that looks like ``--help`` cannot skip it.
"""

from __future__ import annotations

import functools
import os
import pwd
from collections.abc import Callable
from typing import Any

import click

from pbx_recorder.errors import AccessDenied

SERVICE_USER = "pbx-recorder"
#: top-level commands that open neither the catalog, nor the keys, nor the AMI connection
OPEN_COMMANDS = frozenset({"check-config", "demo", "plan", "rules", "prompts", "run"})
GUARD_MARK = "pbxr_requires_privilege"  #: set on every gated callback (the tests walk the tree)


def os_user() -> tuple[int, str]:
    """The effective uid of this process and its account name (never from $USER)."""
    uid = os.geteuid()
    try:
        return uid, pwd.getpwuid(uid).pw_name
    except KeyError:
        return uid, f"uid:{uid}"


def is_privileged() -> bool:
    uid, name = os_user()
    return uid == 0 or name == SERVICE_USER


def require_privileged(what: str = "this command") -> str:
    """The account name when root or the service user; else ``AccessDenied`` (exit 7)."""
    uid, name = os_user()
    if uid != 0 and name != SERVICE_USER:
        raise AccessDenied(f"user {name!r}: {what} runs as root or {SERVICE_USER!r} only (the catalog, "
                           f"keys and AMI account are the service's; use the console)")
    return name


def _guarded(name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        require_privileged(f"'pbx-recorder {name}'")
        return callback(*args, **kwargs)

    setattr(run, GUARD_MARK, True)
    return run


def wrap_callbacks(name: str, command: click.Command, mark: str,
                   wrap: Callable[[str, Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace each leaf callback of ``command`` (top-level ``name``), and that of a group run
    without a sub-command, by ``wrap(path, callback)``, skipping a callback that carries ``mark``
    (``wrap`` sets it): the walk both gates share, so a sub-command added to a group later is
    gated on the next lookup and a callback is wrapped once."""
    stack: list[tuple[str, click.Command]] = [(name, command)]
    while stack:
        path, cmd = stack.pop()
        if isinstance(cmd, click.Group):
            stack.extend((f"{path} {sub}", c) for sub, c in cmd.commands.items())
            if not cmd.invoke_without_command:
                continue
        if cmd.callback is not None and not getattr(cmd.callback, mark, False):
            cmd.callback = wrap(path, cmd.callback)


def gate(name: str, command: click.Command) -> click.Command:
    """``command`` (top-level ``name``) with its callbacks refusing unprivileged users (an open
    command as it is).  Walked on every lookup (cheap, ``wrap_callbacks``)."""
    if name not in OPEN_COMMANDS:
        wrap_callbacks(name, command, GUARD_MARK, _guarded)
    return command
