"""Compliance review, finding 1: a number inside a channel name or a dial string was not indexed.

``SIP/<subject>-00000001``, ``SIP/<subject>/30`` or ``<subject> 12345`` in a call's CDR was indexed
as one glued run (``<subject>00000001``), so ``erase --caller <subject>`` matched no call, reported
``done``, and the call's sealed numbers still opened to the subject's number.  The finder now
names the number itself too (``protected_rows.named_digits``), the late-copy guard matches every
number the catalog indexes (``policy.numbers_in``), and ``catalog migrate`` gives calls written
the old way the index rows they lack (``catalog.named_numbers_pass``).  Both engines."""

from __future__ import annotations

import json

import pytest
from tamper_support import calls_naming, indexing_deployment

from pbx_recorder.catalog import named_numbers_pass
from pbx_recorder.catalog.protected_rows import named_digits
from pbx_recorder.errors import CryptoError
from pbx_recorder.lifecycle import policy
from pbx_recorder.lifecycle.journal import open_catalog

SUBJECT = "4915199999999"
OTHER = "4917000000001"
FORMS = {"dstchannel": f"SIP/{SUBJECT}-00000001", "userfield": f"{SUBJECT} 12345",
         "lastdata": f"SIP/{SUBJECT}/30"}


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    yield d
    d.close()


def _rows_of(d, call_id: str) -> dict[str, int]:
    conn = open_catalog(d.config.catalog.path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t} WHERE call_id = ?", (call_id,)).fetchone()[0]
                for t in ("calls", "recordings", "call_numbers", "call_extra_numbers")}
    finally:
        conn.close()


@pytest.mark.parametrize("field", sorted(FORMS))
def test_named_digits_name_the_number_inside_a_channel_or_dial_string(field):
    found = named_digits({field: FORMS[field]})
    assert SUBJECT in found
    # what late copies are matched by holds every number the catalog indexes a call by
    assert {v for d in found for v in policy.number_variants(d)} <= policy.numbers_in({field: FORMS[field]})


def test_named_digits_do_not_glue_a_number_to_the_escape_of_a_cjk_character_before_it():
    cdr = {"userfield": f"客户{SUBJECT}投诉", "start": "2026-12-01 10:00:00", "billsec": 123456}
    assert named_digits(cdr) == {SUBJECT}  # (times and durations are still left out)
    assert SUBJECT in policy.numbers_in(cdr)


@pytest.mark.parametrize("field", sorted(FORMS))
def test_erase_by_caller_finds_a_call_whose_cdr_names_the_subject_in_a_channel(dep, capsys, field):
    dep.call("n1_3.3", caller=OTHER, cdr=json.dumps({"src": OTHER, field: FORMS[field]}))
    dep.record("n1_3.3")
    dep.call("n1_4.4", caller=OTHER, cdr=json.dumps({"src": OTHER, "dstchannel": "SIP/4930123456-00000002"}))
    assert calls_naming(dep, SUBJECT) == {"n1_3.3"}
    code, out = dep.cli(capsys, "erase", "--caller", SUBJECT)
    assert code == 0, out
    receipt = json.loads(out[out.index("{"):])
    assert receipt["status"] == "done" and receipt["calls_matched"] == 1
    assert set(_rows_of(dep, "n1_3.3").values()) == {0}  # no call, recording or index row is left
    assert _rows_of(dep, "n1_4.4")["calls"] == 1  # another number's call stays
    code, out = dep.cli(capsys, "calls", "show", "n1_3.3", "--unmask")
    assert code != 0 and SUBJECT not in out


@pytest.mark.sqlite_only  # reads the SQLite file's bytes
def test_after_the_erasure_no_file_holds_the_number(dep, capsys, tmp_path):
    dep.call("n1_3.3", caller=OTHER, cdr=json.dumps({"src": OTHER, **FORMS}))
    dep.record("n1_3.3")
    code, out = dep.cli(capsys, "erase", "--caller", SUBJECT)
    receipt = json.loads(out[out.index("{"):])
    assert code == 0 and receipt["status"] == "done" and receipt["calls_matched"] == 1
    dep.close()
    leaks = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
             if p.is_file() and SUBJECT.encode() in p.read_bytes()]
    assert leaks == []


