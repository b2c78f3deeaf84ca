"""``users seal`` takes the audit log as evidence of what a QA row without a seal held
(``service/qa_evidence.py``); an insider who can write the catalog but not read the key attacks
that evidence (README "Upgrading to schema 23").  Each attack ends with a table whose seals were
blanked (it looks just upgraded) and a forged row that a plain ``users seal`` must not seal.
Every test here but the last two sealed the forgery before the whole chain was verified first."""

from __future__ import annotations

import json

import pytest

from pbx_recorder import audit_trail
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.service import qa_evidence, qa_store
from tests.peers.player_support import put_wav
from tests.peers.qa_support import ANSWERS, add_accounts, listed_reviews, make_card, review_as, seal_all, send
from tests.peers.service_support import NOW, insider_sql


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    add_accounts(seeded_service)
    put_wav(seeded_service, "c-blue-1", "r-blue", 30, 1)
    return seeded_service


def _refused(service, review_id: int, why: str) -> None:  # type: ignore[no-untyped-def]
    """A plain ``users seal`` leaves the review unsealed, naming ``why``; it is not listed."""
    insider_sql(service, "UPDATE qa_reviews SET seal = ''")
    done = seal_all(service)
    differs = [n for n in done.differs.get("qa_reviews", []) if n.split(" ")[0] == str(review_id)]
    assert len(differs) == 1 and why in differs[0], done.differs
    assert review_id not in listed_reviews(service)


def _rewrite_audit(service, row_id: int, **values: object) -> None:  # type: ignore[no-untyped-def]
    """The insider rewrites audit row ``row_id`` self-consistently (its hash recomputed, the next
    row's link patched), as a row before keying could be."""
    conn = open_catalog(service.seeded.db)
    try:
        cols = ("id", "at", "actor", "role", "action", "target", "detail", "prev_hash", "hash", "mac")
        row = dict(zip(cols, conn.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE id = ?",
                                          (row_id,)).fetchone(), strict=True))
        row.update(values)
        detail = row["detail"]
        if isinstance(detail, dict):
            detail = audit_trail.canonical_json(detail).decode()
        digest = audit_trail.entry_hash(row["prev_hash"], row_id, row["at"], row["actor"], row["role"],
                                        row["action"], row["target"], json.loads(detail), bool(row["mac"]))
        with Tx(conn):
            conn.execute("UPDATE audit_log SET action = ?, target = ?, actor = ?, detail = ?, hash = ? "
                         "WHERE id = ?",
                         (row["action"], row["target"], row["actor"], detail, digest, row_id))
            conn.execute("UPDATE audit_log SET prev_hash = ? WHERE id = ?", (digest, row_id + 1))
    finally:
        conn.close()


def _forged_review(service, card: int, reviewer: str, score: float) -> int:  # type: ignore[no-untyped-def]
    """A review of c-blue-1 the insider writes into the catalog (no seal)."""
    conn = open_catalog(service.seeded.db)
    try:
        with Tx(conn):
            return qa_store.add_review(conn, {"call_id": "c-blue-1", "reviewer": reviewer, "agent": "carol",
                                              "scorecard_id": card, "answers": {}, "score": score,
                                              "comments": []}, NOW)
    finally:
        conn.close()


