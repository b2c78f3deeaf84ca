"""A query hold as it is shown, and a query hold that cannot be read.

Its free fields (``agent`` as a remote agent's dial string ``Local/<mobile>@from-internal``, a DID,
typed text) were shown in clear: ``hold add`` echoed the query, ``hold list --json`` printed it
opened.  Every output now goes through ``query_hold_rows.displayed`` (never unmasked).  A hold
whose stored query does not open holds everything; it was only a log warning, and is now marked
``UNREADABLE: holds everything`` in ``hold list`` (text and JSON), in the reason erasure and
retention give a recording it withholds, and in a ``verify`` note (no mismatch while the ledger
agrees with the row).  SQLite and, with ``PBXR_TEST_CATALOG=postgresql``, PostgreSQL."""

from __future__ import annotations

import json
import os

import pytest
from tamper_support import CALLER, NOW, indexing_deployment

from pbx_recorder.catalog import Catalog, engine
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.lifecycle import query_hold_rows
from pbx_recorder.lifecycle.holds import note_rekeyed
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.recording.call_seal import CallSealer

DIAL = f"Local/{CALLER}@from-internal"  # a remote agent: the dial string names their mobile
MASKED_DIAL = "Local/491******5678@from-internal"


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    numbers = d.catalog.numbers
    d.catalog.close()
    d.catalog = d.shipper.catalog = Catalog(d.config.catalog.path, clock=lambda: NOW, numbers=numbers,
                                             sealer=CallSealer(d.sign_key, reveal=numbers.open_call))
    yield d
    d.close()
    engine.close_pools()


def _add(dep, capsys, query) -> tuple[str, str]:
    code, out = dep.cli(capsys, "hold", "add", "--query", json.dumps(query), "--reason", "FCA inquiry")
    assert code == 0, out
    return out.split(":")[0].strip(), out


def _list_json(dep, capsys) -> list[dict]:
    code, out = dep.cli(capsys, "hold", "list", "--json")
    assert code == 0, out
    return json.loads(out[:out.rindex("]") + 1])


def _audit_details(dep, action: str) -> list[str]:
    conn = open_catalog(dep.config.catalog.path)
    try:
        return [str(d) for (d,) in conn.execute("SELECT detail FROM audit_log WHERE action = ?", (action,))]
    finally:
        conn.close()


def _seal_under_a_lost_key(dep, hold_id: str) -> None:
    """The hold's query sealed again under a catalog key this deployment no longer has (a key
    retired too early, a restore without its key), through the legitimate writer: the row and its
    ``hold_rekeyed`` entry in one transaction, so the ledger agrees with the row."""
    lost = NumberProtection(NumberCipher(lambda kid: b"\x07" * 32, "klost"), BlindIndex(os.urandom(32)))
    token = query_hold_rows.seal_text(lost, hold_id, json.dumps({"queue": "sales"}))
    conn = open_catalog(dep.config.catalog.path)
    try:
        with Tx(conn):
            conn.execute("UPDATE holds SET value = ? WHERE hold_id = ?", (token, hold_id))
            note_rekeyed(conn, hold_id, token, "", NOW)
    finally:
        conn.close()


def test_hold_add_and_hold_list_show_the_agent_dial_string_masked(dep, capsys):
    hold_id, out = _add(dep, capsys, {"agent": DIAL, "did": "+4930123456789", "queue": "sales"})
    assert CALLER not in out and MASKED_DIAL in out and "4930123456789" not in out
    listed = _list_json(dep, capsys)
    assert [h["hold_id"] for h in listed] == [hold_id] and listed[0]["unreadable"] is False
    assert json.loads(listed[0]["value"]) == {"agent": MASKED_DIAL, "did": "+493******6789", "queue": "sales"}
    code, out = dep.cli(capsys, "hold", "list")
    assert code == 0 and CALLER not in out and hold_id in out and "UNREADABLE" not in out
    added = _audit_details(dep, "hold.add")  # the audit row keeps the shown form, as the API's does
    assert len(added) == 1 and MASKED_DIAL in added[0] and CALLER not in added[0]


def test_displayed_masks_every_free_field_and_keeps_blind_indexes_inside():
    index = BlindIndex(os.urandom(32))
    q = query_hold_rows.protect_numbers({"agent": f"SIP/{CALLER}-00000001", "number": "5678",
                                         "tag": f"complaint {CALLER}", "start": NOW - 9}, index)
    shown = query_hold_rows.displayed({"hold_id": "H-1", "scope": "query", "value": json.dumps(q),
                                       "value4": "", "reason": f"called from {CALLER}"})
    text = json.dumps(shown)
    assert CALLER not in text and shown["unreadable"] is False
    value = json.loads(shown["value"])
    assert value["number"] == "<last4 index>" and value["start"] == NOW - 9
    assert value["agent"].startswith("SIP/491") and value["tag"].startswith("complaint 491")
    assert shown["reason"] == "called from 491******5678"
    caller = query_hold_rows.displayed({"hold_id": "H-2", "scope": "caller", "value": "bi1|bi2",
                                        "value4": "bi4", "reason": "r"})
    assert caller["value"] == "" and caller["value4"] == "" and caller["unreadable"] is False
    odd = query_hold_rows.displayed({"hold_id": "H-3", "scope": "query", "value": "garbage", "reason": "r"})
    assert odd["unreadable"] is True and odd["value"] == query_hold_rows.UNREADABLE


def test_an_unreadable_hold_is_marked_in_list_reasons_and_verify(dep, capsys):
    dep.call("n1_1.1", agent="bob", queue="support")  # a call the hold's query does not name
    rid = dep.record("n1_1.1")
    assert dep.cli(capsys, "retention", "set-class", "n1_1.1", "standard")[0] == 0  # (a class with an end)
    hold_id, _ = _add(dep, capsys, {"agent": DIAL})
    _seal_under_a_lost_key(dep, hold_id)
    code, out = dep.cli(capsys, "hold", "list")
    assert code == 0 and hold_id in out and "UNREADABLE: holds everything" in out
    listed = _list_json(dep, capsys)
    assert listed[0]["unreadable"] is True and listed[0]["value"] == "UNREADABLE: holds everything"
    code, out = dep.cli(capsys, "verify")  # the ledger agrees with the row: a note, no mismatch
    assert code == 0, out
    assert f"legal hold {hold_id} UNREADABLE: holds everything" in out and "MISMATCH" not in out
    code, out = dep.cli(capsys, "retention", "report", "--json", "--at", str(NOW + 1e10))
    refused = [d for d in json.loads(out[:out.rindex("]") + 1]) if d["recording_id"] == rid]
    assert refused and refused[0]["action"] == "refuse"
    assert refused[0]["reason"] == f"legal hold: {hold_id} (FCA inquiry (unreadable: holds everything))"
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_1.1")
    receipt = json.loads(out[out.index("{"):])
    assert [(w["recording_id"], w["hold_id"], w["reason"]) for w in receipt["withheld"]] == [
        (rid, hold_id, "FCA inquiry (unreadable: holds everything)")]
    assert dep.catalog.get_recording(rid) is not None
