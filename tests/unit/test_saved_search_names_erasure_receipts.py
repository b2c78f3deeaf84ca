"""What names an erasure's subject outside its calls, and what the receipt says of it:

* a saved search whose *name* holds the subject's number (kept in clear: the row's key) is deleted,
  whatever its sealed query holds; ``catalog migrate`` renames such rows an older version accepted
  to their masked name (audited, the count per owner reported, never the name);
* erasure by ``--call-id`` deletes the saved searches naming the call's numbers too;
* a saved search whose token does not open is counted (``saved_searches_unreadable``) and query
  holds naming the subject are listed (``held_by_query_holds``): the request is ``refused_partial``.

Both engines (the catalog fixtures)."""

from __future__ import annotations

import json
import logging

import pytest
from tamper_support import CALLER, NOW, indexing_deployment

from pbx_recorder.catalog import saved_search_rows, stored_filters_pass
from pbx_recorder.lifecycle.journal import open_catalog


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    d.call("n1_1.1")
    d.record("n1_1.1")
    yield d
    d.close()


def _insert(d, user: str, name: str, query: str, *, seal_as: str | None = None) -> None:
    """A saved search as stored: the query sealed under (user, ``seal_as`` or name)."""
    stored = saved_search_rows.sealed(d.catalog.numbers, user, seal_as or name, query)
    conn = open_catalog(d.config.catalog.path)
    try:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO saved_searches (user_name, name, query, created_at) VALUES (?,?,?,?)",
                     (user, name, stored, NOW))
        conn.execute("COMMIT")
    finally:
        conn.close()


def _rows(d, sql: str) -> list[tuple]:
    conn = open_catalog(d.config.catalog.path)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def _names(d) -> set[tuple[str, str]]:
    return {(str(u), str(n)) for u, n in _rows(d, "SELECT user_name, name FROM saved_searches")}


def test_erase_by_caller_deletes_a_saved_search_whose_name_names_the_subject(dep, capsys):
    _insert(dep, "lead", f"complaint {CALLER}", "queue=sales")
    _insert(dep, "lead", "complaint 0151 1234 5678", "queue=sales")  # the number written nationally
    _insert(dep, "lead", "sales", "queue=sales")
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["saved_searches_deleted"] == 2 and receipt["status"] == "done"
    assert _names(dep) == {("lead", "sales")}


def test_a_name_naming_the_subject_is_deleted_even_when_its_query_does_not_open(dep, capsys):
    _insert(dep, "lead", f"cb {CALLER}", "queue=sales", seal_as="another name")  # the token does not open
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    receipt = json.loads(out)
    assert receipt["saved_searches_deleted"] == 1 and receipt["saved_searches_unreadable"] == 0
    assert _names(dep) == set()


def test_erase_by_call_id_deletes_the_saved_searches_naming_the_calls_numbers(dep, capsys):
    _insert(dep, "lead", "kw", f"keyword={CALLER}")
    _insert(dep, "alice", f"about {CALLER}", "queue=sales")
    _insert(dep, "alice", "other", "keyword=4917000000000")
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_1.1")
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["subject_kind"] == "call_id" and receipt["recordings_erased"] == 1
    assert receipt["saved_searches_deleted"] == 2 and receipt["status"] == "done"
    assert _names(dep) == {("alice", "other")}


def test_an_unreadable_saved_search_makes_the_request_partial_and_is_counted(dep, capsys):
    _insert(dep, "lead", "kw", f"keyword={CALLER}", seal_as="kw2")  # cannot be opened: not checked
    _insert(dep, "lead", "kw3", f"keyword={CALLER}")
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-unread")
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["saved_searches_deleted"] == 1 and receipt["saved_searches_unreadable"] == 1
    assert receipt["status"] == "refused_partial" and receipt["withheld"] == []
    assert _rows(dep, "SELECT status FROM erasure_requests WHERE request_id = 'ER-unread'") == [
        ("refused_partial",)]
    code, out = dep.cli(capsys, "erase", "status")
    assert "ER-unread" in out and "1 saved search(es) could not be opened" in out, out


