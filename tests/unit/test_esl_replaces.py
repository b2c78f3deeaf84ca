"""A phone's own attended transfer (REFER with Replaces) links the two calls both ways (issue 7):
esl/replaces.py in the normalizer, the core's ``transfer`` entry on each call row."""

from __future__ import annotations

import json

from esl.normalize import EslNormalizer
from pbx_recorder.core import events as E
from pbx_recorder.core.call_model import Recording, call_row, recording_metadata
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.rules import rules_from_dicts
from tests.unit.esl_samples import A_LEG, B_LEG, T0, ev, inbound_call
from tests.unit.test_esl_normalize import normalize_all

CONSULT = "c0ffee00-0000-4000-8000-00000000000c"  # the agent phone's consultation call, its own root
COLLEAGUE = "c0ffee00-0000-4000-8000-00000000000d"
CALLER_CALL, CONSULT_CALL = f"pbx1_{A_LEG}", f"pbx1_{CONSULT}"
# as on the real 1.11.1: uuid_bridge overwrote transfer_source; the att_xfer mark is in the history
XFER = {"variable_transfer_source": f"1764600020:c0ffee00-0000-4000-8000-0000000000aa:uuid_br:{COLLEAGUE}",
        "variable_transfer_history": f"ARRAY::1764600001:{A_LEG}:uuid_br:{B_LEG}"
                                     f"|:1764600020:{A_LEG}:att_xfer:agent@127.0.0.1/sipp@127.0.0.1"}


def _two_calls(n: EslNormalizer) -> None:
    """Caller A bridged to agent B; the consultation C (originated on its own) bridged to colleague D."""
    normalize_all(inbound_call()[:5], n)
    consult = {"Call-Direction": "outbound", "Channel-Call-UUID": CONSULT}
    colleague = {"Call-Direction": "outbound", "Channel-Call-UUID": CONSULT, "Other-Type": "originator",
                 "Other-Leg-Unique-ID": CONSULT, "variable_originating_leg_uuid": CONSULT}
    normalize_all([ev("CHANNEL_CREATE", CONSULT, T0 + 10, consult),
                   ev("CHANNEL_CREATE", COLLEAGUE, T0 + 11, colleague),
                   ev("CHANNEL_BRIDGE", CONSULT, T0 + 12, {"Bridge-A-Unique-ID": CONSULT,
                                                           "Bridge-B-Unique-ID": COLLEAGUE})], n)


def test_refer_replaces_bridge_names_each_call_in_the_other() -> None:
    n = EslNormalizer("pbx1")
    _two_calls(n)
    joined = ev("CHANNEL_BRIDGE", A_LEG, T0 + 20,
                {"Bridge-A-Unique-ID": A_LEG, "Bridge-B-Unique-ID": COLLEAGUE,
                 "Other-Leg-Unique-ID": COLLEAGUE, **XFER})
    mine, theirs, bridged = normalize_all([joined], n)
    assert isinstance(mine, E.Transferred) and isinstance(theirs, E.Transferred)
    assert (mine.call_id, mine.target_call_id, mine.channel, mine.target_channel) == (
        CALLER_CALL, CONSULT_CALL, B_LEG, COLLEAGUE)  # the transferer is the agent leg that leaves
    assert (theirs.call_id, theirs.target_call_id, theirs.channel, theirs.target_channel) == (
        CONSULT_CALL, CALLER_CALL, CONSULT, A_LEG)
    assert mine.kind == theirs.kind == "attended" and isinstance(bridged, E.Bridged)
    assert bridged.call_id == CALLER_CALL  # the caller's leg stays in its own call
    assert [type(e).__name__ for e in normalize_all([joined], n)] == ["Bridged"]  # reported once


def test_a_bridge_inside_one_call_or_without_att_xfer_is_no_replaces_transfer() -> None:
    n = EslNormalizer("pbx1")
    _two_calls(n)
    plain = ev("CHANNEL_BRIDGE", A_LEG, T0 + 20,
               {"Bridge-A-Unique-ID": A_LEG, "Bridge-B-Unique-ID": COLLEAGUE,
                "variable_transfer_source": XFER["variable_transfer_source"],
                "variable_transfer_history": f"ARRAY::1764600001:{A_LEG}:uuid_br:{B_LEG}"})
    assert [type(e).__name__ for e in normalize_all([plain], n)] == ["Bridged"]
    n = EslNormalizer("pbx1")
    normalize_all(inbound_call()[:5], n)
    same_call = ev("CHANNEL_BRIDGE", A_LEG, T0 + 20,
                   {"Bridge-A-Unique-ID": A_LEG, "Bridge-B-Unique-ID": B_LEG, **XFER})
    assert [type(e).__name__ for e in normalize_all([same_call], n)] == ["Bridged"]


def test_the_core_links_the_calls_on_their_rows_and_manifests() -> None:
    book = CallBook("pbx1", "/mon", rules_from_dicts([]))
    for cid, leg in ((CALLER_CALL, A_LEG), (CONSULT_CALL, CONSULT)):
        book.handle(E.ChannelCreated(at=T0, call_id=cid, channel_id=leg, channel=leg), T0)
    for own, other, agent in ((CALLER_CALL, CONSULT_CALL, B_LEG), (CONSULT_CALL, CALLER_CALL, CONSULT)):
        xfer = E.Transferred(at=T0 + 20, call_id=own, channel_id=agent, channel=agent, kind="attended",
                             target_call_id=other, target_channel="x")
        book.handle(xfer, T0 + 20)
        book.handle(xfer, T0 + 21)  # once per other call
    for own, other in ((CALLER_CALL, CONSULT_CALL), (CONSULT_CALL, CALLER_CALL)):
        call = book.find(own)
        assert call is not None and "transferred" in call.flags
        row = call_row(call, T0 + 30)
        link = {"kind": "attended", "call_id": other, "at": T0 + 20}
        assert json.loads(row["consent"])["transfer"] == [link]
        assert call.consent_evidence == {}  # the evidence itself is not touched
    caller = book.find(CALLER_CALL)
    assert caller is not None and not caller.transferred  # the recorded caller leg does not leave
    restored = CallBook("pbx1", "/mon", rules_from_dicts([]))
    restored.restore(book.snapshot(CALLER_CALL))
    again = restored.find(CALLER_CALL)
    assert again is not None and again.transfer_links == caller.transfer_links  # survives a restart
    rec_meta = recording_metadata(caller, _rec())
    assert rec_meta["consent"]["transfer"][0]["call_id"] == CONSULT_CALL


def _rec() -> Recording:
    return Recording(recording_id=f"{CALLER_CALL}_call001", kind="call", seq=1, mode="mixed",
                     channel=A_LEG, path="/mon/x.wav")
