"""README "Security": the QA rows that grade people (scorecards and reviews, schema 23) are sealed
like the access rows.  An insider who can write the catalog but cannot read
``web.secret_key_file`` changes a review's score, answers, agent or reviewer, inserts a review, or
changes a scorecard's weights: the row is not listed, not counted in a report (which says how many
it left out), not marked as a done assignment and not edited (409, never re-sealed).  An erasure
of the call, which replaces the review's comments, keeps the review sealed.  A catalog upgraded to
schema 23 (its access rows sealed before, its QA rows not) does not start the service until
``users seal`` has sealed them, and seals them without ``--include-broken``.

Every forging test here fails on the code before schema 23 (the forged row was listed and counted).
"""

from __future__ import annotations

import json

import pytest

from pbx_recorder.catalog import marks
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.service import access_rows
from tests.peers.player_support import put_wav
from tests.peers.qa_support import CRITERIA, add_accounts, make_card, send
from tests.peers.service_support import NOW, insider_sql

ANSWERS = {"greeting": True, "empathy": 3}  # 87.5
WEEK = "2027-W02"  # the week of NOW: the reviews' created_at


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    add_accounts(seeded_service)
    put_wav(seeded_service, "c-blue-1", "r-blue", 30, 1)
    return seeded_service


def _reviewed(svc, card: int) -> int:  # type: ignore[no-untyped-def]
    qa, csrf = svc.login("qa1")
    answer = send(qa, csrf, "POST", "/api/calls/c-blue-1/reviews", {"scorecard_id": card, "answers": ANSWERS})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _listed(svc, user: str = "root-admin") -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    client, _ = svc.login(user)
    answer = client.get("/api/calls/c-blue-1/reviews")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["reviews"])


