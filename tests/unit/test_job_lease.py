import fcntl
from types import SimpleNamespace

from click.testing import CliRunner

from pbx_recorder.cli import cli
from pbx_recorder.lifecycle.job_lease import exclusive_job


def config(tmp_path, redis_url=None):
    return SimpleNamespace(redis=SimpleNamespace(url=redis_url), node="n1",
                           catalog=SimpleNamespace(path=str(tmp_path / "catalog.db")))


def test_second_run_on_the_same_host_does_nothing(tmp_path):
    cfg = config(tmp_path)
    with exclusive_job(cfg, "migrate") as first:
        assert first == ""
        with exclusive_job(cfg, "migrate") as second:
            assert "nothing done" in second
        with exclusive_job(cfg, "capacity") as other_job:
            assert other_job == ""
    with exclusive_job(cfg, "migrate") as again:
        assert again == ""


def test_migrate_command_respects_the_lock(tmp_path):
    db = tmp_path / "catalog.db"
    cfg_file = tmp_path / "pbx-recorder.yaml"
    cfg_file.write_text(f"catalog:\n  path: {db}\nstorage:\n  tiers:\n"
                        f"    hot: {{type: local, path: {tmp_path}/hot}}\n"
                        f"    cold: {{type: local, path: {tmp_path}/cold}}\n  hot: hot\n  cold: cold\n")
    with open(tmp_path / ".lifecycle-migrate.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(cli, ["--config", str(cfg_file), "recordings", "migrate"])
    assert result.exit_code == 0, result.output
    assert "nothing done here" in result.output
    result = CliRunner().invoke(cli, ["--config", str(cfg_file), "recordings", "migrate"])
    assert result.exit_code == 0, result.output
    assert "nothing done here" not in result.output and "done:" in result.output
