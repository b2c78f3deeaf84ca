"""Helpers of the real FreeSWITCH tests: place sipp calls, find them on ESL and in the catalog.

A FreeSWITCH call is found in the catalog by its root uuid (esl/CONTRACT.md section 5:
``call_id = <node>_<root uuid>``; the ``linkedid`` column holds the root uuid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from call_helpers import new_caller
from recorder_checks import SHIP_TIMEOUT, SHIPPED, Recorder

from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_probe import Event, FsProbe
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall, FsSippUas
from pbx_recorder.testbed.sipp import SippResult

__all__ = ["AGENT_CALLS", "agent_bridged", "assert_agent_calls", "call", "call_row", "custom_event",
           "hangup_complete", "new_caller", "record_started", "recorded_span", "rtp_in", "uuid_of",
           "wait_fs_call", "wait_fs_shipped"]


def call(pbx: PrivateFreeSWITCH, workdir: Path, did: str, **kwargs: Any) -> SippResult:
    """Place one call (blocking, bounded) and return sipp's result."""
    return FsSippCall(workdir, pbx.sip_port, did, **kwargs).start().wait()


def uuid_of(esl: FsProbe, caller: str, since: int = 0, timeout: float = 15.0) -> str:
    """The uuid of the caller's (inbound SIP) channel."""
    event = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_CREATE"
                           and e.get("Caller-Caller-ID-Number") == caller
                           and e.get("Call-Direction") == "inbound", timeout=timeout, since=since)
    return event["Unique-ID"]


def hangup_complete(esl: FsProbe, uuid: str, timeout: float = 15.0) -> Event:
    return esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                          and e.get("Unique-ID") == uuid, timeout=timeout)


def rtp_in(esl: FsProbe, uuid: str) -> str:
    """FreeSWITCH's own account of the caller's audio on the channel (its ``rtp_audio_in_*``
    counters, media ports and auto-adjust at hang-up), for the message of an audio assertion: a
    silent recording with no packets in was never heard by FreeSWITCH at all."""
    done = hangup_complete(esl, uuid)
    keys = sorted(k for k in done if k.startswith("variable_rtp_audio_in_") or k in (
        "variable_local_media_port", "variable_remote_media_port", "variable_rtp_auto_adjust_audio"))
    return "FreeSWITCH RTP in: " + ", ".join(f"{k.removeprefix('variable_')}={done[k]}" for k in keys)


def agent_bridged(esl: FsProbe, member: str, since: int, timeout: float = 20.0) -> tuple[float, Event]:
    event = esl.wait_event(lambda e: e.get("Event-Subclass") == "callcenter::info"
                           and e.get("CC-Action") == "bridge-agent-start"
                           and e.get("CC-Member-Session-UUID") == member, timeout=timeout, since=since)
    return next(t for t, e in esl.find(lambda e: e is event)), event


AGENT_CALLS = 6  # the agent phone answers more calls than a test needs: see assert_agent_calls


def assert_agent_calls(agent: FsSippUas, end: SippResult, esl: FsProbe, member: str, answered: int) -> None:
    """The agent phone (ended with ``finish()``) took exactly ``answered`` calls to the end (each
    hung up by FreeSWITCH's BYE), and every call it failed is one of mod_callcenter's failed
    bridges to the agent (``bridge-agent-fail``: under load the queue's first ring can fail, and
    the queue then rings the agent again).  Nothing else may fail."""
    ok, failed = agent.counts()
    bridge_fails = esl.find(lambda e: e.get("Event-Subclass") == "callcenter::info"
                            and e.get("CC-Action") == "bridge-agent-fail"
                            and e.get("CC-Member-Session-UUID") == member)
    assert ok == answered and failed <= len(bridge_fails), (ok, failed, len(bridge_fails), end.errors)


def record_started(esl: FsProbe, since: int, timeout: float = 15.0) -> tuple[float, Event]:
    event = esl.wait_event(lambda e: e.get("Event-Name") == "RECORD_START", timeout=timeout, since=since)
    return next(t for t, e in esl.find(lambda e: e is event)), event


def recorded_span(esl: FsProbe, uuid: str) -> float:
    """Seconds from the channel's first RECORD_START to its hang-up, by FreeSWITCH's own clock."""
    def stamp(name: str) -> float:
        found = esl.find(lambda e: e.get("Event-Name") == name and e.get("Unique-ID") == uuid)
        assert found, f"no {name} for {uuid}"
        return int(found[0][1]["Event-Date-Timestamp"]) / 1e6
    return stamp("CHANNEL_HANGUP_COMPLETE") - stamp("RECORD_START")


def custom_event(esl: FsProbe, subclass: str, tag: str, since: int = 0, timeout: float = 15.0) -> Event:
    """A sandbox dialplan event (``pbxrec::selftest|unrecorded|transfer``) of the call tagged ``tag``."""
    return esl.wait_event(lambda e: e.get("Event-Name") == "CUSTOM" and e.get("Event-Subclass") == subclass
                          and e.get("TestTag") == tag, timeout=timeout, since=since)


def call_row(recorder: Recorder, root_uuid: str) -> dict[str, Any] | None:
    rows = recorder.catalog.query("SELECT * FROM calls WHERE linkedid = ? OR call_id LIKE ?",
                                  (root_uuid, f"%_{root_uuid}"))
    return rows[0] if rows else None


def wait_fs_call(recorder: Recorder, root_uuid: str, timeout: float = SHIP_TIMEOUT,
                 settled: bool = True) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        row = call_row(recorder, root_uuid)
        if row and (not settled or row.get("status") not in ("", "live")):
            return row
        return None
    row = recorder.catalog.wait_for(probe, timeout)
    assert row, f"no catalog row for uuid {root_uuid}:\n{recorder.process.log_tail()}"
    return row


def wait_fs_shipped(recorder: Recorder, root_uuid: str, count: int = 1,
                    timeout: float = SHIP_TIMEOUT) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The call row and its recordings once ``count`` of them are shipped."""
    row = wait_fs_call(recorder, root_uuid, timeout, settled=False)

    def shipped() -> list[dict[str, Any]] | None:
        recs = [r for r in recorder.catalog.recordings(row["call_id"]) if r["state"] in SHIPPED]
        return recs if len(recs) >= count else None

    recs = recorder.catalog.wait_for(shipped, timeout)
    assert recs, f"recordings of {row['call_id']} not shipped:\n{recorder.process.log_tail()}"
    return wait_fs_call(recorder, root_uuid, 10), recs