def test_query_holds_naming_the_subject_are_kept_and_listed_in_the_receipt(dep, capsys):
    for q in ({"agent": f"Local/{CALLER}@from-internal"}, {"caller": CALLER}, {"agent": "bob"}):
        code, out = dep.cli(capsys, "hold", "add", "--query", json.dumps(q), "--reason", "litigation")
        assert code == 0, out
    holds = dict(_rows(dep, "SELECT value, hold_id FROM holds"))
    assert len(holds) == 3
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-held")
    assert code == 0, out
    receipt = json.loads(out)
    others = [h for h in holds.values() if h not in receipt["held_by_query_holds"]]
    assert len(receipt["held_by_query_holds"]) == 2 and len(others) == 1  # not the one by agent bob
    assert receipt["query_holds_unreadable"] == [] and receipt["status"] == "refused_partial"
    assert len(_rows(dep, "SELECT hold_id FROM holds WHERE released_at IS NULL")) == 3  # the hold wins
    code, out = dep.cli(capsys, "erase", "status")
    assert all(f"query hold {h} names the subject" in out for h in receipt["held_by_query_holds"]), out


def test_catalog_migrate_renames_saved_searches_whose_name_holds_a_number(dep, capsys, caplog):
    _insert(dep, "lead", f"complaint {CALLER}", f"keyword={CALLER}")
    _insert(dep, "lead", "complaint 491******5678", "queue=sales")  # the masked name is taken
    _insert(dep, "lead", f"old {CALLER}", "queue=x", seal_as="other")  # does not open: left
    _insert(dep, "alice", "sales", "queue=sales")
    with caplog.at_level(logging.INFO):
        code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    assert "renamed to their masked form: lead 1" in out and "delete them): lead 1" in out, out
    assert CALLER not in out and CALLER not in caplog.text
    assert _names(dep) == {("lead", "complaint 491******5678"), ("lead", "complaint 491******5678 #2"),
                           ("lead", f"old {CALLER}"), ("alice", "sales")}
    stored = dict(_rows(dep, "SELECT name, query FROM saved_searches WHERE user_name = 'lead'"))
    new = "complaint 491******5678 #2"  # its query sealed again under the new name: runs as before
    assert saved_search_rows.opened(dep.catalog.numbers, "lead", new, stored[new]) == f"keyword={CALLER}"
    audited = _rows(dep, "SELECT target, detail FROM audit_log WHERE action = 'searches.rename'")
    assert len(audited) == 1 and audited[0][0] == "lead" and CALLER not in audited[0][1]
    assert json.loads(audited[0][1])["renamed_to"] == new
    conn = open_catalog(dep.config.catalog.path)
    try:
        assert not stored_filters_pass.pending(conn, dep.catalog.numbers)  # once
    finally:
        conn.close()


def test_the_rename_runs_without_number_keys_too(dep):
    conn = open_catalog(dep.config.catalog.path)
    try:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO saved_searches (user_name, name, query, created_at) VALUES (?,?,?,?)",
                     ("lead", f"cb {CALLER}", "queue=sales", NOW))
        conn.execute("COMMIT")
        report = stored_filters_pass.run(conn)
        assert report.renamed == {"lead": 1}
        assert [tuple(r) for r in conn.execute("SELECT name, query FROM saved_searches")] == [
            ("cb 491******5678", "queue=sales")]
    finally:
        conn.close()


@pytest.mark.parametrize(("name", "masked"), [
    (f"complaint {CALLER}", "complaint 491******5678"), ("2026-12-05 sales", "****-**-** sales"),
    ("x 12345", "x *****"), ("sales", "sales"),
])
def test_masked_name_leaves_no_number_run(name, masked):
    assert saved_search_rows.masked_name(name) == masked
    assert not saved_search_rows.name_names_a_number(masked)
    assert not saved_search_rows.name_names_a_number(saved_search_rows.unique_name(masked, [masked]))


def test_a_saved_search_filtering_on_an_erased_call_id_is_deleted_also_on_a_second_run(dep, capsys):
    """A search for the erased call by its id goes with the call (by caller and by call id); run
    again once the call's rows are gone, ``erase --call-id`` still finds it; another call's stays."""
    _insert(dep, "lead", "that call", "call_id=n1_1.1")
    _insert(dep, "lead", "another call", "call_id=n1_9.9")
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    assert json.loads(out)["saved_searches_deleted"] == 1
    assert _names(dep) == {("lead", "another call")}
    _insert(dep, "alice", "again", "call_id=n1_1.1&queue=sales")  # saved after the erasure
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_1.1")
    assert code == 0, out
    assert json.loads(out)["saved_searches_deleted"] == 1
    assert _names(dep) == {("lead", "another call")}


def test_a_held_call_keeps_the_saved_search_filtering_on_it(dep, capsys):
    _insert(dep, "lead", "that call", "call_id=n1_1.1")
    code, out = dep.cli(capsys, "hold", "add", "--call", "n1_1.1", "--reason", "dispute")
    assert code == 0, out
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_1.1")
    assert json.loads(out)["status"] == "refused_partial", out
    assert _names(dep) == {("lead", "that call")}
