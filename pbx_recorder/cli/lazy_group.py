"""The top-level ``pbx-recorder`` group loads a sub-command's modules only when it runs.

Importing every ``cmd_*`` module at start cost about 0.8 s per invocation (boto3, asyncio, the
lifecycle runtime, cryptography ...), even for ``calls search`` against a local catalog.  Here one
visible table maps each top-level command to the modules that register it and to its one-line help,
so ``--help`` lists every command without importing any of them, and ``pbx-recorder calls search``
imports the three ``cmd_calls*`` modules and nothing else.

The table is a second copy of facts the modules own (name, first help paragraph), so
``tests/unit/test_cli_lazy.py`` loads every module eagerly and checks the table against them.  A
``cmd_*`` module missing from the table still works: the group then loads every module, as before
(slow, but no command is lost or shadowed).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import click

PACKAGE = "pbx_recorder.cli"


@dataclass(frozen=True)
class LazyCommand:
    modules: tuple[str, ...]  #: cmd_* modules whose ``register(group)`` builds the command, in order
    help: str  #: the first paragraph of the command's help (what ``--help`` of the group shows)


#: command name -> where it lives; the modules are registered in this (sorted) order
COMMANDS: dict[str, LazyCommand] = {
    "asterisk": LazyCommand(
        ("cmd_asterisk",),
        "Check the Asterisk side: AMI user, manager.conf, the dialplan snippet (read-only).",
    ),
    "audit": LazyCommand(("cmd_audit",), "The audit log: who did what, chained and signed."),
    "calls": LazyCommand(
        ("cmd_calls", "cmd_calls_control", "cmd_calls_live"),
        "Search and inspect recorded calls.",
    ),
    "catalog": LazyCommand(
        ("cmd_catalog",),
        "Catalog backups (SQLite online backup or PostgreSQL pg_dump, encrypted under the backup"
        " key, hashed, stored on a tier) and schema migration (``migrate``).",
    ),
    "check-config": LazyCommand(
        ("cmd_check_config",),
        "Validate the config file, conf.d and PBX_RECORDER_* variables; exit 2 on any error.",
    ),
    "demo": LazyCommand(
        ("cmd_demo",),
        "Start a private Asterisk (or FreeSWITCH) and the recorder, place consent yes/no, notify "
        "and no-record calls with sipp, wait for shipping, show `calls search`, stop everything.",
    ),
    "erase": LazyCommand(
        ("cmd_erase",),
        "Right to erasure: delete everywhere and print a proof receipt (JSON).",
    ),
    "hold": LazyCommand(("cmd_hold",), "Legal holds: override retention and erasure until released."),
    "keys": LazyCommand(
        ("cmd_keys",),
        "Encryption master keys (AES-256 key ring) and the manifest signing key (Ed25519).",
    ),
    "ledger": LazyCommand(("cmd_ledger",), "The hash-chained lifecycle ledger."),
    "plan": LazyCommand(
        ("cmd_plan",),
        "Print hot/cold storage at the end of each month and the monthly growth.",
    ),
    "prompts": LazyCommand(
        ("cmd_prompts",),
        "Consent prompt audio (texts live in consent/prompts/prompts.yaml).",
    ),
    "recordings": LazyCommand(("cmd_recordings",), "Fetch, restore and move stored recordings."),
    "retention": LazyCommand(
        ("cmd_retention",),
        "Retention review and disposal (holds and protected classes always win).",
    ),
    "reports": LazyCommand(
        ("cmd_reports",), "Scheduled reports: produce the due weekly and monthly reports and mail them."
    ),
    "review": LazyCommand(("cmd_review",), "QA review: sample each agent's calls for the reviewers."),
    "rules": LazyCommand(("cmd_rules",), "Inspect the recording rules."),
    "run": LazyCommand(
        ("cmd_run",),
        "Run the daemon in the foreground until SIGTERM/SIGINT (exit 0 after a graceful stop).",
    ),
    "serve": LazyCommand(
        ("cmd_serve",), "Run the operator service (HTTP API) until SIGTERM; see README \"Operator service\".",
    ),
    "users": LazyCommand(("cmd_users",), "Accounts of the operator service (root or the service user only)."),
    "verify": LazyCommand(
        ("cmd_verify",),
        "Check stored objects against the catalog, the ledger and the signed chain heads.",
    ),
}


def command_modules() -> list[str]:
    """Every ``cmd_*`` module of the package, found by listing the directory (nothing imported)."""
    here = os.path.dirname(__file__)
    return sorted(name[:-3] for name in os.listdir(here) if name.startswith("cmd_") and name.endswith(".py"))


def untabled_modules() -> list[str]:
    known = {module for entry in COMMANDS.values() for module in entry.modules}
    return [module for module in command_modules() if module not in known]


def register_modules(group: click.Group, modules: Sequence[str]) -> None:
    for name in modules:
        importlib.import_module(f"{PACKAGE}.{name}").register(group)


class LazyGroup(click.Group):
    """A click group whose commands come from :data:`COMMANDS` on first use."""

    _untabled_checked = False  #: set on the instance once the directory was compared with the table

    def _load_untabled(self) -> None:
        """A ``cmd_*`` module missing from the table (a merge that forgot its row; the table test
        fails): back to loading every module, so that it can also add to a tabled group (e.g. a
        new ``calls`` sub-command) without shadowing it."""
        if self._untabled_checked:
            return
        self._untabled_checked = True
        missing = untabled_modules()
        if missing:
            for name in COMMANDS:
                self._load_tabled(name)
            register_modules(self, missing)

    def _load_tabled(self, name: str) -> click.Command:
        if name in self.commands:
            return self.commands[name]
        entry = COMMANDS[name]
        scratch = click.Group()
        register_modules(scratch, entry.modules)
        command = scratch.commands.get(name)
        if command is None:  # the table is wrong: say so instead of "No such command"
            raise click.ClickException(f"{name!r} is not registered by {', '.join(entry.modules)}")
        self.commands[name] = command
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_untabled()
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_untabled()
        if cmd_name in COMMANDS:
            return self._load_tabled(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but tabled commands are shown from the table, without importing them."""
        self._load_untabled()
        shown: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name].help)
            if not command.hidden:
                shown.append((name, command))
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown])
