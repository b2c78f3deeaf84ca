"""``pbx-recorder demo --freeswitch``: the demo's calls on a private FreeSWITCH.

The same calls (DIDs 8001-8003 of the FreeSWITCH sandbox dialplan mean what they mean on the
Asterisk one), the same waiting and the same printout as :func:`pbx_recorder.demo.run_demo`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from consent.generate_prompts import generate
from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_recorder import FsRecorderProcess, write_fs_recorder_config
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall
from pbx_recorder.testbed.recorder import CatalogReader


def run_freeswitch_demo(workdir: Path, calls: Sequence[Any], echo: Callable[[str], None],
                        ship_timeout: float) -> int:
    from pbx_recorder.demo import _wait_shipped, print_results

    workdir.mkdir(parents=True, exist_ok=True)
    echo(f"work directory: {workdir}")
    echo("rendering consent prompts (espeak-ng + sox) ...")
    generate(workdir / "prompts")
    pbx = PrivateFreeSWITCH(workdir / "freeswitch")
    recorder: FsRecorderProcess | None = None
    try:
        pbx.start()
        echo(f"private FreeSWITCH up: SIP 127.0.0.1:{pbx.sip_port}, ESL {pbx.esl_port}, "
             f"outbound socket {pbx.socket_port}")
        config = write_fs_recorder_config(workdir / "recorder", pbx, workdir / "prompts", node="demo",
                                          encryption=True)
        recorder = FsRecorderProcess(config, pbx, workdir / "recorder.log")
        recorder.start()
        echo(f"recorder running (pid {recorder.pid}), config {config}")
        echo(f"placing {len(calls)} calls in parallel ...")
        sipps = [FsSippCall(workdir / "sipp", pbx.sip_port, c.did, hangup_after_s=c.seconds,
                            from_user=c.caller, dtmf=list(c.dtmf)).start() for c in calls]
        for demo_call, sipp in zip(calls, sipps, strict=True):
            result = sipp.wait()
            echo(f"  {demo_call.label:28} sipp exit {result.returncode} after {result.elapsed_s:.1f}s")
        ok = _wait_shipped(CatalogReader(workdir / "recorder" / "catalog.db"), ship_timeout, echo)
        print_results(workdir, config, echo)
        return 0 if ok else 1
    finally:
        if recorder is not None:
            recorder.terminate()
        pbx.close()
        echo("stopped recorder and FreeSWITCH")
