"""Hand-written FreeSWITCH 1.11 events, faithful to ../shared/freeswitch-facts.md and the
mod_event_socket source (header names, percent-encoding, microsecond timestamps).

The peer tests replay these as wire bytes; when the testbed's captures of a real FreeSWITCH
(tests/fixtures/esl/) exist, tests/peers/test_esl_captured.py replays those too.
"""

from __future__ import annotations

from esl.frames import render_event_plain, render_frame

A_LEG = "6f1c3a52-8f0e-4c3b-9a51-0d2b7e5c1a01"
B_LEG = "0b7d2e44-1c55-4a8e-b0f3-77e1c9d2f102"
T0 = 1_764_600_000.0


def event(name: str, uuid: str, at: float) -> list[tuple[str, str]]:
    """Headers of one channel event, in FreeSWITCH's order (basic data, then caller profile)."""
    headers = [
        ("Event-Name", name),
        ("Core-UUID", "c0de0000-0000-4000-8000-000000000001"),
        ("FreeSWITCH-Hostname", "pbx1"),
        ("FreeSWITCH-Switchname", "pbx1"),
        ("Event-Date-Timestamp", str(int(at * 1_000_000))),
        ("Event-Calling-File", "switch_channel.c"),
        ("Channel-State", "CS_EXECUTE"),
        ("Channel-Call-State", "ACTIVE"),
        ("Unique-ID", uuid),
        ("Call-Direction", "inbound"),
        ("Answer-State", "answered"),
        ("Channel-Name", "sofia/internal/sipp@127.0.0.1:15090"),
        ("Channel-Call-UUID", uuid),
        ("Caller-Caller-ID-Name", "Jane Doe"),
        ("Caller-Caller-ID-Number", "5551234"),
        ("Caller-Destination-Number", "1000"),
        ("Caller-Context", "public"),
    ]
    return headers


def ev(name: str, uuid: str, at: float, headers: dict[str, str] | None = None) -> list[tuple[str, str]]:
    base = event(name, uuid, at)
    extra = headers or {}
    return [(k, v) for k, v in base if k not in extra] + list(extra.items())


def inbound_call(a_leg: str = A_LEG, b_leg: str = B_LEG, t0: float = T0) -> list[list[tuple[str, str]]]:
    """An inbound call: caller answered, bridged to an agent leg, hung up by the caller."""
    b_extra = {
        "Call-Direction": "outbound",
        "Channel-Name": "sofia/internal/1001@127.0.0.1",
        "Channel-Call-UUID": a_leg,
        "Other-Type": "originator",
        "Other-Leg-Unique-ID": a_leg,
        "variable_originating_leg_uuid": a_leg,
        "Caller-Destination-Number": "1001",
    }
    cdr = {
        "Channel-State": "CS_REPORTING",
        "Answer-State": "hangup",
        "Hangup-Cause": "NORMAL_CLEARING",
        "variable_hangup_cause": "NORMAL_CLEARING",
        "variable_hangup_cause_q850": "16",
        "variable_start_epoch": str(int(t0)),
        "variable_answer_epoch": str(int(t0 + 1)),
        "variable_end_epoch": str(int(t0 + 30)),
        "variable_billsec": "29",
        "variable_duration": "30",
        "variable_start_stamp": "2025-12-01 15:20:00",
        "variable_answer_stamp": "2025-12-01 15:20:01",
        "variable_end_stamp": "2025-12-01 15:20:30",
        "variable_sip_call_id": "1-2345@127.0.0.1",
        "variable_PBXREC_DIALED": "4930123456",
        "variable_PBXREC_RESULT": "record",
    }
    return [
        ev("CHANNEL_CREATE", a_leg, t0, {"Channel-State": "CS_INIT", "Answer-State": "ringing"}),
        ev("CHANNEL_ANSWER", a_leg, t0 + 1),
        ev("CHANNEL_CREATE", b_leg, t0 + 5, b_extra),
        ev("CHANNEL_ANSWER", b_leg, t0 + 7, b_extra),
        ev(
            "CHANNEL_BRIDGE",
            a_leg,
            t0 + 7,
            {"Bridge-A-Unique-ID": a_leg, "Bridge-B-Unique-ID": b_leg, "Other-Leg-Unique-ID": b_leg},
        ),
        ev("RECORD_START", a_leg, t0 + 7.02, {"Record-File-Path": "/var/rec/x.wav"}),
        ev("CHANNEL_UNBRIDGE", a_leg, t0 + 30, {"Bridge-A-Unique-ID": a_leg, "Bridge-B-Unique-ID": b_leg}),
        ev(
            "RECORD_STOP",
            a_leg,
            t0 + 30,
            {"Record-File-Path": "/var/rec/x.wav", "Channel-State": "CS_HANGUP", "Answer-State": "hangup"},
        ),
        ev("CHANNEL_HANGUP_COMPLETE", b_leg, t0 + 30, {**b_extra, **cdr, "variable_PBXREC_RESULT": ""}),
        ev("CHANNEL_HANGUP_COMPLETE", a_leg, t0 + 30, cdr),
    ]


def wire(events: list[list[tuple[str, str]]]) -> bytes:
    return b"".join(render_event_plain(e) for e in events)


def api_response(body: str) -> bytes:
    return render_frame([("Content-Type", "api/response")], body.encode())


def command_reply(text: str, **headers: str) -> bytes:
    return render_frame([("Content-Type", "command/reply"), ("Reply-Text", text), *headers.items()])
