"""A caller ID that repeats AMI envelope headers (``1\\r\\nEvent: x``, ``1\\r\\nActionID: x``) gets
Asterisk's envelope back (ami/envelope.py), and the event is still the genuine call's.

The blocks are raw AMI text in the order Asterisk 16-22 writes it (main/manager.c envelope, then
``ast_manager_build_channel_state_string_prefix``): the caller's bytes sit in ``CallerIDNum``.
"""

from __future__ import annotations

from typing import Any

import pytest

from ami.client import message_from_block, parse_message
from ami.envelope import repair
from ami.normalize import Normalizer
from pbx_recorder.core import events as ev
from pbx_recorder.core.naming import make_call_id

NOW = 1_732_300_100.0
UID = "1700000000.7"
CALL = make_call_id("pbx1", UID)
VICTIM = "1700000000.1"


def snapshot(caller: str, uniqueid: str = UID, channel: str = "PJSIP/trunk-00000007") -> str:
    return (f"Channel: {channel}\r\nChannelState: 4\r\nChannelStateDesc: Ring\r\n"
            f"CallerIDNum: {caller}\r\nCallerIDName: Alice\r\nConnectedLineNum: <unknown>\r\n"
            "ConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\nContext: from-trunk\r\n"
            f"Exten: s\r\nPriority: 1\r\nUniqueid: {uniqueid}\r\nLinkedid: {uniqueid}\r\n")


def event(name: str, caller: str, extra: str = "") -> str:
    return (f"Event: {name}\r\nPrivilege: call,all\r\nTimestamp: 1732300000.100000\r\n"
            + snapshot(caller) + extra).strip()


HOSTILE = [
    "1\r\nEvent: x",
    "1\r\nActionID: x",
    "1\r\nevent: Hangup",  # another letter case is the same header
    "1\r\nEvent: Hangup\r\nEvent: Shutdown",
    "1\r\nResponse: Success",
    "1\r\nSubEvent: End",
    "1\r\nCommandID: x\r\nCommandID: y",
    "1\r\nEventList: Complete\r\nMessage: x\r\nTimestamp: 1",
]


@pytest.mark.parametrize("caller", HOSTILE)
def test_the_genuine_newchannel_is_delivered_with_the_genuine_ids(caller: str) -> None:
    message, repaired = parse_message(event("Newchannel", caller))
    # a lone ActionID in an event repeats nothing: panoramisk finds no action of ours under it
    # (ours carry a uuid4) and dispatches the message as the event it is
    assert message is not None and (bool(repaired) or caller == "1\r\nActionID: x")
    assert message["Event"] == "Newchannel"
    for key in ("event", "response", "actionid", "eventlist", "message", "timestamp"):
        assert not isinstance(message.get(key), list), key
    assert "subevent" not in message and "commandid" not in message and "response" not in message
    assert message["Timestamp"] == "1732300000.100000"
    (created,) = Normalizer("pbx1").normalize(message, NOW)
    assert isinstance(created, ev.ChannelCreated)
    assert (created.call_id, created.channel_id, created.channel) == (CALL, UID, "PJSIP/trunk-00000007")
    assert created.caller_num == "1" and created.at == 1732300000.1


def test_a_clean_block_is_not_touched() -> None:
    message, repaired = parse_message(event("Newchannel", "5551234", "ChanVariable: A=1\r\n"
                                                                       "ChanVariable: B=2\r\n"))
    assert repaired == () and message is not None
    assert message["ChanVariable"] == ["A=1", "B=2"]  # legitimately repeated: kept


def test_identity_stays_for_the_normalizer_and_its_positional_rules() -> None:
    """Only the envelope is decided here.  An injected ``Uniqueid``/``Linkedid`` comes BEFORE the
    genuine ones (they follow the caller fields), an injected ``Channel`` AFTER the genuine one:
    the normalizer takes the last and the first respectively, so the event stays the caller's."""
    caller = (f"1\r\nEvent: Hangup\r\nChannel: PJSIP/victim-00000001\r\nUniqueid: {VICTIM}\r\n"
              f"Linkedid: {VICTIM}")
    message = message_from_block(event("Newchannel", caller))
    assert message is not None
    assert message["Event"] == "Newchannel"
    assert message["Uniqueid"] == [VICTIM, UID] and message["Channel"][0] == "PJSIP/trunk-00000007"
    n = Normalizer("pbx1")
    (created,) = n.normalize(message, NOW)
    assert isinstance(created, ev.ChannelCreated)
    assert (created.call_id, created.channel_id, created.channel) == (CALL, UID, "PJSIP/trunk-00000007")
    assert n.uniqueid_of("PJSIP/victim-00000001") == ""


def test_a_list_item_keeps_the_actionid_asterisk_wrote_first() -> None:
    block = ("Event: CoreShowChannel\r\nActionID: action/1/1/9\r\n" + snapshot("1\r\nActionID: x")
             + "Application: Dial\r\nApplicationData: \r\nDuration: 00:00:10\r\nBridgeId: \r\n")
    message, repaired = parse_message(block.strip())
    assert message is not None and repaired == ("actionid",)
    assert message.id == "action/1/1/9" and message.action_id == "action/1/1/9"
    (live,) = Normalizer("pbx1").normalize(message, NOW)
    assert isinstance(live, ev.LiveChannel) and (live.call_id, live.channel_id) == (CALL, UID)


def test_a_reply_is_a_reply_whatever_its_value_carries() -> None:
    block = ("Response: Success\r\nActionID: action/1/1/3\r\nVariable: PBXREC_X\r\n"
             "Value: 1\r\nEvent: Hangup\r\nActionID: x\r\nSubEvent: End")
    message, repaired = parse_message(block)
    assert message is not None and set(repaired) == {"event", "actionid", "subevent"}
    assert "event" not in message and message.id == "action/1/1/3" and message["Value"] == "1"


def test_repair_in_place_rules() -> None:
    headers: dict[str, Any] = {"Event": ["Newchannel", "x"], "Response": "Success", "Channel": ["A", "B"],
                               "SubEvent": "End", "EventList": [], "Uniqueid": ["1", "2"]}
    spelling = {k.lower(): k for k in headers}
    assert repair(headers, spelling) == ("event", "response", "subevent", "eventlist")
    assert headers == {"Event": "Newchannel", "Channel": ["A", "B"], "EventList": "", "Uniqueid": ["1", "2"]}


def test_without_event_or_response_nothing_is_made() -> None:
    assert parse_message("CallerIDName: x\r\nUniqueid: 1.1") == (None, ())
