"""Helpers shared by the real Asterisk tests: place sipp calls, find them on AMI."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pbx_recorder.testbed import PrivateAsterisk, SippCall, SippResult, free_udp_port
from pbx_recorder.testbed.ami_probe import AmiProbe, Event

_CALLER = itertools.count(1)


def new_caller() -> str:
    """A caller number unique within the session (so a test finds its own call on AMI)."""
    return f"49301{int(time.time()) % 100000:05d}{next(_CALLER):03d}"


def call(pbx: PrivateAsterisk, workdir: Path, did: str, **kwargs: object) -> SippResult:
    """Place one call (blocking, bounded) and return sipp's result."""
    return SippCall(workdir, pbx.sip_port, did, **kwargs).start().wait()  # type: ignore[arg-type]


def linkedid_of(ami: AmiProbe, caller: str, since: int = 0, timeout: float = 10.0) -> str:
    event = ami.wait_event(lambda e: e.get("Event") == "Newchannel" and e.get("CallerIDNum") == caller,
                           timeout=timeout, since=since)
    return event["Linkedid"]


def recorded_span(ami: AmiProbe, linkedid: str, since: int = 0, nth: int = 0) -> float:
    """Seconds from the call's ``nth`` MixMonitorStart to its caller channel's Hangup, by
    Asterisk's own clock (the events' ``Timestamp``: the sandbox has ``timestampevents = yes``),
    so neither the host's load nor AMI delivery stretches what a recording should hold."""
    starts = [e for _, e in ami.events[since:]
              if e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid]
    assert len(starts) > nth, f"{len(starts)} MixMonitorStart for {linkedid}"
    end = ami.wait_event(lambda e: e.get("Event") == "Hangup" and e.get("Linkedid") == linkedid
                         and e.get("Channel", "").startswith("PJSIP/caller"), timeout=15, since=since)
    return float(end["Timestamp"]) - float(starts[nth]["Timestamp"])


def cdr_of(ami: AmiProbe, linkedid: str, timeout: float = 10.0) -> Event:
    return ami.wait_event(lambda e: e.get("Event") == "Cdr" and e.get("Linkedid") == linkedid
                          and e.get("Channel", "").startswith("PJSIP/caller"), timeout=timeout)


def user_event(ami: AmiProbe, name: str, tag: str, timeout: float = 10.0, since: int = 0) -> Event:
    return ami.wait_event(lambda e: e.get("Event") == "UserEvent" and e.get("UserEvent") == name
                          and e.get("TestTag") == tag, timeout=timeout, since=since)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def wait_file_closed(path: Path, timeout: float = 10.0, stable_s: float = 0.4) -> Path:
    """Wait (bounded) until ``path`` exists and its size has not changed for ``stable_s``."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size != last:
            last, since = size, time.monotonic()
        elif size > 44 and time.monotonic() - since >= stable_s:
            return path
        time.sleep(0.1)
    raise TimeoutError(f"{path} not written and closed within {timeout}s")


@contextlib.contextmanager
def spare_asterisk(install: Any, prompts_dir: Path, prefix: str) -> Iterator[PrivateAsterisk]:
    """A private Asterisk of a test's own (beside the session's), started and, at the end, stopped
    and removed: a test that restarts its PBX, or a second node's PBX."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    pbx = PrivateAsterisk(workdir, agent_ports=(free_udp_port(),), install=install, shared=(prompts_dir,))
    try:
        pbx.start()
        yield pbx
    finally:
        pbx.close()
        shutil.rmtree(workdir, ignore_errors=True)
