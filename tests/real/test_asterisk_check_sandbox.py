"""`pbx-recorder asterisk check` against the config the real tests' private Asterisk runs with.

That Asterisk booted with it and the recorder logs in through it in every real test, so the
check must find no error there (the sandbox's AMI users have `read = all`, `write = all`:
warnings, by design of a test bed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbx_recorder.cli import main, privilege
from pbx_recorder.testbed import PrivateAsterisk
from pbx_recorder.testbed.recorder import write_recorder_config

pytestmark = [pytest.mark.real, pytest.mark.timeout(120)]


def test_the_sandbox_config_has_no_errors(asterisk: PrivateAsterisk, prompts_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(privilege, "os_user", lambda: (0, "root"))
    config = write_recorder_config(tmp_path / "rec", asterisk, prompts_dir)
    etc = asterisk.workdir / "etc"
    code = main(["--config", str(config), "asterisk", "check", "--etc", str(etc), "--json"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    errors = [f for f in findings if f["severity"] == "error"]
    assert code == 0 and errors == []
    found = {f["code"] for f in findings if f["severity"] == "ok"}
    assert {"ami-enabled", "ami-timestampevents", "ami-read", "ami-write", "ami-secret", "ami-acl",
            "dialplan-snippet", "dialplan-gosub", "dialplan-agi"} <= found
    assert {f["code"] for f in findings if f["severity"] == "warning"} == {"ami-read-dangerous",
                                                                          "ami-write-dangerous"}
