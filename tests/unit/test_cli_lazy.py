"""The CLI imports what a command needs when it needs it (``pbx_recorder/cli/lazy_group.py``).

A catalog command runs in a child process that writes ``sys.modules`` at exit; it must not have
imported boto3, the AMI/ESL stacks, asyncio or the daemon.  The table of lazy commands is held to
the modules it stands for, and every command and sub-command still answers ``--help``, so lazy
loading cannot hide a broken import or a stale help line.  Nothing here is timed (bench/bench_cli_start.py
measures).
"""

import json
import os
import subprocess
import sys
import textwrap
import types

import click
import pytest
from click.testing import CliRunner

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import cli, lazy_group
from pbx_recorder.cli.lazy_group import COMMANDS, command_modules, register_modules, untabled_modules

# reads, alters or runs a process on the SQLite catalog file itself: not part of the PostgreSQL pass
pytestmark = pytest.mark.sqlite_only

#: what a catalog-only command must leave alone: S3, the PBX connections, asyncio, the daemon's stacks
HEAVY = ["boto3", "botocore", "s3transfer", "urllib3", "storage.s3", "storage.s3_build", "panoramisk",
         "greenswitch", "gevent", "redis", "prometheus_client", "asyncio", "ami.client", "esl.connection",
         "esl.client", "pbx_recorder.daemon", "pbx_recorder.app", "pbx_recorder.metrics",
         "pbx_recorder.lifecycle.runtime", "pbx_recorder.recording.chain_head",
         "pbx_recorder.recording.verify"]

#: runs the CLI as ``python -m pbx_recorder.cli`` would, and writes the imported modules at exit
CHILD = textwrap.dedent("""
    import atexit, json, runpy, sys
    out, sys.argv = sys.argv[1], ["pbx-recorder", *sys.argv[2:]]
    if sys.argv[1:2] == ["--config"]:  # root acting for an operator: that file must be the default
        import pbx_recorder.cli
        pbx_recorder.cli.DEFAULT_CONFIG = sys.argv[2]
    atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
    runpy.run_module("pbx_recorder.cli", run_name="__main__", alter_sys=True)
""")


def run_child(tmp_path, *args):
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_RECORDER_")}
    env["PBX_RECORDER_USER"] = "auditor1"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), *args], capture_output=True, text=True,
                          env=env, timeout=120)
    return proc, set(json.loads(out.read_text()))


def heavy_in(modules):
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture
def local_config(tmp_path):
    db = tmp_path / "cat.db"
    cfg = tmp_path / "pbx-recorder.yaml"
    cfg.write_text(f"timezone: UTC\ncatalog:\n  path: {db}\nstorage:\n  tiers:\n"
                   f"    hot: {{type: local, path: {tmp_path / 'hot'}}}\n  hot: hot\n  cold: null\n")
    cat = Catalog(db)
    cat.upsert_call({"call_id": "n1_1.1", "caller_num": "13812345678", "status": "answered",
                     "started_at": 1_800_000_000.0, "agent": "alice"})
    cat.close()
    return cfg


@pytest.mark.parametrize("command", [["calls", "search", "--agent", "alice"], ["calls", "show", "n1_1.1"],
                                     ["audit", "list"]])
def test_catalog_command_imports_nothing_heavy(tmp_path, local_config, command):
    proc, modules = run_child(tmp_path, "--config", str(local_config), *command)
    assert proc.returncode == 0, proc.stderr
    assert "n1_1.1" in proc.stdout or command[0] == "audit"
    assert {"pbx_recorder.config", "pbx_recorder.catalog", "pbx_recorder.cli.cmd_calls"} <= modules
    assert heavy_in(modules) == []
    other_commands = {m for m in modules if m.startswith("pbx_recorder.cli.cmd_")} - {
        f"pbx_recorder.cli.{m}" for m in COMMANDS["calls"].modules + COMMANDS["audit"].modules}
    assert other_commands == set()


def test_s3_tier_in_the_config_is_validated_without_boto3(tmp_path, local_config):
    """A configured S3 tier does not pull boto3 into a catalog command, and a broken one still
    fails at start with the key named."""
    good = tmp_path / "s3.yaml"
    good.write_text(local_config.read_text().replace(
        "  hot: hot\n  cold: null\n",
        "    cold: {type: s3, bucket: rec, endpoint_url: 'http://127.0.0.1:9', region_name: us-east-1}\n"
        "  hot: hot\n  cold: cold\n"))
    proc, modules = run_child(tmp_path, "--config", str(good), "calls", "search")
    assert proc.returncode == 0, proc.stderr
    assert "1 call(s)" in proc.stdout and heavy_in(modules) == []

    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("bucket: rec, ", ""))
    proc, modules = run_child(tmp_path, "--config", str(bad), "calls", "search")
    assert proc.returncode == 2, proc.stderr
    assert "storage.tiers.cold.bucket" in proc.stderr and "is required" in proc.stderr
    assert heavy_in(modules) == []


