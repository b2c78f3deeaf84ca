"""Numbers in the catalog: AES-256-GCM tokens under a key-ring key, keyed blind indexes."""

import os
import sqlite3

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher, token_key_id
from pbx_recorder.catalog.protected_rows import NumberProtection, call_ids_clause
from pbx_recorder.errors import CatalogError, CryptoError
from pbx_recorder.lifecycle.policy import number_hash
from pbx_recorder.recording import manifest_copy
from tests.unit.catalog_plan_support import range_sorts

HASH_KEY = b"k" * 32
RING = {"m1": os.urandom(32), "m2": os.urandom(32)}
NOW = 1_800_000_000.0
NUMBER = "4915112345678"


def lookup(ring):
    def get(key_id):
        if key_id not in ring:
            raise CryptoError(f"master key {key_id!r} not found in the test ring")
        return ring[key_id]
    return get


def protection(current="m1", ring=RING):
    return NumberProtection(NumberCipher(lookup(ring), current), BlindIndex(HASH_KEY))


def test_round_trip_names_the_key_and_binds_the_row():
    cipher = NumberCipher(lookup(RING), "m1")
    token = cipher.encrypt(NUMBER, "calls/c1")
    assert token.startswith("pn1:m1:") and token_key_id(token) == "m1" and NUMBER not in token
    assert cipher.decrypt(token, "calls/c1") == NUMBER
    assert cipher.encrypt(NUMBER, "calls/c1") != token  # a fresh nonce each time
    with pytest.raises(CryptoError, match="altered or moved from another row"):
        cipher.decrypt(token, "calls/c2")  # copied onto another call


def test_tamper_is_a_clear_error():
    cipher = NumberCipher(lookup(RING), "m1")
    token = cipher.encrypt(NUMBER, "calls/c1")
    head, body = token.rsplit(":", 1)
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(CryptoError, match="failed authentication under catalog key 'm1'"):
        cipher.decrypt(f"{head}:{flipped}", "calls/c1")
    with pytest.raises(CryptoError, match="not an encrypted number token"):
        cipher.decrypt("4915112345678", "calls/c1")


def test_wrong_or_missing_key_names_the_key_id():
    token = NumberCipher(lookup(RING), "m1").encrypt(NUMBER, "calls/c1")
    swapped = NumberCipher(lookup({"m1": os.urandom(32)}), "m1")  # another file under the same id
    with pytest.raises(CryptoError, match="catalog key 'm1' is not the key"):
        swapped.decrypt(token, "calls/c1")
    with pytest.raises(CryptoError, match="'m1' not found"):
        NumberCipher(lookup({"m2": RING["m2"]}), "m2").decrypt(token, "calls/c1")


def test_indexes_use_digits_and_separate_keys():
    index = BlindIndex(HASH_KEY)
    assert index.full("+49 151 12345678") == index.full(NUMBER) == number_hash(HASH_KEY, NUMBER)
    assert index.last4(NUMBER) == index.last4("5678") and len(index.last4(NUMBER)) == 16
    assert index.last4(NUMBER) not in index.full("5678")  # a different key per purpose
    assert BlindIndex(b"x" * 32).full(NUMBER) != index.full(NUMBER)
    assert index.full("") == "" and index.last4("12") == ""
    with pytest.raises(CryptoError, match="shorter than 16"):
        BlindIndex(b"short")


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "cat.db", clock=lambda: NOW, numbers=protection())
    c.upsert_call(dict(call_id="c1", caller_num=NUMBER, caller_name=NUMBER, callee_num="4930123456",
                       started_at=NOW - 60, status="answered",
                       cdr={"src": NUMBER, "clid": f'"{NUMBER}" <{NUMBER}>',
                            "lastdata": "PJSIP/4930999999@t"}))
    c.upsert_call(dict(call_id="c2", caller_num="+8613900005678", callee_num="200", started_at=NOW - 30))
    c.upsert_call(dict(call_id="c3", caller_num="200", callee_num=NUMBER, started_at=NOW - 10))
    yield c
    c.close()


def raw(cat, sql, *params):
    return cat._conn().execute(sql, params).fetchall()


def test_repository_encrypts_on_write_and_opens_on_read(cat):
    stored = dict(raw(cat, "SELECT * FROM calls WHERE call_id='c1'")[0])
    assert stored["caller_num"] == stored["callee_num"] == stored["caller_name"] == ""
    assert stored["cdr"] == "{}" and stored["numbers"].startswith("pn1:m1:")
    assert NUMBER not in str(stored.values()) and "2345678" not in str(list(stored.values()))
    row = cat.get_call("c1")
    assert row["caller_num"] == NUMBER and row["callee_num"] == "4930123456"
    assert row["cdr"]["clid"] == f'"{NUMBER}" <{NUMBER}>' and row["caller_name"] == NUMBER
    cat.upsert_call(dict(call_id="c1", status="busy", started_at=NOW - 60))  # a partial update keeps them
    assert cat.get_call("c1")["caller_num"] == NUMBER and cat.get_call("c1")["status"] == "busy"
    cat.upsert_call(dict(call_id="c1", callee_num="4930111111", started_at=NOW - 60))
    assert cat.get_call("c1")["caller_num"] == NUMBER and cat.get_call("c1")["callee_num"] == "4930111111"


