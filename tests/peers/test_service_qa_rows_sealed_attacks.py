"""README "Security": what a review of the sealed QA rows (schema 23) tried next, as an insider who
can write the catalog but cannot read ``web.secret_key_file``:

- change a score and blank the table's seals, so that it looks just upgraded and a plain
  ``users seal`` seals the forgery; or insert a review into a table that has no sealed row yet;
  or add an audit row of their own that says the forged score was written, rewrite an old one
  into that, strip the MACs first, hide the newest edit, move the review's agent (and the call's)
  or its dates.  ``users seal`` verifies the whole audit chain once, then checks each unsealed QA
  row against the audit rows that wrote it (``service/qa_evidence.py``) and seals only what they
  say (tests/peers/test_qa_evidence_chain.py has the chain attacks);
- write a value the recorder never writes (a blob) into a sealed column: the readers answered 503
  and ``users seal`` could not even name the row;
- flood the review list with rows written by hand, newer than the genuine ones;
- learn, by editing a review they may not edit, whether it was changed.

And the report's downloads and mail say how many reviews they left out, as its page does.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.reports import figures as F
from pbx_recorder.reports import mail, pdf, xlsx
from pbx_recorder.web import i18n
from tests.peers.player_support import put_wav
from tests.peers.qa_support import ANSWERS, add_accounts, listed_reviews, make_card, review_as, seal_all, send
from tests.peers.service_support import NOW, insider_sql

WEEK = "2027-W02"
INSERT = ("INSERT INTO qa_reviews (call_id, reviewer, agent, scorecard_id, answers, score, comments, "
          "created_at, updated_at) VALUES (?, ?, ?, ?, '{}', ?, '[]', ?, ?)")


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    add_accounts(seeded_service)
    put_wav(seeded_service, "c-blue-1", "r-blue", 30, 1)
    return seeded_service


def test_a_score_changed_and_the_seals_blanked_is_not_sealed_by_a_plain_usersseal_all(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    genuine = review_as(service, card)
    forged = review_as(service, card, user="root-admin")
    better = '{"greeting": true, "empathy": 5}'
    insider_sql(service, "UPDATE qa_reviews SET score = 100, answers = ? WHERE id = ?", (better, forged))
    insider_sql(service, "UPDATE qa_reviews SET seal = ''")  # the table now looks just upgraded
    done = seal_all(service)
    assert done.sealed == {"qa_reviews": 1}  # the genuine one, as its audit row wrote it
    assert [n.split(" ")[0] for n in done.differs["qa_reviews"]] == [str(forged)]
    assert "score or answers are not the newest audit row's" in done.differs["qa_reviews"][0]
    assert listed_reviews(service) == [genuine]
    again = seal_all(service)  # the table holds a sealed row now: one without was not the recorder's
    assert "qa_reviews" in again.sealed_tables and again.sealed == {}
    assert len(again.unsealed["qa_reviews"]) == 1
    assert seal_all(service, include_broken=True).sealed == {"qa_reviews": 1}  # an admin who checked it


def test_a_review_inserted_into_an_empty_table_is_not_sealed_by_a_plain_usersseal_all(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    insider_sql(service, INSERT, ("c-blue-1", "qa1", "carol", card, 100, NOW, NOW))
    done = seal_all(service)
    assert "qa_reviews" not in done.sealed
    assert done.differs["qa_reviews"][0].endswith("no audit row wrote it")
    assert listed_reviews(service) == []


def test_an_audit_row_written_by_hand_is_no_evidence(service) -> None:  # type: ignore[no-untyped-def]
    """The insider also appends the ``qa.review`` audit row their forgery needs: without the key it
    holds no MAC after keyed rows, the chain does not verify, and no audit row is evidence."""
    card = make_card(service)
    insider_sql(service, INSERT, ("c-blue-1", "qa1", "carol", card, 100, NOW, NOW))
    conn = open_catalog(service.seeded.db)
    try:
        row_id = conn.execute("SELECT id FROM qa_reviews").fetchone()[0]
        last_id, last_hash = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC").fetchone()
        from pbx_recorder import audit_trail

        detail = {"review_id": row_id, "scorecard_id": card, "score": 100.0, "answers": {}}
        digest = audit_trail.entry_hash(last_hash, last_id + 1, NOW, "qa1", "qa", "qa.review", "c-blue-1",
                                        detail)
        with Tx(conn):
            conn.execute("INSERT INTO audit_log (id, at, actor, role, action, target, detail, prev_hash, "
                         "hash, mac) VALUES (?, ?, 'qa1', 'qa', 'qa.review', 'c-blue-1', ?, ?, ?, '')",
                         (last_id + 1, NOW, audit_trail.canonical_json(detail).decode(), last_hash, digest))
    finally:
        conn.close()
    done = seal_all(service)
    assert "qa_reviews" not in done.sealed
    assert "the audit log does not verify" in done.differs["qa_reviews"][0]


@pytest.mark.sqlite_only  # (a blob in a text column: PostgreSQL refuses it)
def test_a_blob_in_a_sealed_column_fails_its_seal_and_breaks_no_reader(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    genuine = review_as(service, card)
    insider_sql(service, "INSERT INTO qa_reviews (call_id, reviewer, agent, scorecard_id, answers, score, "
                "comments, created_at, updated_at, seal) VALUES ('c-blue-1', 'qa2', X'00ff', ?, '{}', 1, "
                "'[]', ?, ?, 'a1.x')", (card, NOW, NOW))
    assert listed_reviews(service) == [genuine]
    admin, _ = service.login("root-admin")
    figures = admin.get(f"/api/reports/figures?period={WEEK}")
    assert figures.status_code == 200 and figures.json()["extra"] == {"qa_refused": 1}
    done = seal_all(service, include_broken=True)  # names it, cannot seal it, does not fail
    assert len(done.broken["qa_reviews"]) == 1 and "qa_reviews" not in done.sealed


def test_reviews_written_by_hand_do_not_hide_the_genuine_ones(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    genuine = review_as(service, card)
    conn = open_catalog(service.seeded.db)
    try:
        with Tx(conn):
            conn.executemany(INSERT, [("c-blue-1", f"x{i}", "carol", card, 0, NOW + 10, NOW + 10)
                                      for i in range(600)])
    finally:
        conn.close()
    assert listed_reviews(service) == [genuine]


def test_an_operator_who_may_not_edit_a_review_learns_nothing_of_itsseal_all(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    other = review_as(service, card, call="c-red-1", user="root-admin")  # not a call assigned to qa1
    qa, csrf = service.login("qa1")

    def edit() -> tuple[int, str]:
        answer = send(qa, csrf, "PUT", f"/api/qa/reviews/{other}", {"answers": ANSWERS})
        return answer.status_code, answer.text

    untouched = edit()
    insider_sql(service, "UPDATE qa_reviews SET score = 1 WHERE id = ?", (other,))
    assert edit() == untouched and untouched[0] == 404


def _refusing_figures() -> F.Figures:
    totals = F.CallTotals(calls=10, answered=8, talk_s=900, consent_asked=5, granted=3, refused=1, timeout=1,
                          refusals_routed=1)
    fig = F.compute("2027-W02", "", 0, 1, totals, [], [], [F.QaRow("carol", 1, 87.5)], 0)
    return F.Figures(**{**fig.__dict__, "extra": {"qa_refused": 3}})


def test_the_downloads_and_the_mail_say_how_many_reviews_were_left_out() -> None:
    fig = _refusing_figures()
    t = i18n.translator("en")
    label = t("reports.qa_refused")
    assert f"{label}: 3" in mail.body(fig, "weekly", t)
    with zipfile.ZipFile(io.BytesIO(xlsx.workbook(fig, t))) as book:
        assert label in book.read("xl/sharedStrings.xml").decode("utf-8")
    from pypdf import PdfReader

    text = PdfReader(io.BytesIO(pdf.document(fig, t))).pages[0].extract_text()
    assert "fail their seal" in " ".join(text.replace("\x00", "").split())
