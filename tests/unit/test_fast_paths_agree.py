"""The write path's faster forms give what the plain forms gave, byte for byte: a manifest's dict
(what is signed), the blind indexes (what searches, holds and erasures look up), a ledger row."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict
from types import MappingProxyType

import pytest

from pbx_recorder.catalog.number_protection import BlindIndex
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.recording import ledger
from pbx_recorder.recording.manifest import Manifest, ManifestFile, canonical_json

KEY = b"h" * 32


def _reference_dict(m: Manifest) -> dict[str, object]:
    data = asdict(m)
    data["pauses"] = [list(p) for p in m.pauses]
    return data


def test_manifest_dict_is_what_asdict_made() -> None:
    m = Manifest(recording_id="r1", call_id="c1", uniqueids=("u1", "u2"), tags=("vip",),
                 files=(ManifestFile("a.wav", 10, "ab" * 32, 3.0), ManifestFile("b.wav", 5, "cd" * 32)),
                 cdr={"src": "+8613912345678", "nested": {"x": [1, 2.5, (3, "4")]}, "n": None},
                 consent={"decision": "granted", "at": 1.5}, pauses=((1.0, 2.0),), flags=("cdr_missing",),
                 processing={"encrypted": True, "key_id": "k"}, recorded_from=1.0, created_at=2.0)
    fast, ref = m.to_dict(), _reference_dict(m)
    assert fast == ref and repr(fast) == repr(ref)  # same values and the same types (tuples stay tuples)
    assert canonical_json(fast) == canonical_json(ref) == m.to_json()  # (encoded from the dataclasses)
    fast["cdr"]["nested"]["x"].append(9)  # a copy, as asdict's: the manifest is not changed
    assert m.cdr["nested"]["x"] == [1, 2.5, (3, "4")]


def test_manifest_dict_with_a_value_of_another_type_fails_as_asdict_did() -> None:
    m = Manifest(recording_id="r1", call_id="c1", cdr=MappingProxyType({"src": "1"}))
    with pytest.raises(TypeError):
        asdict(m)
    with pytest.raises(TypeError):
        m.to_dict()
    with pytest.raises(TypeError):
        m.to_json()


@pytest.mark.parametrize("number", ["+86 139-1234-5678", "4001", "", "12", "\u0661\u0662\u0663\u0664\u0665",
                                    "1\u00b2345678"])
def test_blind_indexes_are_the_hmacs_they_always_were(number: str) -> None:
    digits = "".join(ch for ch in number if ch.isdigit())  # the former digits_of, unicode digits included
    index = BlindIndex(KEY)
    full = "hmac-sha256:" + hmac.new(KEY, digits.encode(), hashlib.sha256).hexdigest() if digits else ""
    assert index.full(number) == full
    assert index.full(number) == full and index.full_of_digits(digits) == full  # remembered: the same
    last4_key = index._last4_key
    last4 = (hmac.new(last4_key, digits[-4:].encode(), hashlib.sha256).hexdigest()[:16]
             if len(digits) >= 4 else "")
    assert index.last4(number) == last4


def test_named_numbers_index_each_run_of_five_digits_or_more() -> None:
    numbers = NumberProtection(None, BlindIndex(KEY))  # type: ignore[arg-type]  # the index alone
    cdr = {"src": "13912345678", "dst": "4001", "start": "2026-12-01 10:00:00",
           "answer": "2026-12-01 10:00:09", "end": "2026-12-01 10:04:00",
           "uniqueid": "1764583200.42", "linkedid": "1764583200.41",
           "start_epoch": "1764583200", "billsec": 123456, "clid": '"x" <+86 139 1234 5678>',
           "userfield": "ref 2026-12-01 10"}
    got = numbers.named_numbers("13912345678", cdr)
    # the times, ids and durations are not numbers; any other field is scanned, a date in it too
    runs = {"13912345678", "86 139 1234 5678", "2026-12-01 10"}
    assert got == {BlindIndex(KEY).full(r) for r in runs} and len(got) == 3  # the clid's +86 form is its own
    assert numbers.named_numbers("13912345678", json.dumps(cdr)) == got  # a CDR as stored JSON text


def test_ledger_row_stores_the_payload_it_hashed(tmp_path: object) -> None:
    import sqlite3

    from pbx_recorder.catalog.schema import ensure_schema

    conn = sqlite3.connect(":memory:", isolation_level=None)
    ensure_schema(conn, ":memory:")
    payload = {"b": [1, 2.0, (3,)], "a": "\u4e2d", "n": None, "f": 0.1}
    seq, digest = ledger.append(conn, "stored", "r1", payload, 5.0)
    stored = conn.execute("SELECT payload, prev_hash, hash FROM ledger WHERE seq = ?", (seq,)).fetchone()
    assert stored[0] == canonical_json(json.loads(canonical_json(payload))).decode("utf-8")
    assert stored[1] == ""  # the first row links to the genesis hash (not stored, ledger.append)
    rehashed = ledger.entry_hash(ledger.GENESIS, seq, 5.0, "stored", "r1", json.loads(stored[0]))
    assert stored[2] == digest == rehashed
    assert ledger.verify_chain(conn) == []


@pytest.mark.parametrize("payload", [{}, {"b": [1, 2.0, [3]], "a": "\u4e2d", "n": None, "f": 0.1},
                                     {"sha256": "ab" * 32, "size": 2**40, "x": -0.0, "q": '"<\\>'},
                                     {"nested": {"z": 1, "a": {"k": [True, False]}}, "e": 1e-300}])
@pytest.mark.parametrize(("at", "rid"), [(5.0, "r1"), (1_780_000_000.123456, "call:n1_\u4e2d.0"),
                                         (-0.0, 'a "quoted"\\ id\n\x01'), (1e300, "r\u2028")])
def test_ledger_entry_with_its_payload_text_spliced_is_the_entry_encoded_whole(
        payload: dict[str, object], at: float, rid: str) -> None:
    text = canonical_json(payload)
    assert ledger.entry_bytes_of_text(7, at, "stored", rid, text) == \
        ledger.entry_bytes(7, at, "stored", rid, json.loads(text))
    assert ledger.entry_bytes_of_text(7, at, "stored", rid, text, keyed=True) == \
        ledger.entry_bytes(7, at, "stored", rid, json.loads(text), keyed=True)  # (a keyed row, schema 24)


def test_ledger_entry_refuses_what_canonical_json_refuses() -> None:
    with pytest.raises(ValueError):
        ledger.entry_bytes_of_text(1, float("nan"), "stored", "r1", b"{}")