def test_group_help_lists_every_command_without_importing_any(tmp_path):
    proc, modules = run_child(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split("Commands:\n", 1)[1]
    for name in COMMANDS:
        assert f"\n  {name} " in f"\n{listed}"
    assert sorted(m for m in modules if m.startswith("pbx_recorder.cli.cmd_")) == []
    assert "pbx_recorder.config" not in modules and heavy_in(modules) == []


def eager_group():
    group = click.Group("pbx-recorder")
    register_modules(group, command_modules())
    return group


def test_table_matches_what_the_modules_register():
    eager = eager_group()
    assert untabled_modules() == []
    assert sorted(eager.commands) == sorted(COMMANDS)
    for name, entry in COMMANDS.items():
        real = eager.commands[name]
        stub = click.Command(name, help=entry.help)
        for limit in (45, 60, 1000):  # what `--help` shows at any terminal width
            assert stub.get_short_help_str(limit) == real.get_short_help_str(limit), name
        alone = click.Group()
        register_modules(alone, entry.modules)  # the table's modules alone build the whole command
        assert alone.commands.get(name) is not None, name
        if isinstance(real, click.Group):
            assert sorted(alone.commands[name].commands) == sorted(real.commands), name


def test_group_help_is_the_eager_help():
    runner = CliRunner()
    lazy = runner.invoke(cli, ["--help"], prog_name="pbx-recorder", terminal_width=80)
    eager_cli = click.Group("pbx-recorder", params=cli.params, help=cli.help,
                            context_settings=cli.context_settings)
    register_modules(eager_cli, command_modules())
    eager = runner.invoke(eager_cli, ["--help"], prog_name="pbx-recorder", terminal_width=80)
    assert lazy.exit_code == 0 and lazy.output == eager.output


def command_paths(command, path=()):
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from command_paths(sub, (*path, name))


def test_every_command_and_subcommand_resolves_and_shows_help():
    runner = CliRunner()
    ctx = click.Context(cli)
    paths = [p for name in COMMANDS for p in command_paths(cli.get_command(ctx, name), (name,))]
    assert ("calls", "search") in paths and ("calls", "pause") in paths and ("verify",) in paths
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"], prog_name="pbx-recorder")
        assert result.exit_code == 0, (path, result.output, result.exception)
        assert f"Usage: pbx-recorder {' '.join(path)}" in result.output


def test_a_wrong_table_entry_is_an_error_not_no_such_command(monkeypatch):
    monkeypatch.setitem(COMMANDS, "plan", COMMANDS["rules"])
    monkeypatch.delitem(cli.commands, "plan", raising=False)
    result = CliRunner().invoke(cli, ["plan", "--help"])
    assert result.exit_code == 1 and "'plan' is not registered by cmd_rules" in result.output


def test_hold_list_builds_no_lifecycle_job_it_does_not_run(tmp_path, local_config):
    key = tmp_path / "subject-hmac.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    cfg = tmp_path / "holds.yaml"
    cfg.write_text(local_config.read_text() + f"privacy:\n  hash_key_file: {key}\n")
    proc, modules = run_child(tmp_path, "--config", str(cfg), "hold", "list")
    assert proc.returncode == 0, proc.stderr
    assert "0 hold(s)" in proc.stdout and "pbx_recorder.lifecycle.holds" in modules
    jobs = ["pbx_recorder.lifecycle.erasure", "pbx_recorder.lifecycle.backup",
            "pbx_recorder.lifecycle.capacity", "pbx_recorder.lifecycle.migration", "storage.envelope"]
    assert heavy_in(modules - {"pbx_recorder.lifecycle.runtime", "pbx_recorder.recording.chain_head"}) == []
    assert sorted(set(jobs) & modules) == []


def test_a_command_module_missing_from_the_table_still_works(monkeypatch):
    """A cmd_* module merged without its table row: slow (every module is loaded, as before the
    lazy group) but nothing lost or shadowed, also when it adds to a tabled group;
    test_table_matches_what_the_modules_register flags it."""
    fake = types.ModuleType("pbx_recorder.cli.cmd_zz_fake")

    @click.command("zz-fake")
    def zz_fake() -> None:
        """A command nobody put in the table."""
        click.echo("fake ran")

    @click.command("zz-sub")
    def zz_sub() -> None:
        """A calls sub-command from an untabled module."""
        click.echo("sub ran")

    def register(group):
        group.add_command(zz_fake)
        calls = group.commands["calls"]  # (the real calls group: its table restored at teardown)
        monkeypatch.setattr(calls, "commands", dict(calls.commands))
        calls.add_command(zz_sub)  # the pattern of cmd_calls_live

    fake.register = register
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(lazy_group, "command_modules", lambda: [*command_modules(), "cmd_zz_fake"])
    assert lazy_group.untabled_modules() == ["cmd_zz_fake"]
    runner = CliRunner()

    def fresh_group():
        monkeypatch.setattr(cli, "commands", {})
        monkeypatch.setattr(cli, "_untabled_checked", False)

    fresh_group()
    listing = runner.invoke(cli, ["--help"]).output.splitlines()
    assert ["zz-fake", "A command nobody put in the table."] in [line.split(None, 1) for line in listing]
    fresh_group()
    assert runner.invoke(cli, ["zz-fake"]).output == "fake ran\n"
    fresh_group()
    calls_help = runner.invoke(cli, ["calls", "--help"]).output
    assert "zz-sub" in calls_help and "search" in calls_help and "pause" in calls_help
    fresh_group()
    result = runner.invoke(cli, ["calls", "zz-sub"])
    assert result.exit_code == 0 and result.output == "sub ran\n"
