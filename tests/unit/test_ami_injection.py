"""CRLF injected through a caller ID (Asterisk 16 copies it into AMI events) never decides identity.

Fixtures are raw AMI bytes as Asterisk 16.28 emits them (CRLF, snapshot layout of
ast_manager_build_channel_state_string_prefix); each is read both by :mod:`ami.frames` and by
the live client's parser (:func:`ami.client.message_from_block`, panoramisk Messages).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ami.client import message_from_block
from ami.frames import parse_transcript
from ami.injection import resolve, sanitize
from ami.normalize import Normalizer
from pbx_recorder.core import events as ev
from pbx_recorder.core.naming import make_call_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
NOW = 1_732_300_100.0
VICTIM_CALL = make_call_id("pbx1", "1732300000.1")


def via_frames(data: bytes) -> list[Any]:
    return list(parse_transcript(data))


def via_client(data: bytes) -> list[Any]:
    text = data.decode().partition("\r\n")[2]  # the banner line
    blocks = [message_from_block(b.strip()) for b in text.split("\r\n\r\n")]
    return [m for m in blocks if m is not None]


PARSERS = pytest.mark.parametrize("parse", [via_frames, via_client], ids=["frames", "panoramisk"])


def run(name: str, parse: Callable[[bytes], list[Any]]) -> tuple[Normalizer, list[Any]]:
    n = Normalizer("pbx1")
    out: list[Any] = []
    for frame in parse((FIXTURES / name).read_bytes()):
        out.extend(n.normalize(frame, NOW))
    return n, out


@PARSERS
def test_injection_in_callerid_num_keeps_genuine_identity(parse: Callable[[bytes], list[Any]],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ami.normalize")
    n, out = run("injection_callerid_num.txt", parse)
    mallory = make_call_id("pbx1", "1732300000.2")
    assert [type(e).__name__ for e in out] == ["ChannelCreated", "ChannelCreated", "ChannelAnswered",
                                               "VariableSet", "ChannelHungUp"]
    for e in out[1:]:
        assert (e.call_id, e.channel_id, e.channel) == (mallory, "1732300000.2", "PJSIP/mallory-00000002")
    created = out[1]
    assert created.context == "from-trunk" and created.caller_num == "1" and created.caller_name == "Mallory"
    assert out[3].name == "PBXREC_RESULT" and out[3].value == "record"
    assert out[4].cause == 16
    assert not any(e.call_id == VICTIM_CALL for e in out[1:])
    assert n.uniqueid_of("PJSIP/mallory-00000002") == "1732300000.2"
    assert n.uniqueid_of("Local/1@x") == ""
    warnings = [r.getMessage() for r in caplog.records if "AMI header injection attempt" in r.getMessage()]
    assert len(warnings) == 1  # once per channel, not once per event
    assert "PJSIP/mallory-00000002" in warnings[0] and "identity kept by position" in warnings[0]
    assert n.injections == 4 and n.injections_dropped == 0


@PARSERS
def test_injection_in_callerid_name_and_cdr(parse: Callable[[bytes], list[Any]]) -> None:
    n, out = run("injection_callerid_name.txt", parse)
    eve = make_call_id("pbx1", "1732300000.3")
    kinds = [type(e).__name__ for e in out]
    # the Cdr (LastData after Channel: no positional guarantee) names an unregistered Local/2@x
    # among its Channel candidates: not resolvable, dropped
    assert kinds == ["ChannelCreated", "ChannelCreated", "ChannelAnswered", "ChannelHungUp"]
    for e in out[1:]:
        assert (e.call_id, e.channel_id) == (eve, "1732300000.3")
    assert out[1].channel == "PJSIP/eve-00000003" and out[1].caller_name == "Eve"
    assert out[3].cause == 16  # the genuine Cause follows the snapshot: the injected 99 came first
    assert n.injections == 4 and n.injections_dropped == 1


def test_cdr_with_only_registered_candidates_resolves() -> None:
    n = Normalizer("pbx1")
    n.normalize({"event": "Newchannel", "channel": "PJSIP/e-3", "uniqueid": "5.3", "linkedid": "5.3"}, NOW)
    n.normalize({"event": "Newchannel", "channel": "PJSIP/v-1", "uniqueid": "5.1", "linkedid": "5.1"}, NOW)
    cdr = {"event": "Cdr", "source": "1", "uniqueid": ["5.9", "5.3"], "channel": "PJSIP/e-3",
           "callerid": ['"x', 'y" <1>'], "linkedid": ["5.1", "5.3"], "billableseconds": "6"}
    out = n.normalize(cdr, NOW)
    assert len(out) == 1 and out[0].call_id == make_call_id("pbx1", "5.3") and out[0].channel_id == "5.3"
    assert out[0].fields["clid"] == '"x'


@PARSERS
def test_tainted_multi_snapshot_events_resolve_from_registry_or_drop(
        parse: Callable[[bytes], list[Any]], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ami.normalize")
    n, out = run("injection_dest_snapshot.txt", parse)
    carol = make_call_id("pbx1", "1732300000.4")
    agents = [e for e in out if isinstance(e, ev.AgentConnected)]
    # the caller snapshot comes first, so its genuine Channel is the first value: an injected
    # unknown Local/1@x and an injected live call (name + Uniqueid) both lose to it
    assert len(agents) == 2
    for agent in agents:
        assert (agent.call_id, agent.channel_id) == (carol, "1732300000.4")
        assert agent.channel == "PJSIP/carol-00000004"
        assert agent.agent_channel == "PJSIP/agent7-00000005" and agent.queue == "support"
    # Transferee candidates: injected registered alice + genuine unregistered ghost -> dropped
    assert not any(isinstance(e, ev.Transferred) for e in out)
    assert not any(e.call_id == VICTIM_CALL for e in out[1:])
    assert n.injections == 3 and n.injections_dropped == 1
    text = caplog.text
    assert "AMI header injection attempt in AgentConnect" in text
    assert "identity from the channel registry" in text
    assert "AMI header injection attempt in BlindTransfer" in text and "event dropped" in text


def test_positional_identity_contradicting_the_registry_is_dropped() -> None:
    n = Normalizer("pbx1")
    n.normalize({"event": "Newchannel", "channel": "PJSIP/a-1", "uniqueid": "5.1", "linkedid": "5.1"}, NOW)
    # a Hangup claiming PJSIP/a-1 but (by position) another Uniqueid: not believed
    forged = {"event": "Hangup", "channel": ["PJSIP/a-1", "Local/1@x"], "uniqueid": ["5.1", "5.7"],
              "linkedid": "5.7", "cause": "16"}
    assert n.normalize(forged, NOW) == [] and n.injections_dropped == 1


def test_resolution_rules_and_sanitizing() -> None:
    r = resolve({"event": "Hangup", "channel": ["A", "B"], "uniqueid": ["x", "y"], "calleridname": ["n", "m"],
                 "cause": ["99", "16"], "chanvariable": ["a=1", "b=2"]}, "Hangup")
    assert (r["channel"], r["uniqueid"], r["calleridname"], r["cause"]) == ("A", "y", "n", "16")
    assert r["chanvariable"] == ["a=1", "b=2"] and r.tainted and r.positional
    multi = resolve({"event": "AgentConnect", "queue": ["q1", "q2"], "channel": "C"}, "AgentConnect")
    assert multi["queue"] == "q1" and not multi.tainted and not multi.positional
    assert sanitize("a\r\nb\x00c\x7fd\x85e Zoë 李") == "abcde Zoë 李"


def test_case_variant_repeat_is_kept_by_the_client_parser() -> None:
    msg = message_from_block("Event: Newchannel\r\nChannel: PJSIP/a-1\r\nCallerIDNum: 1\r\n"
                             "channel: Local/1@x\r\nUniqueid: 5.1\r\nLinkedid: 5.1")
    assert msg is not None and msg["Channel"] == ["PJSIP/a-1", "Local/1@x"]
    out = Normalizer("pbx1").normalize(msg, NOW)
    assert len(out) == 1 and out[0].channel == "PJSIP/a-1"
    assert message_from_block("Foo: bar") is None


def test_garbage_never_raises() -> None:
    n = Normalizer("pbx1")
    for frame in ({"event": "AgentConnect", "channel": [], "uniqueid": [None]},
                  {"event": "Cdr", "uniqueid": ["1", "2"], "channel": [3, 4]},
                  {"event": "BlindTransfer", "transfererchannel": ["a", "b"]},
                  {"Event": "Hangup", "Channel": "x", "channel": "y"}):
        assert isinstance(n.normalize(frame, NOW), list)
