"""A PostgreSQL password never travels in the catalog URL's query: the config check refuses
``?password=``, and ``pg_dump``'s argv (readable in ps) never carries one even if given one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from pbx_recorder.config import ConfigErrors, load_config
from pbx_recorder.lifecycle import backup_postgres


def test_a_password_query_parameter_is_refused_naming_the_key(tmp_path):
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text(yaml.safe_dump({"catalog": {
        "path": str(tmp_path / "catalog.db"),
        "url": "postgresql://rec@db/pbx?sslmode=require&password=s3cret"}}))
    with pytest.raises(ConfigErrors) as exc:
        load_config(path, env={})
    bad = [e for e in exc.value.errors if e.key == "catalog.url"]
    assert bad and "'password' query parameter" in str(bad[0])
    assert "s3cret" not in str(exc.value)


@pytest.mark.parametrize("url", ["postgresql://rec@db/pbx?password=s3cret&sslmode=require",
                                 "postgresql://rec:s3cret@db/pbx?sslmode=require"])
def test_dump_argv_never_carries_the_password(url, monkeypatch):
    seen: dict = {}

    def fake_run(cmd, **kw):
        seen["cmd"], seen["env"] = cmd, kw["env"]
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(backup_postgres.subprocess, "run", fake_run)
    monkeypatch.setattr(backup_postgres, "tool", lambda name: "/usr/bin/" + name)
    backup_postgres.dump(url, Path("/nonexistent/x.pgdump"))
    assert not any("s3cret" in arg for arg in seen["cmd"])
    assert seen["cmd"][-1] == "postgresql://rec@db/pbx?sslmode=require"
    assert seen["env"]["PGPASSWORD"] == "s3cret"
