"""FreeSWITCH events -> core CallEvents (esl/normalize.py), and the call through the core."""

from __future__ import annotations

from esl.frames import EslParser
from esl.normalize import EslNormalizer, cdr_fields, live_channel
from pbx_recorder.config.model import RuleAction, RuleConfig, RuleMatch
from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import FinalizeRecording, StartRecording, UpsertCall
from tests.unit.esl_samples import A_LEG, B_LEG, T0, ev, inbound_call, wire

CALL = f"pbx1_{A_LEG}"


def normalize_all(events: list, n: EslNormalizer | None = None) -> list:
    n = n or EslNormalizer("pbx1")
    out = []
    for frame in EslParser().feed(wire(events)):
        event = frame.event()
        assert event is not None
        out += n.normalize(event, T0 + 100)
    return out


def test_inbound_call_events_in_order_and_one_call_id() -> None:
    out = normalize_all(inbound_call())
    assert [type(e).__name__ for e in out] == [
        "ChannelCreated",
        "ChannelAnswered",
        "ChannelCreated",
        "ChannelAnswered",
        "Bridged",
        "Unbridged",
        "ChannelHungUp",
        "ChannelHungUp",
        "CdrPosted",
    ]
    assert {e.call_id for e in out} == {CALL}  # the agent leg joins the caller's call
    created = out[0]
    assert isinstance(created, E.ChannelCreated)
    assert (created.channel, created.caller_num, created.caller_name, created.exten, created.context) == (
        A_LEG,
        "5551234",
        "Jane Doe",
        "1000",
        "public",
    )
    assert created.at == T0  # Event-Date-Timestamp is in microseconds
    bridged = out[4]
    assert isinstance(bridged, E.Bridged) and bridged.bridge_id == A_LEG


def test_cdr_only_from_the_originating_leg_with_asterisk_keys() -> None:
    cdr = [e for e in normalize_all(inbound_call()) if isinstance(e, E.CdrPosted)]
    assert len(cdr) == 1 and cdr[0].channel_id == A_LEG
    f = cdr[0].fields
    assert f["disposition"] == "ANSWERED" and f["billsec"] == "29" and f["duration"] == "30"
    assert (f["start_epoch"], f["answer_epoch"], f["end_epoch"]) == (
        str(int(T0)),
        str(int(T0 + 1)),
        str(int(T0 + 30)),
    )
    assert f["hangup_cause"] == "NORMAL_CLEARING" and f["sip_call_id"] == "1-2345@127.0.0.1"
    assert f["src"] == "5551234" and f["pbxrec_dnid"] == "4930123456"


def test_dispositions_from_hangup_causes() -> None:
    assert cdr_fields({"Hangup-Cause": "NO_ANSWER"})["disposition"] == "NO ANSWER"
    assert (
        cdr_fields({"Hangup-Cause": "ORIGINATOR_CANCEL", "variable_answer_epoch": "0"})["disposition"]
        == "NO ANSWER"
    )
    assert cdr_fields({"Hangup-Cause": "USER_BUSY"})["disposition"] == "BUSY"
    assert cdr_fields({"Hangup-Cause": "CALL_REJECTED"})["disposition"] == "FAILED"


def test_record_stop_on_hangup_is_left_to_the_hangup() -> None:
    stop = ev("RECORD_STOP", A_LEG, T0, {"Record-File-Path": "/r/x.wav", "Channel-State": "CS_HANGUP"})
    assert normalize_all([stop]) == []
    live_stop = ev("RECORD_STOP", A_LEG, T0, {"Record-File-Path": "/r/x.wav"})
    (out,) = normalize_all([live_stop])
    assert isinstance(out, E.RecordingStopped) and out.pbx_ref == "/r/x.wav"


def test_root_is_fixed_at_first_sight_even_when_call_uuid_changes() -> None:
    n = EslNormalizer("pbx1")
    first = normalize_all([ev("CHANNEL_CREATE", B_LEG, T0, {"Channel-Call-UUID": A_LEG})], n)
    later = normalize_all([ev("CHANNEL_ANSWER", B_LEG, T0, {"Channel-Call-UUID": B_LEG})], n)
    assert first[0].call_id == later[0].call_id == CALL


def test_exported_call_id_wins_and_survives_a_recorder_restart() -> None:
    fresh = EslNormalizer("pbx1")  # a restarted recorder: no memory of the legs
    (out,) = normalize_all(
        [ev("CHANNEL_ANSWER", B_LEG, T0, {"Channel-Call-UUID": B_LEG, "variable_PBXREC_CALL_ID": A_LEG})],
        fresh,
    )
    assert out.call_id == CALL