def _figures(svc) -> dict:  # type: ignore[no-untyped-def, type-arg]
    admin, _ = svc.login("root-admin")
    answer = admin.get(f"/api/reports/figures?period={WEEK}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _assignment_done(svc) -> bool:  # type: ignore[no-untyped-def]
    qa, _ = svc.login("qa1")
    rows = [r for r in qa.get("/api/qa/assignments").json()["assignments"] if r["call_id"] == "c-blue-1"]
    assert len(rows) == 1
    return bool(rows[0]["reviewed"])


def _seal_rows(conn, seal):  # type: ignore[no-untyped-def]
    """``pbx-recorder users seal`` (without ``--include-broken``)."""
    return access_rows.seal_rows(conn, seal, include_broken=False, actor="root", role="host-admin", now=NOW)


#: a review written by hand: call, agent, scorecard, score, created, updated
INSERT = ("INSERT INTO qa_reviews (call_id, reviewer, agent, scorecard_id, answers, score, comments, "
          "created_at, updated_at) VALUES (?, 'qa1', ?, ?, '{}', ?, '[]', ?, ?)")

FORGERIES = {
    "score raised": "UPDATE qa_reviews SET score = 100 WHERE id = ?",
    "answers changed": "UPDATE qa_reviews SET answers = '{\"greeting\": false, \"empathy\": 1}' WHERE id = ?",
    "handed to another agent": "UPDATE qa_reviews SET agent = 'alice' WHERE id = ?",
    "another reviewer": "UPDATE qa_reviews SET reviewer = 'qa2' WHERE id = ?",
    "dated into another period": "UPDATE qa_reviews SET created_at = created_at - 86400 * 30 WHERE id = ?",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_review_changed_by_hand_is_not_listed_counted_or_edited(service, forgery: str) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    review_id = _reviewed(service, card)
    assert [r["id"] for r in _listed(service)] == [review_id]  # as written: listed, counted, done
    qa_rows = _figures(service)["qa"]
    assert [(r["agent"], r["reviews"], r["average"]) for r in qa_rows] == [("carol", 1, 87.5)]
    assert _assignment_done(service)

    insider_sql(service, FORGERIES[forgery], (review_id,))
    assert _listed(service) == []
    figures = _figures(service)
    assert figures["qa"] == []
    if forgery != "dated into another period":  # (out of the week's window: not read at all)
        assert figures["extra"] == {"qa_refused": 1}
    assert not _assignment_done(service)
    qa, csrf = service.login("qa1")
    answer = send(qa, csrf, "PUT", f"/api/qa/reviews/{review_id}", {"answers": ANSWERS})
    assert answer.status_code in (403, 409), answer.text  # (another reviewer's row: 403 first)
    if forgery != "another reviewer":
        assert answer.status_code == 409 and "fails its seal" in answer.text
    conn = open_catalog(service.seeded.db)
    try:  # never re-sealed: it still fails
        listed = access_rows.survey(conn, service.ctx.access_seal).broken.get("qa_reviews", [])
    finally:
        conn.close()
    assert [name.split(" ")[0] for name in listed] == [str(review_id)]


def test_a_review_inserted_by_hand_is_not_listed_nor_counted(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    _reviewed(service, card)  # a sealed row: one without a seal was not written by the recorder
    insider_sql(service, INSERT, ("c-red-1", "alice", card, 100, NOW, NOW))
    figures = _figures(service)
    assert [(r["agent"], r["reviews"]) for r in figures["qa"]] == [("carol", 1)]
    assert figures["extra"] == {"qa_refused": 1}
    admin, _ = service.login("root-admin")
    assert admin.get("/api/calls/c-red-1/reviews").json()["reviews"] == []
    page = admin.get(f"/reports?period={WEEK}")
    assert page.status_code == 200 and 'id="report-qa-refused"' in page.text


def test_a_scorecard_changed_by_hand_takes_no_review_and_is_not_retired(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    heavier = [dict(c, weight=100) if c["key"] == "empathy" else c for c in CRITERIA]
    insider_sql(service, "UPDATE qa_scorecards SET criteria = ? WHERE id = ?", (json.dumps(heavier), card))
    admin, csrf = service.login("root-admin")
    assert admin.get("/api/qa/scorecards").json()["scorecards"] == []
    qa, qa_csrf = service.login("qa1")
    body = {"scorecard_id": card, "answers": ANSWERS}
    answer = send(qa, qa_csrf, "POST", "/api/calls/c-blue-1/reviews", body)
    assert answer.status_code == 409 and "fails its seal" in answer.text
    answer = send(admin, csrf, "POST", f"/api/qa/scorecards/{card}/retire")
    assert answer.status_code == 409 and "fails its seal" in answer.text


def test_an_erasure_of_the_call_keeps_its_review_sealed(service) -> None:  # type: ignore[no-untyped-def]
    """The comments (free text, not sealed) are what an erasure replaces; the grade stays sealed."""
    card = make_card(service)
    qa, csrf = service.login("qa1")
    body = {"scorecard_id": card, "answers": ANSWERS,
            "comments": [{"text": "caller said 13812345678", "recording_id": "r-blue", "position_s": 2}]}
    assert send(qa, csrf, "POST", "/api/calls/c-blue-1/reviews", body).status_code == 201
    conn = open_catalog(service.seeded.db)
    try:
        with Tx(conn):
            marks.forget_call(conn, "c-blue-1")
    finally:
        conn.close()
    listed = _listed(service)
    assert len(listed) == 1 and listed[0]["score"] == 87.5
    assert "13812345678" not in json.dumps(listed)


def test_an_upgrade_to_schema_23_is_sealed_by_users_seal_without_include_broken(service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The access rows were sealed at schema 21; the QA rows the catalog held were written without a
    seal (as migration 23 leaves them).  The service refuses to start, naming them; a plain
    ``users seal`` seals them (their tables were never sealed); then they are listed again.  A review
    inserted by hand after that is one without a seal in a table sealed before: the service starts
    and does not honour it, and a plain ``users seal`` leaves it."""
    from pbx_recorder.errors import ConfigError
    from pbx_recorder.service.context import ServiceContext
    from tests.peers.service_support import login_from_config, service_config

    card = make_card(service)
    review_id = _reviewed(service, card)
    insider_sql(service, "UPDATE qa_reviews SET seal = ''")
    insider_sql(service, "UPDATE qa_scorecards SET seal = ''")
    config = service_config(tmp_path, service.seeded.db, service.key_file)
    with pytest.raises(ConfigError, match=r"qa_reviews 1, qa_scorecards 1.*users seal --check"):
        ServiceContext.from_config(config)
    seal = service.ctx.access_seal
    conn = open_catalog(service.seeded.db)
    try:
        found = access_rows.survey(conn, seal)
        assert found.sealed_tables and not {"qa_reviews", "qa_scorecards"} & found.sealed_tables
        done = _seal_rows(conn, seal)
        assert done.sealed == {"qa_reviews": 1, "qa_scorecards": 1}
        assert access_rows.survey(conn, seal).clean
    finally:
        conn.close()
    assert login_from_config(config, "root-admin") == 200
    assert [r["id"] for r in _listed(service)] == [review_id]

    insider_sql(service, INSERT, ("c-blue-2", "carol", card, 0, NOW, NOW))
    assert login_from_config(config, "root-admin") == 200  # starts: the row is not honoured
    conn = open_catalog(service.seeded.db)
    try:
        done = _seal_rows(conn, seal)
        assert done.sealed == {} and len(done.unsealed["qa_reviews"]) == 1
        assert "qa_reviews" in done.sealed_tables
    finally:
        conn.close()
    assert [(r["agent"], r["reviews"]) for r in _figures(service)["qa"]] == [("carol", 1)]