def test_search_by_full_number_and_last_four(cat):
    def found(**kw):
        return [r["call_id"] for r in cat.search(CallFilters(**kw), now=NOW)]

    assert found(caller=NUMBER) == ["c1"] and found(caller="+" + NUMBER) == ["c1"]
    assert found(caller="5678") == ["c2", "c1"]  # newest first
    assert found(callee="5678") == ["c3"] and found(callee=NUMBER) == ["c3"]
    assert found(caller="99999999") == [] and cat.search(CallFilters(caller="5678"), now=NOW)[0]["caller_num"]
    with pytest.raises(CatalogError, match="last 4 digits or the full number"):
        found(caller="678")


def test_tampered_row_fails_loudly(cat):
    token = raw(cat, "SELECT numbers FROM calls WHERE call_id='c2'")[0][0]
    cat._conn().execute("UPDATE calls SET numbers=? WHERE call_id='c1'", (token,))  # c2's numbers on c1
    with pytest.raises(CryptoError, match="calls/c1"):
        cat.get_call("c1")


def plan(cat, sql, params):
    return " ".join(r[3] for r in raw(cat, "EXPLAIN QUERY PLAN " + sql, *params))


@pytest.mark.parametrize("kw,index", [({"caller": NUMBER}, "calls_caller_number "),
                                      ({"caller": "5678"}, "calls_caller_number "),
                                      ({"callee": NUMBER}, "calls_callee_number "),
                                      ({"callee": "5678"}, "calls_callee_number ")])
@pytest.mark.sqlite_only  # SQLite query plans / raw sqlite3 rows
def test_plans_use_the_blind_index_and_its_order(cat, kw, index):
    from pbx_recorder.catalog.queries import build_search

    sql, params = build_search(CallFilters(**kw), NOW, blind=cat.numbers.index)
    text = plan(cat, sql, params)
    lines = [str(r[3]) for r in cat._conn().execute("EXPLAIN QUERY PLAN " + sql, params)]
    # the settled and the fresh part (schema 25), each sorted as a page at most, never as a range
    assert f"INDEX {index}" in text + " " and range_sorts(lines) == [], text


@pytest.mark.sqlite_only  # SQLite query plans / raw sqlite3 rows
def test_lookup_clause_for_erasure_and_holds(cat):
    params: list = []
    clause = call_ids_clause(cat.numbers.index, NUMBER, params)
    rows = raw(cat, f"SELECT call_id FROM calls WHERE {clause} ORDER BY call_id", *params)
    assert [r[0] for r in rows] == ["c1", "c3"]
    text = plan(cat, f"SELECT call_id FROM calls WHERE {clause}", params)
    assert "calls_caller_number" in text and "calls_callee_number" in text and "SCAN" not in text, text
    named = {r[0] for r in raw(cat, "SELECT call_id FROM call_numbers WHERE bi=?", cat.numbers.index.full(
        "4930999999"))}
    assert named == {"c1"}  # a number only the CDR names (a transfer target) is indexed too


def test_live_calls_and_manifests_are_sealed(cat):
    cat.save_live_call("c9", {"caller_num": NUMBER})
    assert NUMBER not in raw(cat, "SELECT state FROM live_calls")[0][0]
    assert cat.load_live_calls() == {"c9": {"caller_num": NUMBER}}
    manifest = {"recording_id": "r1", "call_id": "c1", "cdr": {"src": NUMBER}, "callee_num": "4930123456",
                "files": [{"sha256": "ab"}], "processing": {"encrypted": False}}
    cat.upsert_recording({"recording_id": "r1", "call_id": "c1", "manifest": manifest})
    stored = raw(cat, "SELECT manifest FROM recordings")[0][0]
    assert NUMBER not in stored and '"files"' in stored and '"processing"' in stored
    # schema 11: the catalog keeps what display reads (the signed manifest is stored beside the audio)
    assert cat.get_recording("r1")["manifest"] == manifest_copy.catalog_copy(manifest)[0]
    assert cat.get_recording("r1")["manifest_sha256"] == manifest_copy.signed_sha256(manifest)
    # and indexes every number it names, for erasure
    assert raw(cat, "SELECT call_id FROM call_numbers WHERE call_id = 'c1'")
    cat.upsert_recording({"recording_id": "r2", "call_id": "c1", "manifest": {"cdr": {"src": NUMBER}}})
    assert NUMBER not in raw(cat, "SELECT manifest FROM recordings WHERE recording_id = 'r2'")[0][0]
    # not a signed manifest (no recording id): sealed as before
    assert cat.get_recording("r2")["manifest"] == {"cdr": {"src": NUMBER}}


@pytest.mark.sqlite_only  # SQLite query plans / raw sqlite3 rows
def test_rotation_reads_old_tokens_and_writes_new(tmp_path):
    path = tmp_path / "cat.db"
    old = Catalog(path, numbers=protection("m1"))
    old.upsert_call(dict(call_id="c1", caller_num=NUMBER, started_at=NOW))
    old.close()
    new = Catalog(path, numbers=protection("m2"))
    assert new.get_call("c1")["caller_num"] == NUMBER
    new.upsert_call(dict(call_id="c1", caller_num=NUMBER, started_at=NOW))
    token = sqlite3.connect(path).execute("SELECT numbers FROM calls").fetchone()[0]
    assert token_key_id(token) == "m2"
