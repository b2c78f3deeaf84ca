"""Issue 8, "the CLI is no way around the service": a command that opens the catalog, the keys or
the AMI connection runs only as root or the service user, refused before the config is read."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pbx_recorder.cli import cli, main, privilege
from pbx_recorder.cli.lazy_group import COMMANDS
from pbx_recorder.errors import AccessDenied

#: the CLI as nobody: the named command's modules are loaded while still root (the checkout may be
#: in a folder nobody cannot read), then the process drops to nobody for good, as setpriv would
MAIN = """
import gettext, locale, os, shutil, sys, textwrap  # what click's messages import lazily
import click
import pbx_recorder.config
from pbx_recorder.cli import cli, main
from pbx_recorder.cli.lazy_group import COMMANDS
ctx = click.Context(cli)
gettext.translation("messages", fallback=True)
cli.list_commands(ctx)
for name in set(COMMANDS) & set(sys.argv[1:]):
    cli.get_command(ctx, name)
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
assert os.getuid() == os.geteuid() == 65534
sys.exit(main(sys.argv[1:]))
"""
REPO = Path(__file__).resolve().parents[2]
#: the issue's copied config: the agent made themselves admin
FORGED = "catalog: {{path: {dir}/catalog.db}}\naccess: {{users: {{agent1: admin, nobody: admin}}}}\n"


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A folder an unprivileged account can reach and write (tmp_path's parents are root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="pbxr-priv-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


def run_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO),
           "PBX_RECORDER_USER": "root-admin"}  # ignored: only root may name the operator
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


@pytest.mark.parametrize("content", ["forged", "not yaml: ["], ids=["forged-admin", "unparsable"])
def test_a_user_supplied_config_is_refused_before_it_is_read(world_dir: Path, content: str) -> None:
    cfg = world_dir / "mine.yaml"
    cfg.write_text(FORGED.format(dir=world_dir) if content == "forged" else content)
    cfg.chmod(0o644)
    for command in (["calls", "search", "--unmask"], ["hold", "add", "--call", "c1", "--reason", "x"],
                    ["calls", "pause", "c1"], ["audit", "list"]):
        done = run_as_nobody("--config", str(cfg), *command)
        assert done.returncode == AccessDenied.exit_code, (command, done.stderr)  # not 2: never parsed
        assert "runs as root or 'pbx-recorder' only" in done.stderr, done.stderr
    assert not (world_dir / "catalog.db").exists()  # nothing opened, nothing created
    assert run_as_nobody("--config", str(cfg), "calls", "search", "--help").returncode == 0


def test_check_config_and_help_stay_open_to_any_user(world_dir: Path) -> None:
    cfg = world_dir / "mine.yaml"
    cfg.write_text(FORGED.format(dir=world_dir))
    cfg.chmod(0o644)
    assert run_as_nobody("--config", str(cfg), "check-config").returncode == 0
    listed = run_as_nobody("--help")
    assert listed.returncode == 0 and "calls" in listed.stdout


def _leaves(name: str, command: click.Command) -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        if command.invoke_without_command:
            yield name, command
        for sub, child in command.commands.items():
            yield from _leaves(f"{name} {sub}", child)
    else:
        yield name, command


def test_every_command_but_the_open_ones_is_gated() -> None:
    ctx = click.Context(cli)
    gated = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        for path, leaf in _leaves(name, command):
            wrapped = getattr(leaf.callback, privilege.GUARD_MARK, False)
            assert wrapped == (name not in privilege.OPEN_COMMANDS), path
            gated.append(path)
    assert {"serve", "users add", "calls search", "calls pause", "keys init", "erase"} <= set(gated)


@pytest.mark.parametrize("who", [(65534, "nobody"), (1000, "agent1")])
def test_unprivileged_commands_fail_with_the_access_denied_exit_code(tmp_path, monkeypatch, who) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(privilege, "os_user", lambda: who)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("not yaml: [")  # read would mean exit 2
    for command in (["serve"], ["verify"], ["keys", "list"], ["erase", "--call-id", "c1"],
                    ["users", "list"], ["recordings", "get", "r1", "--out", "x.wav"], ["catalog", "backup"]):
        assert main(["--config", str(cfg), *command]) == AccessDenied.exit_code, command


def test_root_and_the_service_user_pass_the_gate(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {tmp_path}/catalog.db}}\n")
    for who in ((0, "root"), (999, privilege.SERVICE_USER)):
        monkeypatch.setattr(privilege, "os_user", lambda who=who: who)
        result = CliRunner().invoke(cli, ["--config", str(cfg), "calls", "search", "--json"])
        assert result.exit_code == 0, result.output
