"""``pbx-recorder demo``: a private Asterisk (or FreeSWITCH) + the recorder + a handful of real sipp calls.

Everything runs on 127.0.0.1 on free ports under one work directory, with embedded
defaults (local tiers, SQLite catalog).  The work directory is kept so the recordings and
the catalog can be inspected afterwards.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consent.generate_prompts import generate
from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.recorder import (
    CatalogReader,
    RecorderProcess,
    recorder_command,
    write_recorder_config,
)
from storage import file_modes

log = logging.getLogger(__name__)

SHIPPED = ("stored", "verified", "migrated")


@dataclass(frozen=True)
class DemoCall:
    label: str
    did: str
    caller: str
    dtmf: tuple[tuple[int, str], ...] = ()
    seconds: float = 10.0
    expect_recording: bool = True


DEMO_CALLS = (
    DemoCall("notify only (8001)", "8001", "4930111001"),
    DemoCall("consent: pressed 1 (8002)", "8002", "4930111002", ((2500, "1"),), 12.0),
    DemoCall("consent: pressed 2 (8002)", "8002", "4930111003", ((2500, "2"),), 8.0, False),
    DemoCall("no-record rule (8003)", "8003", "4930111004", (), 6.0, False),
)


def run_demo(workdir: Path, echo: Callable[[str], None] = print, ship_timeout: float = 60.0,
             pbx: str = "asterisk") -> int:
    """Run the demo; returns 0 when every expected recording was shipped."""
    # owner-only whatever the umask: below it live the private PBX's config (the AMI/ESL secret
    # of a PBX running as this user), its logs and the raw recordings of the demo calls
    file_modes.private_dir(workdir)
    if pbx == "freeswitch":
        from pbx_recorder.testbed.freeswitch_demo import run_freeswitch_demo

        return run_freeswitch_demo(workdir, DEMO_CALLS, echo, ship_timeout)
    echo(f"work directory: {workdir}")
    echo("rendering consent prompts (espeak-ng + sox) ...")
    generate(workdir / "prompts")
    pbx = PrivateAsterisk(workdir / "asterisk")
    recorder: RecorderProcess | None = None
    try:
        pbx.start()
        echo(f"private Asterisk up: SIP 127.0.0.1:{pbx.sip_port}, AMI {pbx.ami_port}, AGI {pbx.agi_port}")
        config = demo_config(workdir, pbx)
        recorder = RecorderProcess(config, pbx, workdir / "recorder.log").start()
        echo(f"recorder running (pid {recorder.pid}), config {config}")
        echo(f"placing {len(DEMO_CALLS)} calls in parallel ...")
        calls = [SippCall(workdir / "sipp", pbx.sip_port, c.did, hangup_after_s=c.seconds, from_user=c.caller,
                          dtmf=list(c.dtmf)).start() for c in DEMO_CALLS]
        for demo_call, sipp in zip(DEMO_CALLS, calls, strict=True):
            result = sipp.wait()
            echo(f"  {demo_call.label:28} sipp exit {result.returncode} after {result.elapsed_s:.1f}s")
        ok = _wait_shipped(CatalogReader(workdir / "recorder" / "catalog.db"), ship_timeout, echo)
        print_results(workdir, config, echo)
        return 0 if ok else 1
    finally:
        if recorder is not None:
            recorder.terminate()
        pbx.close()
        echo("stopped recorder and Asterisk")


def demo_config(workdir: Path, pbx: Any) -> Path:
    """The demo's recorder config: encryption on, as in etc/pbx-recorder.yaml (keys are made at
    the daemon's first start, owner-only, under <workdir>/recorder/keys)."""
    return write_recorder_config(workdir / "recorder", pbx, workdir / "prompts", node="demo", encryption=True)


def print_results(workdir: Path, config: Path, echo: Callable[[str], None]) -> None:
    """The demo's closing printout: ``calls search``, the stored files, where things are."""
    echo("")
    echo("$ pbx-recorder calls search")
    from pbx_recorder.cli.privilege import is_privileged

    if is_privileged():
        search = subprocess.run([*recorder_command(), "--config", str(config), "calls", "search"],
                                capture_output=True, text=True, timeout=30, check=False)
        echo(search.stdout.rstrip() or search.stderr.rstrip())
    else:  # README "Who may run the CLI"
        echo("(calls search runs as root or the service user only; run the demo as root to see it)")
    echo("")
    hot = workdir / "recorder" / "hot"
    echo(f"recordings (hot tier, AES-256-GCM envelope; sidecars sealed too): {hot}")
    for path in sorted(p for p in hot.rglob("*") if p.is_file()):
        echo(f"  {path.relative_to(workdir)}")
    echo("decrypt one (role-checked, audited): pbx-recorder --config "
         f"{config} recordings get RECORDING-ID --out FILE")
    echo(f"catalog: {workdir / 'recorder' / 'catalog.db'}   recorder log: {workdir / 'recorder.log'}")


def _wait_shipped(catalog: CatalogReader, timeout: float, echo: Callable[[str], None]) -> bool:
    """Bounded wait until each call that should be recorded has a shipped recording."""
    want = {c.caller: c for c in DEMO_CALLS if c.expect_recording}
    deadline = time.monotonic() + timeout
    missing = set(want)
    while missing and time.monotonic() < deadline:
        for caller in list(missing):
            rows = catalog.query(  # numbers are encrypted: the reader opens each row
                "SELECT c.*, r.state AS rec_state FROM recordings r JOIN calls c ON c.call_id = r.call_id "
                "WHERE r.kind = 'call'")
            if any(r["rec_state"] in SHIPPED and r["caller_num"] == caller for r in rows):
                missing.discard(caller)
        time.sleep(0.5)
    for caller in sorted(missing):
        echo(f"  NOT shipped within {timeout:.0f}s: {want[caller].label}")
    return not missing
