"""``users seal``'s evidence for a QA row (``service/qa_evidence.py``) from audit rows written before
the audit log was keyed: an unkeyed row vouches only when a signed chain head covers it (a chain
rewritten without its MACs verifies on its own, never against the head)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder import audit_trail
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.recording import chain_head
from pbx_recorder.service import qa_evidence, qa_store

NOW = 1_800_000_000.0
ANSWERS = {"greeting": True}


def _reviewed(conn) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """A review and its audit row as a service without web.secret_key_file wrote them (unkeyed)."""
    with Tx(conn):
        card = qa_store.add_scorecard(conn, "basic", [{"key": "greeting"}], "root-admin", NOW)
        review = qa_store.add_review(conn, {"call_id": "c-1", "reviewer": "qa1", "agent": "carol",
                                            "scorecard_id": card, "answers": ANSWERS, "score": 100.0,
                                            "comments": []}, NOW)
        audit_trail.record(conn, actor="qa1", role="qa", action="qa.review", target="c-1", now=NOW,
                           detail={"review_id": review, "scorecard_id": card, "score": 100.0,
                                   "answers": ANSWERS, "agent": "carol"})
    cols = (*qa_store.REVIEW_FIELDS, "seal")
    return dict(zip(cols, conn.execute(f"SELECT {', '.join(cols)} FROM qa_reviews").fetchone(), strict=True))


def _signing(tmp_path) -> tuple[Ed25519PrivateKey, SimpleNamespace]:  # type: ignore[no-untyped-def]
    """A signing key and the configuration of its checkpoint folder (``chain_head.store_for``)."""
    signing = SimpleNamespace(checkpoint_dir=tmp_path / "heads", checkpoint_tier=None)
    return Ed25519PrivateKey.generate(), SimpleNamespace(signing=signing, node="",
                                                          catalog=SimpleNamespace(path=tmp_path / "cat.db"))


def test_an_unkeyed_audit_row_vouches_only_under_a_signed_head(tmp_path) -> None:  # type: ignore[no-untyped-def]
    conn = open_catalog(tmp_path / "cat.db")
    try:
        row = _reviewed(conn)
        key, config = _signing(tmp_path)
        no_head = qa_evidence.gather(conn, config, key.public_key())
        assert no_head.chain_problem is not None and "no signed checkpoint" in no_head.chain_problem
        assert qa_evidence.gather(conn).head_seq == 0
        unpinned = qa_evidence.review_problem(conn, row, qa_evidence.gather(conn))
        assert "no signed head covers it" in str(unpinned)
        assert chain_head.write_all(conn, chain_head.store_for(config), key, now=NOW, init=True) == []
        covered = qa_evidence.gather(conn, config, key.public_key())
        assert covered.chain_problem is None and covered.head_seq >= 1
        assert qa_evidence.review_problem(conn, row, covered) is None
        assert qa_evidence.review_problem(conn, {**row, "score": 0.0}, covered) is not None
        # the chain rewritten (the audit row's score lowered, every hash recomputed): the head says no
        with Tx(conn):
            text = conn.execute("SELECT detail FROM audit_log WHERE action = 'qa.review'").fetchone()[0]
            detail = json.loads(text)
            detail["score"] = 0.0
            conn.execute("UPDATE audit_log SET detail = ? WHERE action = 'qa.review'",
                         (audit_trail.canonical_json(detail).decode(),))
            prev = audit_trail.GENESIS
            for r in conn.execute("SELECT id, at, actor, role, action, target, detail FROM audit_log "
                                  "ORDER BY id").fetchall():
                digest = audit_trail.entry_hash(prev, r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]))
                conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                             (prev, digest, r[0]))
                prev = digest
        rewritten = qa_evidence.gather(conn, config, key.public_key())
        assert rewritten.chain_problem is not None and "signed head" in rewritten.chain_problem
        assert qa_evidence.review_problem(conn, {**row, "score": 0.0}, rewritten) == rewritten.chain_problem
    finally:
        conn.close()


def test_the_signed_head_is_held_to_what_the_pass_read(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL an insider's statements do not wait for the catalog's lock: the forged chain
    during the pass, the genuine one while the heads are read back, the forged one again.  The heads
    are held to the hashes the pass itself read, so the forged chain never passes for signed."""
    conn = open_catalog(tmp_path / "cat.db")
    try:
        row = _reviewed(conn)
        key, config = _signing(tmp_path)
        assert chain_head.write_all(conn, chain_head.store_for(config), key, now=NOW, init=True) == []
        cols = "id, at, actor, role, action, target, detail, prev_hash, hash"
        genuine = conn.execute(f"SELECT {cols} FROM audit_log ORDER BY id").fetchall()
        forged, prev = [], audit_trail.GENESIS
        for r in genuine:
            detail = json.loads(r[6])
            if r[4] == "qa.review":
                detail["score"] = 0.0
            digest = audit_trail.entry_hash(prev, r[0], r[1], r[2], r[3], r[4], r[5], detail)
            forged.append((audit_trail.canonical_json(detail).decode(), prev, digest, r[0]))
            prev = digest

        def put(rows: list) -> None:  # type: ignore[type-arg]
            with Tx(conn):
                conn.executemany("UPDATE audit_log SET detail = ?, prev_hash = ?, hash = ? WHERE id = ?",
                                 rows)

        put(forged)
        checked = chain_head.check

        def genuine_while_checked(*args, **kwargs):  # type: ignore[no-untyped-def]
            put([(r[6], r[7], r[8], r[0]) for r in genuine])
            try:
                return checked(*args, **kwargs)
            finally:
                put(forged)

        monkeypatch.setattr(chain_head, "check", genuine_while_checked)
        evidence = qa_evidence.gather(conn, config, key.public_key())
        assert evidence.chain_problem is not None and "differs from the signed head" in evidence.chain_problem
        assert qa_evidence.review_problem(conn, {**row, "score": 0.0}, evidence) == evidence.chain_problem
    finally:
        conn.close()