def _written_the_old_way(d) -> None:
    """What a catalog written before the fix holds: no index row for the number in the channel."""
    d.call("n1_3.3", caller=OTHER, cdr=json.dumps({"src": OTHER, **FORMS}))
    d.record("n1_3.3")
    d.call("n1_5.5", caller=OTHER, cdr=json.dumps({"dstchannel": f"SIP/{SUBJECT}-0000000a"}))
    d.call("n1_6.6", caller="4917000000002")
    bi = d.catalog.numbers.index.full(SUBJECT)
    d.sql(f"DELETE FROM call_numbers WHERE bi = '{bi}'")


def test_catalog_migrate_indexes_the_numbers_older_versions_left_out_once(dep, capsys):
    _written_the_old_way(dep)
    assert calls_naming(dep, SUBJECT) == set()  # what an erasure found before the fix
    code, out = dep.cli(capsys, "verify")
    assert "no index row" in out  # verify names the calls an erasure would miss
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    assert "re-derived the numbers of 3 calls: 2 calls got 2 index rows they lacked" in out
    assert calls_naming(dep, SUBJECT) == {"n1_3.3", "n1_5.5"}
    conn = open_catalog(dep.config.catalog.path)
    assert not named_numbers_pass.pending(conn)
    conn.close()
    code, out = dep.cli(capsys, "catalog", "migrate")  # done: not walked again
    assert code == 0 and "re-derived" not in out
    code, out = dep.cli(capsys, "erase", "--caller", SUBJECT)
    receipt = json.loads(out[out.index("{"):])
    assert code == 0 and receipt["status"] == "done" and receipt["calls_matched"] == 2


def test_the_pass_resumes_after_a_crash_between_batches(dep):
    _written_the_old_way(dep)
    conn = open_catalog(dep.config.catalog.path)
    try:
        def crash(what: str, n: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            named_numbers_pass.run(conn, dep.catalog.numbers, batch=1, progress=crash)
        assert named_numbers_pass.load_state(conn)["cursor"] == "n1_3.3"  # the first batch is kept
        report = named_numbers_pass.run(conn, dep.catalog.numbers, batch=1)
        assert report.done and report.calls == 2 and report.indexed == 1  # the other two calls
        assert named_numbers_pass.run(conn, dep.catalog.numbers).skipped
    finally:
        conn.close()
    assert calls_naming(dep, SUBJECT) == {"n1_3.3", "n1_5.5"}


def test_a_call_that_does_not_open_keeps_the_pass_from_being_marked_done(dep, capsys):
    _written_the_old_way(dep)
    conn = open_catalog(dep.config.catalog.path)
    token = conn.execute("SELECT numbers FROM calls WHERE call_id = 'n1_6.6'").fetchone()[0]
    conn.close()
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    dep.sql(f"UPDATE calls SET numbers = '{altered}' WHERE call_id = 'n1_6.6'")
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == CryptoError.exit_code and "not opened: n1_6.6" in out, out
    assert calls_naming(dep, SUBJECT) == {"n1_3.3", "n1_5.5"}  # the others are indexed all the same
    dep.sql(f"UPDATE calls SET numbers = '{token}' WHERE call_id = 'n1_6.6'")
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "re-derived the numbers of 3 calls: 0 calls got 0 index rows" in out, out


def test_the_indexing_deployment_writes_calls_verify_accepts(tmp_path, capsys):
    """The fixture seals as the daemon does (its sealer opens the row's encrypted numbers): a call
    it writes verifies clean, so tests built on it can assert that verify stays clean."""
    d = indexing_deployment(tmp_path)
    d.call("n1_9.9")
    d.record("n1_9.9")
    code, out = d.cli(capsys, "verify")
    assert code == 0, out
