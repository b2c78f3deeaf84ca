"""Saved searches and the numbers they hold, at rest: ``catalog migrate`` seals the queries older
versions kept in clear (``keyword`` typed as a number, an agent's dial string), and ``erase
--caller`` deletes the saved searches naming the subject -- the catalog key they are sealed under
is not the subject's, so crypto-shredding does not reach them.  Both engines."""

from __future__ import annotations

import json

import pytest
from tamper_support import CALLER, NOW, indexing_deployment

from pbx_recorder.catalog import saved_search_rows, stored_filters_pass
from pbx_recorder.catalog.number_protection import is_token
from pbx_recorder.lifecycle.journal import open_catalog

NATIONAL = "0151 1234 5678"  # the subject's number without its country code
OLD = {  # (owner, name) -> a query as the version before stored it: in clear
    ("lead", "kw"): f"keyword={CALLER}&queue=sales",
    ("lead", "agent"): f"agent=Local%2F{CALLER}%40from-internal",
    ("alice", "national"): "keyword=" + NATIONAL.replace(" ", "+"),
    ("alice", "other"): "keyword=4917000000000",
    ("alice", "plain"): "queue=sales&caller=5678",
}


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    d.call("n1_1.1")
    d.record("n1_1.1")
    yield d
    d.close()


def _written_before(d) -> None:
    conn = open_catalog(d.config.catalog.path)
    try:
        conn.execute("BEGIN")
        for (user, name), query in OLD.items():
            conn.execute("INSERT INTO saved_searches (user_name, name, query, created_at) VALUES (?,?,?,?)",
                         (user, name, query, NOW))
        conn.execute("COMMIT")
    finally:
        conn.close()


def _stored(d) -> dict[tuple[str, str], str]:
    conn = open_catalog(d.config.catalog.path)
    try:
        return {(str(r[0]), str(r[1])): str(r[2])
                for r in conn.execute("SELECT user_name, name, query FROM saved_searches")}
    finally:
        conn.close()


def _opened(d) -> dict[tuple[str, str], str]:
    return {k: saved_search_rows.opened(d.catalog.numbers, k[0], k[1], v) for k, v in _stored(d).items()}


def test_catalog_migrate_seals_the_saved_searches_kept_in_clear_once(dep, capsys):
    _written_before(dep)
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    assert "saved searches sealed 5 of 5" in out, out
    stored = _stored(dep)
    assert all(is_token(v) for v in stored.values()) and CALLER not in "".join(stored.values())
    assert _opened(dep) == OLD  # each runs as before
    code, out = dep.cli(capsys, "catalog", "migrate", "--force")  # walked again: nothing changes
    assert code == 0 and "saved searches sealed 0 of 5" in out, out
    assert _stored(dep) == stored


def test_the_sealing_resumes_after_a_stop_and_is_not_pending_once_done(dep):
    _written_before(dep)
    conn = open_catalog(dep.config.catalog.path)
    try:
        stored_filters_pass.run(conn)  # without the keys: the masking only, the saved searches wait
        assert stored_filters_pass.pending(conn, dep.catalog.numbers)
        assert not stored_filters_pass.pending(conn)
        report = stored_filters_pass.run(conn, batch=2, numbers=dep.catalog.numbers)
        assert report.read["saved_searches"] == 5 and report.masked["saved_searches"] == 5
        assert not stored_filters_pass.pending(conn, dep.catalog.numbers)
    finally:
        conn.close()
    assert _opened(dep) == OLD


def test_erase_by_caller_deletes_the_saved_searches_naming_the_subject(dep, capsys):
    _written_before(dep)
    assert dep.cli(capsys, "catalog", "migrate")[0] == 0  # sealed, as a new version writes them
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["status"] == "done" and receipt["saved_searches_deleted"] == 3
    assert _opened(dep) == {k: v for k, v in OLD.items() if k in (("alice", "other"), ("alice", "plain"))}


def test_erase_reaches_a_saved_search_still_in_clear(dep, capsys):
    _written_before(dep)  # catalog migrate not run yet
    code, out = dep.cli(capsys, "erase", "--caller", "+" + CALLER)
    assert code == 0, out
    assert json.loads(out)["saved_searches_deleted"] == 3
    assert set(_stored(dep)) == {("alice", "other"), ("alice", "plain")}


@pytest.mark.parametrize(("query", "named"), [
    (f"keyword={CALLER}", True), (f"agent=SIP%2F{CALLER}-00000001", True), ("keyword=015112345678", True),
    ("keyword=%2B49+151+1234+5678", True), ("keyword=12345678", True), ("keyword=5678", False),
    ("keyword=4917000000000", False), ("caller=5678&queue=sales", False), ("keyword=45678", False),
])
def test_names_number(query, named):
    assert saved_search_rows.names_number(query, CALLER) is named