def test_callcenter_agent_joins_the_member_call() -> None:
    n = EslNormalizer("pbx1")
    normalize_all([ev("CHANNEL_CREATE", A_LEG, T0)], n)
    cc = ev(
        "CUSTOM",
        B_LEG,
        T0 + 3,
        {
            "Event-Subclass": "callcenter::info",
            "CC-Action": "bridge-agent-start",
            "CC-Queue": "support@default",
            "CC-Agent": "1001@default",
            "CC-Agent-UUID": B_LEG,
            "CC-Member-Session-UUID": A_LEG,
        },
    )
    (agent,) = normalize_all([cc], n)
    assert isinstance(agent, E.AgentConnected)
    assert (agent.call_id, agent.queue, agent.agent, agent.agent_channel) == (
        CALL,
        "support@default",
        "1001@default",
        B_LEG,
    )
    (answer,) = normalize_all([ev("CHANNEL_ANSWER", B_LEG, T0 + 3, {"Channel-Call-UUID": B_LEG})], n)
    assert answer.call_id == CALL


def test_hostile_caller_data_is_cut_and_counted() -> None:
    n = EslNormalizer("pbx1")
    hostile = "Eve\r\nEvent-Name: CHANNEL_HANGUP_COMPLETE\r\n" + "张" * 2000
    (out,) = normalize_all(
        [
            ev(
                "CHANNEL_CREATE",
                A_LEG,
                T0,
                {"Caller-Caller-ID-Name": hostile, "Caller-Caller-ID-Number": "555\n1234"},
            )
        ],
        n,
    )
    assert isinstance(out, E.ChannelCreated)
    assert "\r" not in out.caller_name and "\n" not in out.caller_name and len(out.caller_name) <= 80
    assert out.caller_num == "5551234"
    assert n.injections == 1


def test_bad_uuid_and_unknown_events_are_ignored() -> None:
    n = EslNormalizer("pbx1")
    assert normalize_all([ev("CHANNEL_ANSWER", "bad uuid;x", T0)], n) == []
    assert normalize_all([ev("HEARTBEAT", A_LEG, T0)], n) == []
    assert n.ignored == 1


def test_mask_event_becomes_recording_muted() -> None:
    mask = [
        ("Event-Name", "CUSTOM"),
        ("Event-Subclass", "pbxrec::mask"),
        ("PBXREC-Channel", A_LEG),
        ("PBXREC-Muted", "true"),
        ("Event-Date-Timestamp", str(int(T0 * 1e6))),
    ]
    (out,) = normalize_all([mask])
    assert isinstance(out, E.RecordingMuted) and out.muted and out.channel == A_LEG and out.call_id == CALL


def test_live_channel_from_show_channels_row() -> None:
    n = EslNormalizer("pbx1")
    row = {"uuid": B_LEG, "call_uuid": B_LEG, "callstate": "ACTIVE", "cid_num": "5551234"}
    live = live_channel(n, row, {"PBXREC_CALL_ID": A_LEG, "PBXREC_RESULT": "record"}, T0)
    assert live is not None and live.call_id == CALL and live.state == "up"
    assert live.variables["PBXREC_RESULT"] == "record"
    assert live_channel(n, {"uuid": "x y"}, {}, T0) is None


def test_answer_bridge_record_through_the_core() -> None:
    """Events from the normalizer drive the unchanged core: a start_on=bridge rule records on
    bridge, the CDR finalizes the call."""
    rule = RuleConfig("all", RuleMatch(), RuleAction(record="yes", start_on="bridge"))
    book = CallBook("pbx1", "/var/rec", [rule], gosub_grace_s=0.0)
    commands = []
    for item in normalize_all(inbound_call()):
        commands += book.handle(item, item.at)
        commands += book.tick(item.at + 0.1)
    starts = [c for c in commands if isinstance(c, StartRecording)]
    assert len(starts) == 1 and starts[0].channel == A_LEG
    assert any(isinstance(c, FinalizeRecording) for c in commands)
    row = next(c.row for c in commands if isinstance(c, UpsertCall))
    assert row["status"] == "answered" and row["billsec"] == 29