def test_an_audit_row_before_keying_rewritten_into_evidence(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    review_as(service, card)  # (the table holds a genuine review too)
    conn = open_catalog(service.seeded.db)
    try:  # the seeded accounts' audit rows were written before the key was registered: unkeyed
        assert [r[0] for r in conn.execute("SELECT mac FROM audit_log WHERE id IN (1, 2)")] == ["", ""]
    finally:
        conn.close()
    forged = _forged_review(service, card, "qa2", 0.0)
    _rewrite_audit(service, 1, action="qa.review", target="c-blue-1", actor="qa2",
                   detail={"review_id": forged, "scorecard_id": card, "score": 0.0, "answers": {}})
    _refused(service, forged, "the audit log does not verify")


def test_macs_stripped_then_an_audit_row_appended(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    insider_sql(service, "UPDATE audit_log SET mac = ''")
    forged = _forged_review(service, card, "qa1", 100.0)
    conn = open_catalog(service.seeded.db)
    try:
        with Tx(conn):
            last_id, last_hash = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC").fetchone()
            detail = {"review_id": forged, "scorecard_id": card, "score": 100.0, "answers": {},
                      "agent": "carol"}
            digest = audit_trail.entry_hash(last_hash, last_id + 1, NOW, "qa1", "qa", "qa.review", "c-blue-1",
                                            detail)
            conn.execute("INSERT INTO audit_log (id, at, actor, role, action, target, detail, prev_hash, "
                         "hash, mac) VALUES (?, ?, 'qa1', 'qa', 'qa.review', 'c-blue-1', ?, ?, ?, '')",
                         (last_id + 1, NOW, audit_trail.canonical_json(detail).decode(), last_hash, digest))
    finally:
        conn.close()
    _refused(service, forged, "the audit log does not verify")


def test_the_newest_edit_hidden_rolls_nothing_back(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    review_id = review_as(service, card)
    qa, csrf = service.login("qa1")
    edited = send(qa, csrf, "PUT", f"/api/qa/reviews/{review_id}", {"answers": {**ANSWERS, "empathy": 1}})
    assert edited.status_code == 200, edited.text
    insider_sql(service, "UPDATE audit_log SET action = 'qa.review.edix' WHERE action = 'qa.review.edit'")
    insider_sql(service, "UPDATE qa_reviews SET score = 87.5, answers = ? WHERE id = ?",
                ('{"empathy": 3, "greeting": true}', review_id))
    _refused(service, review_id, "the audit log does not verify")


def test_the_agent_moved_with_the_calls_agent(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    review_id = review_as(service, card)
    insider_sql(service, "UPDATE calls SET agent = 'alice' WHERE call_id = 'c-blue-1'")
    insider_sql(service, "UPDATE qa_reviews SET agent = 'alice' WHERE id = ?", (review_id,))
    _refused(service, review_id, "its agent is not the audit row's")


def test_the_dates_moved(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    review_id = review_as(service, card)
    insider_sql(service, "UPDATE qa_reviews SET created_at = created_at - 400 * 86400, "
                "updated_at = updated_at - 400 * 86400 WHERE id = ?", (review_id,))
    _refused(service, review_id, "its times are not its audit rows'")


def test_a_review_from_before_schema_23_whose_call_is_gone(service) -> None:  # type: ignore[no-untyped-def]
    """Its ``qa.review`` audit row (as written before schema 23) names no agent, and the call row
    its agent would be checked against is gone (erased): not sealed by default."""
    card = make_card(service)
    conn = open_catalog(service.seeded.db)
    try:
        with Tx(conn):
            old = qa_store.add_review(conn, {"call_id": "c-gone", "reviewer": "qa1", "agent": "carol",
                                             "scorecard_id": card, "answers": ANSWERS, "score": 87.5,
                                             "comments": []}, NOW)
            audit_trail.record(conn, actor="qa1", role="qa", action="qa.review", target="c-gone", now=NOW,
                               detail={"review_id": old, "scorecard_id": card, "score": 87.5,
                                       "answers": ANSWERS})
    finally:
        conn.close()
    insider_sql(service, "UPDATE qa_reviews SET seal = ''")
    done = seal_all(service)
    assert [n for n in done.differs["qa_reviews"] if n.startswith(f"{old} ")][0].endswith(
        "its call is gone and no audit row names its agent")


def test_a_value_no_writer_makes_is_a_problem_never_an_error(service) -> None:  # type: ignore[no-untyped-def]
    """Given a chain that verified, an audit row or a review the checks cannot read or compare (a
    400-digit id, a clock that is no number) is reported, never raised."""
    card = make_card(service)
    review_id = review_as(service, card)
    conn = open_catalog(service.seeded.db)
    try:
        cols = ", ".join((*qa_store.REVIEW_FIELDS, "seal"))
        row = dict(zip((*qa_store.REVIEW_FIELDS, "seal"),
                       conn.execute(f"SELECT {cols} FROM qa_reviews WHERE id = ?", (review_id,)).fetchone(),
                       strict=True))
        trusted = qa_evidence.gather(conn)
        assert trusted.chain_problem is None
        assert qa_evidence.review_problem(conn, row, trusted) is None  # as written
        nested = "[" * 200_000 + "]" * 200_000  # (json.loads: RecursionError)
        for broken in ({"created_at": "x"}, {"score": "1e999999"}, {"answers": "{"}, {"id": 10 ** 400},
                       {"answers": nested}):
            problem = qa_evidence.review_problem(conn, {**row, **broken}, trusted)
            assert problem, broken
    finally:
        conn.close()


def test_a_row_before_the_chain_is_no_evidence(service) -> None:  # type: ignore[no-untyped-def]
    """A row with no hash counts as written before the audit chain existed (a note): it vouches for
    nothing; at an id below the first it is outside the chain altogether."""
    card = make_card(service)
    forged = _forged_review(service, card, "qa2", 0.0)
    detail = {"review_id": forged, "scorecard_id": card, "score": 0.0, "answers": {}, "agent": "carol"}
    insider_sql(service, "INSERT INTO audit_log (id, at, actor, role, action, target, detail, prev_hash, "
                "hash, mac) VALUES (-1, ?, 'qa2', 'qa', 'qa.review', 'c-blue-1', ?, '', '', '')",
                (NOW, audit_trail.canonical_json(detail).decode()))
    _refused(service, forged, "row outside the chain")
    insider_sql(service, "UPDATE audit_log SET id = (SELECT MAX(id) FROM audit_log) + 1 WHERE id = -1")
    _refused(service, forged, "row outside the chain (not written by the audit writer)")


def test_a_chain_rewritten_without_its_macs_is_no_evidence_without_a_head(service) -> None:  # type: ignore[no-untyped-def]
    """Every MAC stripped and every hash recomputed from genesis as unkeyed, the forged review's
    ``qa.review`` row appended: the chain verifies on its own; with no signed head over that row it
    is no evidence."""
    card = make_card(service)
    forged = _forged_review(service, card, "qa1", 100.0)
    conn = open_catalog(service.seeded.db)
    try:
        with Tx(conn):
            cols = "id, at, actor, role, action, target, detail"
            rows = conn.execute(f"SELECT {cols} FROM audit_log ORDER BY id").fetchall()
            last_id = rows[-1][0]
            detail = {"review_id": forged, "scorecard_id": card, "score": 100.0, "answers": {},
                      "agent": "carol"}
            conn.execute("INSERT INTO audit_log (id, at, actor, role, action, target, detail, prev_hash, "
                         "hash, mac) VALUES (?, ?, 'qa1', 'qa', 'qa.review', 'c-blue-1', ?, '', '', '')",
                         (last_id + 1, NOW, audit_trail.canonical_json(detail).decode()))
            prev = audit_trail.GENESIS
            for row in conn.execute(f"SELECT {cols} FROM audit_log ORDER BY id").fetchall():
                digest = audit_trail.entry_hash(prev, row[0], row[1], row[2], row[3], row[4], row[5],
                                                json.loads(row[6]))
                conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ?, mac = '' WHERE id = ?",
                             (prev, digest, row[0]))
                prev = digest
        assert audit_trail.verify_chain_from(conn)[0] == []  # the rewrite verifies on its own
    finally:
        conn.close()
    _refused(service, forged, "is not keyed and no signed head covers it")


def test_agents_that_mask_alike_are_told_apart_by_the_keyed_digest(service) -> None:  # type: ignore[no-untyped-def]
    """A remote agent's dial string and another's that masks the same (the audit row keeps agents
    masked): the digest the ``qa.review`` row holds since schema 23 tells them apart."""
    card = make_card(service)
    review_id = review_as(service, card)
    conn = open_catalog(service.seeded.db)
    try:
        evidence = qa_evidence.gather(conn)
        mine, other = "Local/4915112345678@agents", "Local/4915100005678@agents"
        assert qa_evidence._as_audited("agent", mine) == qa_evidence._as_audited("agent", other)
        first = {"agent": qa_evidence._as_audited("agent", mine),
                 **{k: v for k, v in qa_evidence.agent_fields(conn, mine).items() if k == "agent_digest"}}
        row = {"id": review_id, "call_id": "c-blue-1", "agent": other}
        assert qa_evidence._agent_problem(conn, {**row, "agent": mine}, first, evidence) is None
        assert qa_evidence._agent_problem(conn, row, first, evidence) == "its agent is not the audit row's"
    finally:
        conn.close()


def test_an_audit_row_below_the_first_id_is_outside_the_chain(service) -> None:  # type: ignore[no-untyped-def]
    """A self-consistent row at id -1 (the full pass streamed ids above 0 only: neither ``audit
    verify`` nor the evidence saw it, and it vouched) breaks the chain; so does a ledger row at a
    position below 1."""
    from pbx_recorder.recording import ledger

    card = make_card(service)
    forged = _forged_review(service, card, "qa2", 0.0)
    detail = {"review_id": forged, "scorecard_id": card, "score": 0.0, "answers": {}, "agent": "carol"}
    digest = audit_trail.entry_hash(audit_trail.GENESIS, -1, NOW, "qa2", "qa", "qa.review", "c-blue-1",
                                    detail)
    insider_sql(service, "INSERT INTO audit_log (id, at, actor, role, action, target, detail, prev_hash, "
                "hash, mac) VALUES (-1, ?, 'qa2', 'qa', 'qa.review', 'c-blue-1', ?, ?, ?, '')",
                (NOW, audit_trail.canonical_json(detail).decode(), audit_trail.GENESIS, digest))
    conn = open_catalog(service.seeded.db)
    try:
        assert [p.id for p in audit_trail.verify_chain(conn)[0]] == [-1]
        last_id, last_hash = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC").fetchone()
        incremental = audit_trail.verify_chain_from(conn, last_id, last_hash)[0]  # (the console's pass)
        assert [p.id for p in incremental] == [-1]
        insider_sql(service, "INSERT INTO ledger (seq, at, event, recording_id, payload, prev_hash, hash) "
                    "VALUES (0, ?, 'stored', 'r-x', '{}', '', '')", (NOW,))
        assert "row outside the chain" in str(ledger.verify_chain_from(conn)[0][0])
        seq, head = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC").fetchone()
        assert "row outside the chain" in str(ledger.verify_chain_from(conn, seq, head)[0][0])
    finally:
        conn.close()
    _refused(service, forged, "row outside the chain")


def test_what_changes_while_users_seal_runs_is_left(service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL an insider's statements do not wait for the catalog's lock: a review changed
    after the survey listed it, and an audit row rewritten after the pass verified it, are left
    (the race is played here in the gaps ``users seal`` leaves)."""
    from pbx_recorder.service import access_rows

    card = make_card(service)
    changed = review_as(service, card)
    later = review_as(service, card, call="c-red-1", user="root-admin")
    insider_sql(service, "UPDATE qa_reviews SET seal = ''")
    surveyed = access_rows.survey

    def survey_then_change(conn, seal, evidence=None):  # type: ignore[no-untyped-def]
        report = surveyed(conn, seal, evidence)
        conn.execute("UPDATE qa_reviews SET score = 100 WHERE id = ?", (changed,))  # (the insider)
        return report

    def gather_then_rewrite(conn):  # type: ignore[no-untyped-def]
        evidence = qa_evidence.gather(conn)
        row = conn.execute("SELECT id, at, actor, role, action, target, detail, prev_hash, mac "
                           "FROM audit_log WHERE action = 'qa.review' AND target = 'c-red-1'").fetchone()
        detail = {**json.loads(row[6]), "score": 0.0}
        digest = audit_trail.entry_hash(row[7], row[0], row[1], row[2], row[3], row[4], row[5], detail, True)
        conn.execute("UPDATE audit_log SET detail = ?, hash = ? WHERE id = ?",
                     (audit_trail.canonical_json(detail).decode(), digest, row[0]))
        conn.execute("UPDATE qa_reviews SET score = 0 WHERE id = ?", (later,))
        return evidence

    monkeypatch.setattr(access_rows, "survey", survey_then_change)
    conn = open_catalog(service.seeded.db)
    try:
        done = access_rows.seal_rows(conn, service.ctx.access_seal, include_broken=False, actor="root",
                                     role="host-admin", now=NOW, evidence=gather_then_rewrite)
    finally:
        conn.close()
    assert [n.split(" ")[0] for n in done.moved["qa_reviews"]] == [str(changed)]
    assert [n for n in done.differs["qa_reviews"] if n.startswith(f"{later} ")][0].endswith(
        "is not the row the audit log's check verified")
    assert done.sealed.get("qa_reviews", 0) == 0
