"""Compliance review, finding 3: the free-text scrub of audit rows (and log lines) missed common
ways of writing a number: after a CJK character or a letter, after a dot, in groups without a
``+``.  They reached ``audit_log`` (a hold's reason) in clear.  Ids, dates, times, addresses and
hashes stay readable."""

from __future__ import annotations

import json

import pytest
from tamper_support import Deployment

from pbx_recorder.audit_trail import scrub
from pbx_recorder.core.masking import mask_number, mask_text
from pbx_recorder.lifecycle.journal import open_catalog

SUBJECT = "13800138000"


@pytest.mark.parametrize("text", [
    f"客户{SUBJECT}投诉",
    f"Tel.{SUBJECT}",
    "138-0013-8000",
    "138.0013.8000",
    "138/0013/8000",
    "Rückruf unter 0151 1234 5678 bitte",
    f"ref{SUBJECT}x",
    "call 0151-12345678 back",
])
def test_a_number_in_free_text_is_masked_however_it_is_written(text):
    digits = "".join(ch for ch in text if ch.isdigit())
    for out in (mask_text(text), scrub(text), scrub({"reason": text})["reason"]):
        assert digits not in "".join(ch for ch in out if ch.isdigit())  # the number is gone
        assert mask_number(digits) in out  # masked as a number is everywhere


def test_the_hold_reason_of_the_review_is_masked_in_every_part():
    reason = f"客户{SUBJECT}投诉 / Tel.{SUBJECT} / 138-0013-8000"
    assert mask_text(reason) == "客户138****8000投诉 / Tel.138****8000 / 138****8000"


@pytest.mark.parametrize("text", [
    "call pbx1_1732200000.42 at 1732200000.5 ext 1001, 4500 bytes",
    "at 2026-12-01 15:59:47,021 and 2026-12-01T10:00:00Z, due 01.12.2026",
    "ami 10.0.0.1:5038 from 192.168.100.200",
    "on channel PJSIP/mallory-00000002 and Local/1001@from-internal-00000012;1",
    "hold H-123456789abc, request ER-0a1b2c3d4e5f on pbx1_20261201123456-1732200000.42_call001",
    "sha256:" + "0123456789abcdef" * 4,
    "sandbox_5185b026-1f2e-4a3b-9c4d-988012347883",
    # an Asterisk uniqueid with a system name holding digit runs (the test bed's, a real CI case: the
    # audit rows of a pause named another call id than the call's)
    "paused sandbox_20261205155221-sbx17705x682886-1796486059.179 and pbx-a_node123456-1796486059.1",
    "took 12 s, 3 of 40 calls, v1.2.3, retry +5 s",
    "客户投诉 12 次",
])
def test_ids_dates_times_addresses_and_short_numbers_stay_readable(text):
    assert mask_text(text) == text
    assert scrub({"note": text}) == {"note": text}


def test_a_channel_keeps_its_suffix_while_its_number_is_masked():
    assert mask_text(f"hangup on SIP/{SUBJECT}-00000009") == "hangup on SIP/138****8000-00000009"


def test_hold_add_writes_the_reason_masked_into_the_audit_log(tmp_path, capsys):
    dep = Deployment(tmp_path)
    dep.call("n1_1.1", caller=SUBJECT)
    dep.record("n1_1.1")
    dep.close()
    code, out = dep.cli(capsys, "hold", "add", "--call", "n1_1.1", "--reason",
                        f"客户{SUBJECT}投诉 / Tel.{SUBJECT} / 138-0013-8000 / 0151 1234 5678")
    assert code == 0, out
    conn = open_catalog(tmp_path / "cat.db")
    try:
        sql = "SELECT detail FROM audit_log WHERE action = 'hold.add'"
        details = [json.loads(d) for (d,) in conn.execute(sql)]
    finally:
        conn.close()
    assert len(details) == 1
    text = json.dumps(details[0], ensure_ascii=False)
    assert SUBJECT not in text and "0013" not in text and "1234 5678" not in text
    assert "客户138****8000投诉" in details[0]["reason"]


def test_hold_add_stores_the_reason_masked_in_the_holds_table(tmp_path, capsys):
    # the reason outlives the hold (and an erasure after its release): no number is kept in it
    dep = Deployment(tmp_path)
    dep.call("n1_1.1", caller=SUBJECT)
    dep.record("n1_1.1")
    dep.close()
    code, out = dep.cli(capsys, "hold", "add", "--call", "n1_1.1", "--reason", f"客户{SUBJECT}投诉, case 42")
    assert code == 0, out
    assert SUBJECT not in out
    conn = open_catalog(tmp_path / "cat.db")
    try:
        (reason,) = conn.execute("SELECT reason FROM holds").fetchone()
    finally:
        conn.close()
    assert reason == "客户138****8000投诉, case 42"


@pytest.mark.parametrize("text, number", [
    ("see_0151-1234-5678-1732200000.1", "015112345678"),  # a number in groups, shaped like a call id
    ("note_Kunde.015112345678.bitte-1732200000.1", "015112345678"),
    ("foo_x-4111-1111-1111-1111-1234567890.1", "4111111111111111"),  # a card number
])
def test_a_number_shaped_like_a_call_id_with_a_system_name_is_still_masked(text, number):
    assert number not in "".join(ch for ch in mask_text(text) if ch.isdigit())


def test_a_call_id_with_a_system_name_is_an_audit_target_as_it_is(tmp_path):
    """``calls pause`` / ``resume`` / ``show`` write the call id as the audit row's target: the row
    must be found by that id (``audit_log WHERE target = <call id>``)."""
    call_id = "sandbox_20261205155221-sbx17705x682886-1796486059.179"
    dep = Deployment(tmp_path)
    try:
        dep.catalog.audit("root", "admin", "pause", call_id, {"channels": ["PJSIP/1001-00000001"]})
        rows = dep.catalog._conn().execute("SELECT action FROM audit_log WHERE target = ?",
                                           (call_id,)).fetchall()
        assert [r[0] for r in rows] == ["pause"]
    finally:
        dep.close()
    # a number typed right after it is still masked
    assert mask_text(f"{call_id} caller {SUBJECT}") == f"{call_id} caller {mask_number(SUBJECT)}"