def test_blind_transfer_hangup_cause_reports_the_transfer() -> None:
    """``uuid_transfer <agent> -bleg``: FreeSWITCH hangs the agent up with BLIND_TRANSFER."""
    n = EslNormalizer("pbx1")
    normalize_all(inbound_call()[:5], n)  # caller and agent bridged
    agent_gone = ev(
        "CHANNEL_HANGUP_COMPLETE",
        B_LEG,
        T0 + 9,
        {"Hangup-Cause": "BLIND_TRANSFER", "Channel-Call-UUID": B_LEG},
    )
    transferred, hung_up = normalize_all([agent_gone], n)
    assert isinstance(transferred, E.Transferred) and transferred.kind == "blind"
    assert transferred.call_id == hung_up.call_id == CALL and transferred.channel == B_LEG
    colleague = ev(
        "CHANNEL_CREATE",
        "c0ffee00-0000-4000-8000-000000000003",
        T0 + 10,
        {"variable_originating_leg_uuid": A_LEG, "Channel-Call-UUID": A_LEG},
    )
    assert normalize_all([colleague], n)[0].call_id == CALL  # the colleague's leg joins the same call


def test_blind_transfer_out_of_a_media_bridge_is_seen_on_the_next_bridge() -> None:
    """``uuid_transfer <agent> -bleg <ext>`` on a media bridge: the agent hangs up NORMAL_CLEARING;
    the caller's next CHANNEL_BRIDGE carries ``variable_transfer_source`` (``...:bl_xfer:...``)."""
    n = EslNormalizer("pbx1")
    normalize_all(inbound_call()[:5], n)  # caller A bridged to agent B
    colleague = "c0ffee00-0000-4000-8000-000000000003"
    source = f"1764600009:{A_LEG}:bl_xfer:9001/pbxrec-transfer/XML"
    rebridge = ev(
        "CHANNEL_BRIDGE",
        A_LEG,
        T0 + 10,
        {"Bridge-A-Unique-ID": A_LEG, "Bridge-B-Unique-ID": colleague, "variable_transfer_source": source},
    )
    transferred, bridged = normalize_all([rebridge], n)
    assert isinstance(transferred, E.Transferred) and transferred.kind == "blind"
    assert (transferred.channel, transferred.target_channel, transferred.call_id) == (B_LEG, colleague, CALL)
    assert isinstance(bridged, E.Bridged)
    again = ev(
        "CHANNEL_BRIDGE",
        A_LEG,
        T0 + 11,
        {"Bridge-B-Unique-ID": colleague, "variable_transfer_source": source},
    )
    assert [type(e).__name__ for e in normalize_all([again], n)] == ["Bridged"]  # reported once


def _consulting(n: EslNormalizer) -> str:
    """Caller A bridged to agent B; B runs att_xfer: A is held, B is bridged to colleague X."""
    normalize_all(inbound_call()[:5], n)
    colleague = "c0ffee00-0000-4000-8000-000000000004"
    x_extra = {"variable_originating_leg_uuid": B_LEG, "Other-Type": "originator",
               "Other-Leg-Unique-ID": B_LEG}
    consult = ev("CHANNEL_BRIDGE", B_LEG, T0 + 12,
                 {"Bridge-A-Unique-ID": B_LEG, "Bridge-B-Unique-ID": colleague})
    out = normalize_all([ev("CHANNEL_CREATE", colleague, T0 + 10, x_extra), consult], n)
    assert [type(e).__name__ for e in out] == ["ChannelCreated", "Bridged"]  # a consultation is no transfer
    assert {e.call_id for e in out} == {CALL}  # the consultation leg is a leg of the caller's call
    return colleague


def test_attended_transfer_is_the_held_caller_bridged_to_the_consulted_colleague() -> None:
    n = EslNormalizer("pbx1")
    colleague = _consulting(n)
    done = ev("CHANNEL_BRIDGE", colleague, T0 + 20,
              {"Bridge-A-Unique-ID": colleague, "Bridge-B-Unique-ID": A_LEG,
               "variable_att_xfer_result": "success"})
    transferred, bridged = normalize_all([done], n)
    assert isinstance(transferred, E.Transferred) and transferred.kind == "attended"
    assert (transferred.call_id, transferred.channel, transferred.target_channel) == (CALL, B_LEG, colleague)
    assert isinstance(bridged, E.Bridged) and bridged.call_id == CALL
    assert [type(e).__name__ for e in normalize_all([done], n)] == ["Bridged"]  # reported once


def test_cancelled_consultation_is_not_a_transfer() -> None:
    """The colleague hangs up; att_xfer bridges the agent back to the caller: no transfer."""
    n = EslNormalizer("pbx1")
    colleague = _consulting(n)
    gone = ev("CHANNEL_HANGUP_COMPLETE", colleague, T0 + 15, {"Hangup-Cause": "NORMAL_CLEARING"})
    back = ev("CHANNEL_BRIDGE", B_LEG, T0 + 16, {"Bridge-A-Unique-ID": B_LEG, "Bridge-B-Unique-ID": A_LEG})
    out = normalize_all([gone, back], n)
    assert [type(e).__name__ for e in out] == ["ChannelHungUp", "Bridged"]
