"""Masking end to end on a real Asterisk (issue 6 "masking is complete", issue 10 ``pbxrecdnid``).

A sipp call with a known 13-digit caller number to the explicit-consent DID: Asterisk puts the
number into the CDR's src and clid, the dialplan snippet the DID into ``CDR(pbxrec_dnid)``.
Once shipped, no output an agent can get (calls search/show, table and JSON, calls live, the
commands an agent is refused) and no line of the recorder's own log shows the caller's digits;
the catalog itself keeps them (a supervisor's ``--unmask`` shows them, audited).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from call_helpers import call, linkedid_of, new_caller
from recorder_checks import Recorder, wait_shipped

from pbx_recorder.testbed import PrivateAsterisk
from pbx_recorder.testbed.ami_probe import AmiProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]


#: the CLI as a root front end runs it for a named operator; such a run loads only the default
#: configuration (no --config), so the sandbox's takes the place of /etc/pbx-recorder's
FRONT_END = ("import runpy, sys\n"
             "import pbx_recorder.cli\n"
             "pbx_recorder.cli.DEFAULT_CONFIG = sys.argv.pop(1)\n"
             "sys.argv[0] = 'pbx-recorder'\n"
             "runpy.run_module('pbx_recorder.cli', run_name='__main__', alter_sys=True)\n")


def cli_as(recorder: Recorder, config: Path, user: str, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "PBX_RECORDER_USER": user}  # honoured: the tests run as root
    done = subprocess.run([sys.executable, "-c", FRONT_END, str(config), *args], capture_output=True,
                          text=True, timeout=60, check=False, env=env)
    return done.stdout + done.stderr


def test_an_agent_never_sees_the_callers_number(asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder,
                                                tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=8, from_user=caller, dtmf=[(2500, "1")])
    assert result.ok, result.errors
    row, _ = wait_shipped(recorder, linkedid_of(ami, caller, since), count=2)
    cdr = json.loads(row["cdr"])
    assert row["caller_num"] == caller and caller in cdr.get("clid", "") and cdr.get("pbxrecdnid") == "8002"
    config = tmp_path / "roles.yaml"
    config.write_text(recorder.config_path.read_text() + "access:\n  users: {adam: agent, sue: supervisor}\n")
    call_id = row["call_id"]
    outputs = {" ".join(args): cli_as(recorder, config, "adam", *args) for args in (
        ("calls", "search", "--json"), ("calls", "search"), ("calls", "show", call_id),
        ("calls", "show", call_id, "--json"), ("calls", "search", "--caller", caller[-4:], "--json"),
        ("calls", "live", "--json"), ("calls", "show", call_id, "--unmask"), ("audit", "list"), ("verify",))}
    assert [k for k, v in outputs.items() if caller in v] == [], outputs
    shown = json.loads(outputs[f"calls show {call_id} --json"])["call"]
    assert shown["cdr"]["pbxrecdnid"] == "8***" and shown["did"] == "8***"
    assert shown["caller_num"] == caller[:3] + "*" * (len(caller) - 7) + caller[-4:]
    assert "may not calls.unmask" in outputs[f"calls show {call_id} --unmask"]
    log = recorder.process.log_path.read_text(errors="replace")
    assert log and caller not in log, [line for line in log.splitlines() if caller in line][:5]
    unmasked = json.loads(cli_as(recorder, config, "sue", "calls", "show", call_id, "--json", "--unmask"))
    assert unmasked["call"]["caller_num"] == caller
