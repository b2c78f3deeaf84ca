"""Catalog schema: the single source of truth for table layout.

SQLite by default (PostgreSQL-compatible types where it costs nothing).  Migrations are
an ordered list; ``apply_migrations`` runs the missing ones inside a transaction and
records them in ``schema_version``.  Add a new migration at the end: never edit one
that has shipped.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

MIGRATIONS: list[str] = [
    # 1: calls, recordings, and everything the lifecycle needs.
    """
    CREATE TABLE calls (
        call_id          TEXT PRIMARY KEY,      -- naming.make_call_id(node, linkedid)
        pbx_node         TEXT NOT NULL DEFAULT '',
        linkedid         TEXT NOT NULL DEFAULT '',
        uniqueids        TEXT NOT NULL DEFAULT '[]',   -- JSON list
        direction        TEXT NOT NULL DEFAULT '',     -- inbound | outbound | internal
        caller_num       TEXT NOT NULL DEFAULT '',
        caller_name      TEXT NOT NULL DEFAULT '',
        callee_num       TEXT NOT NULL DEFAULT '',
        did              TEXT NOT NULL DEFAULT '',
        queue            TEXT NOT NULL DEFAULT '',
        agent            TEXT NOT NULL DEFAULT '',
        region           TEXT NOT NULL DEFAULT '',
        accountcode      TEXT NOT NULL DEFAULT '',
        started_at       REAL,                         -- epoch seconds
        answered_at      REAL,
        ended_at         REAL,
        duration         INTEGER,
        billsec          INTEGER,
        disposition      TEXT NOT NULL DEFAULT '',     -- CDR disposition as the PBX wrote it
        status           TEXT NOT NULL DEFAULT '',     -- answered | no_answer | busy | failed | live
        rule             TEXT NOT NULL DEFAULT '',
        record_decision  TEXT NOT NULL DEFAULT '',     -- record | no_record | refused | failed_open ...
        consent_decision TEXT NOT NULL DEFAULT '',     -- granted|refused|timeout|invalid|hangup|notified|...
        consent          TEXT NOT NULL DEFAULT '{}',   -- JSON ConsentEvidence
        tags             TEXT NOT NULL DEFAULT '[]',   -- JSON list
        retention_class  TEXT NOT NULL DEFAULT '',
        cdr              TEXT NOT NULL DEFAULT '{}',   -- JSON: the CDR fields as received
        flags            TEXT NOT NULL DEFAULT '[]',   -- JSON list, e.g. ["duration_mismatch"]
        updated_at       REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX calls_started ON calls(started_at);
    CREATE INDEX calls_caller ON calls(caller_num);
    CREATE INDEX calls_callee ON calls(callee_num);

    CREATE TABLE recordings (
        recording_id     TEXT PRIMARY KEY,             -- naming.make_recording_id
        call_id          TEXT NOT NULL REFERENCES calls(call_id),
        kind             TEXT NOT NULL DEFAULT 'call', -- call | consent
        mode             TEXT NOT NULL DEFAULT 'mixed',-- mixed | dual | stereo
        state            TEXT NOT NULL, -- recording|paused|stopped|spooled|stored|verified|migrated|...
        format           TEXT NOT NULL DEFAULT 'wav',
        duration_s       REAL,
        size             INTEGER,
        sha256           TEXT NOT NULL DEFAULT '',     -- of the stored bytes
        hash_alg         TEXT NOT NULL DEFAULT 'sha256',
        audio_sha256     TEXT NOT NULL DEFAULT '',     -- of the original audio, before encryption/transcoding
        tier             TEXT NOT NULL DEFAULT '',     -- config tier name
        storage_key      TEXT NOT NULL DEFAULT '',     -- naming.storage_key
        storage_class    TEXT NOT NULL DEFAULT '',
        encrypted        INTEGER NOT NULL DEFAULT 0,
        key_id           TEXT NOT NULL DEFAULT '',
        wrapped_key      TEXT NOT NULL DEFAULT '',     -- base64 data key wrapped by key_id
        manifest         TEXT NOT NULL DEFAULT '{}',   -- JSON manifest as signed
        signature        TEXT NOT NULL DEFAULT '',     -- Ed25519 over the manifest (base64)
        retention_class  TEXT NOT NULL DEFAULT '',
        retain_until     REAL,
        legal_hold       INTEGER NOT NULL DEFAULT 0,
        protected        INTEGER NOT NULL DEFAULT 0,
        region           TEXT NOT NULL DEFAULT '',
        flags            TEXT NOT NULL DEFAULT '[]',
        created_at       REAL NOT NULL,
        stored_at        REAL,
        migrated_at      REAL,
        restore_state    TEXT NOT NULL DEFAULT ''      -- '' | requested | in_progress | done
    );
    CREATE INDEX recordings_call ON recordings(call_id);
    CREATE INDEX recordings_state ON recordings(state, tier);

    CREATE TABLE holds (
        hold_id     TEXT PRIMARY KEY,
        scope       TEXT NOT NULL,          -- call | caller | query
        value       TEXT NOT NULL,          -- call id, caller number hash, or JSON query
        reason      TEXT NOT NULL DEFAULT '',
        created_by  TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        released_at REAL,
        released_by TEXT NOT NULL DEFAULT ''
    );

    CREATE TABLE erasure_requests (
        request_id   TEXT PRIMARY KEY,
        subject      TEXT NOT NULL,          -- keyed hash (HMAC) of the number or call id
        received_at  REAL NOT NULL,
        deadline     REAL NOT NULL,
        completed_at REAL,
        status       TEXT NOT NULL,          -- open | done | refused_partial
        receipt      TEXT NOT NULL DEFAULT '{}'
    );

    CREATE TABLE deletion_log (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at           REAL NOT NULL,
        recording_id TEXT NOT NULL,
        call_id      TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        reason       TEXT NOT NULL,          -- retention | erasure | refused | ...
        policy       TEXT NOT NULL DEFAULT '',
        actor        TEXT NOT NULL DEFAULT ''
    );

    CREATE TABLE ledger (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        at           REAL NOT NULL,
        event        TEXT NOT NULL,          -- stored | migrated | held | released | deleted | erased | ...
        recording_id TEXT NOT NULL DEFAULT '',
        payload      TEXT NOT NULL DEFAULT '{}',
        prev_hash    TEXT NOT NULL,
        hash         TEXT NOT NULL
    );

    CREATE TABLE audit_log (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       REAL NOT NULL,
        actor    TEXT NOT NULL,
        role     TEXT NOT NULL DEFAULT '',
        action   TEXT NOT NULL,
        target   TEXT NOT NULL DEFAULT '',
        detail   TEXT NOT NULL DEFAULT '{}'
    );

    CREATE TABLE live_calls (
        call_id    TEXT PRIMARY KEY,
        state      TEXT NOT NULL,            -- JSON snapshot of the core's Call
        updated_at REAL NOT NULL
    );
    """,
    # 2 (lifecycle): resumable tier moves and which recordings each hold covered.
    """
    CREATE TABLE lifecycle_moves (
        recording_id TEXT PRIMARY KEY,
        src_tier     TEXT NOT NULL,
        src_key      TEXT NOT NULL,
        dst_tier     TEXT NOT NULL,
        dst_key      TEXT NOT NULL,
        sha256       TEXT NOT NULL DEFAULT '',
        step         TEXT NOT NULL,          -- copying | switched (catalog points at dst; src left to delete)
        at           REAL NOT NULL
    );
    CREATE TABLE hold_recordings (
        hold_id      TEXT NOT NULL,
        recording_id TEXT NOT NULL,
        PRIMARY KEY (hold_id, recording_id)
    );
    CREATE INDEX hold_recordings_rec ON hold_recordings(recording_id);
    """,
    # 3 (lifecycle): every object a recording is stored as (pbx_recorder.recording_objects):
    # JSON list of {key, role: audio | leg:<role> | original | manifest, sha256, size}.
    # '[]' (rows shipped before this column) = derive from storage_key with pbx_recorder.naming.
    """
    ALTER TABLE recordings ADD COLUMN objects TEXT NOT NULL DEFAULT '[]';
    """,
    # 4 (tamper evidence): the audit log is hash-chained like the ledger (pbx_recorder.audit_trail;
    # rows from before have hash ''), and each call row carries an Ed25519 seal over its canonical
    # metadata (pbx_recorder.call_seal; '' = not sealed).
    """
    ALTER TABLE audit_log ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit_log ADD COLUMN hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN seal TEXT NOT NULL DEFAULT '';
    """,
    # 5 (scale): the lookups of the per-call write path indexed (the ledger hook and ``verify`` find a
    # recording's entries by id: at 10M rows a scan made one call's writes take 2.6 s).
    """
    CREATE INDEX ledger_recording ON ledger(recording_id, seq);
    """
    # ... and every search filter served by an index in the result's order (started_at DESC, call_id),
    # so the first page is read straight off the index and a keyset page costs what page 1 costs.
    # calls_time supersedes calls_started (same column first).
    """
    DROP INDEX calls_started;
    CREATE INDEX calls_time ON calls(started_at DESC, call_id);
    CREATE INDEX calls_status_time ON calls(status, started_at DESC, call_id);
    CREATE INDEX calls_consent_time ON calls(consent_decision, started_at DESC, call_id);
    CREATE INDEX calls_agent_time ON calls(agent, started_at DESC, call_id);
    CREATE INDEX calls_queue_time ON calls(queue, started_at DESC, call_id);
    """
    # Tags in their own table (calls.tags stays the JSON list the rows carry), kept in step by
    # triggers so that every writer -- the repository, lifecycle jobs, raw SQL -- keeps it right,
    # and back-filled here.  Same matching as the former json_each(calls.tags) scan.
    """
    CREATE TABLE call_tags (
        call_id    TEXT NOT NULL,
        tag        TEXT NOT NULL,
        started_at REAL,                    -- copy of calls.started_at: the tag index's order
        UNIQUE (call_id, tag)
    );
    CREATE INDEX call_tags_tag ON call_tags(tag, started_at DESC, call_id);
    INSERT OR IGNORE INTO call_tags (call_id, tag, started_at)
        SELECT c.call_id, j.value, c.started_at
        FROM calls c, json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) j
        WHERE j.value IS NOT NULL;
    CREATE TRIGGER call_tags_insert AFTER INSERT ON calls BEGIN
        INSERT OR IGNORE INTO call_tags (call_id, tag, started_at)
            SELECT NEW.call_id, value, NEW.started_at
            FROM json_each(CASE WHEN json_valid(NEW.tags) THEN NEW.tags ELSE '[]' END)
            WHERE value IS NOT NULL;
    END;
    CREATE TRIGGER call_tags_update AFTER UPDATE OF call_id, tags, started_at ON calls BEGIN
        DELETE FROM call_tags WHERE call_id = OLD.call_id;
        INSERT OR IGNORE INTO call_tags (call_id, tag, started_at)
            SELECT NEW.call_id, value, NEW.started_at
            FROM json_each(CASE WHEN json_valid(NEW.tags) THEN NEW.tags ELSE '[]' END)
            WHERE value IS NOT NULL;
    END;
    CREATE TRIGGER call_tags_delete AFTER DELETE ON calls BEGIN
        DELETE FROM call_tags WHERE call_id = OLD.call_id;
    END;
    """
    # Planner statistics with the shape of a call center (10M calls; 4 statuses, ~7 consent
    # decisions, 20 queues, 500 agents; a tag on a few percent of calls), seeded rather than
    # measured: a catalog starts empty, and statistics taken from a young catalog would mislead
    # the planner for years.  With them a combined filter (queue + status + consent + 30 days)
    # walks the most selective index instead of the first one.  A later ANALYZE replaces them
    # with measured figures, which is fine too.  ANALYZE of sqlite_schema creates the table and
    # makes this connection reload the figures.
    """
    ANALYZE sqlite_schema;
    DELETE FROM sqlite_stat1 WHERE tbl IN ('calls', 'call_tags');
    INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
        ('calls', 'sqlite_autoindex_calls_1', '10000000 1'),
        ('calls', 'calls_time', '10000000 1 1'),
        ('calls', 'calls_status_time', '10000000 2500000 1 1'),
        ('calls', 'calls_consent_time', '10000000 1500000 1 1'),
        ('calls', 'calls_queue_time', '10000000 500000 1 1'),
        ('calls', 'calls_agent_time', '10000000 20000 1 1'),
        ('call_tags', 'sqlite_autoindex_call_tags_1', '1000000 2 1'),
        ('call_tags', 'call_tags_tag', '1000000 50000 1 1');
    ANALYZE sqlite_schema;
    """,
    # 6 (numbers encrypted, pbx_recorder.catalog.protected_rows): the call's numbers, CDR and
    # consent evidence in one AES-256-GCM token; blind indexes (full number, last 4 digits) of
    # caller and callee, each with (started_at DESC, call_id): the search order, served by the index;
    # every number a call names (for erasure).  The clear columns stay, emptied by the data step
    # (pbx_recorder.catalog.number_migration) once the keys are at hand.
    """
    ALTER TABLE calls ADD COLUMN numbers TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN caller_bi TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN caller_bi4 TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN callee_bi TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN callee_bi4 TEXT NOT NULL DEFAULT '';
    DROP INDEX IF EXISTS calls_caller;   -- the clear columns are emptied: these would index ''
    DROP INDEX IF EXISTS calls_callee;
    CREATE INDEX calls_caller_bi ON calls(caller_bi, started_at DESC, call_id);
    CREATE INDEX calls_caller_bi4 ON calls(caller_bi4, started_at DESC, call_id);
    CREATE INDEX calls_callee_bi ON calls(callee_bi, started_at DESC, call_id);
    CREATE INDEX calls_callee_bi4 ON calls(callee_bi4, started_at DESC, call_id);
    CREATE TABLE call_numbers (
        bi      TEXT NOT NULL,               -- full-number blind index of a number the call names
        call_id TEXT NOT NULL,
        PRIMARY KEY (bi, call_id)
    ) WITHOUT ROWID;
    CREATE INDEX call_numbers_call ON call_numbers(call_id);
    CREATE TABLE catalog_settings (
        name  TEXT PRIMARY KEY,              -- numbers_protected: key id the data step finished under
        value TEXT NOT NULL
    );
    -- planner statistics for the blind indexes, in the shape of migration 5's seeded figures (a
    -- full number names a handful of calls; 4 last digits ~1,000 of 10M)
    INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
        ('calls', 'calls_caller_bi', '10000000 5 1 1'),
        ('calls', 'calls_caller_bi4', '10000000 1000 1 1'),
        ('calls', 'calls_callee_bi', '10000000 5 1 1'),
        ('calls', 'calls_callee_bi4', '10000000 1000 1 1');
    ANALYZE sqlite_schema;
    """,
    # 7 (accounts, pbx_recorder.service): the operator service's local accounts (argon2 hashes),
    # teams (a lead's team names PBX agents), sessions (only SHA-256 of the token and of its CSRF
    # token are kept), QA review assignments; the audit log indexed by (actor, action, at), which
    # the service's per-user number-search throttle counts.  ``user`` is a reserved word on
    # PostgreSQL: the columns are ``user_name``.
    """
    CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        role          TEXT NOT NULL,             -- pbx_recorder.service.roles.ROLES
        password_hash TEXT NOT NULL DEFAULT '',  -- argon2id (PHC string); '' = cannot log in
        disabled      INTEGER NOT NULL DEFAULT 0,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until  REAL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE TABLE user_teams (
        user_name TEXT NOT NULL,
        team      TEXT NOT NULL,
        PRIMARY KEY (user_name, team)
    );
    CREATE TABLE team_agents (
        team  TEXT NOT NULL,
        agent TEXT NOT NULL,                     -- calls.agent as the PBX names it
        PRIMARY KEY (team, agent)
    );
    CREATE TABLE sessions (
        id_hash    TEXT PRIMARY KEY,             -- SHA-256 of the session token (never the token)
        user_name  TEXT NOT NULL,
        csrf_hash  TEXT NOT NULL,                -- SHA-256 of the session's CSRF token
        created_at REAL NOT NULL,
        last_seen  REAL NOT NULL,
        client     TEXT NOT NULL DEFAULT ''      -- client address at login
    );
    CREATE INDEX sessions_user ON sessions(user_name);
    CREATE TABLE qa_assignments (
        call_id     TEXT NOT NULL,
        reviewer    TEXT NOT NULL,
        assigned_by TEXT NOT NULL DEFAULT '',
        assigned_at REAL NOT NULL,
        PRIMARY KEY (call_id, reviewer)
    );
    CREATE INDEX qa_assignments_reviewer ON qa_assignments(reviewer, call_id);
    CREATE INDEX audit_actor_action ON audit_log(actor, action, at);
    """,
    # 8 (console, pbx_recorder.service): each user's language and optional TOTP second factor
    # (the secret sealed with the catalog's key, never in clear; the last accepted time step, so a
    # code is accepted once), a session's stage ('totp' while the second factor is pending), API
    # tokens (SHA-256 of the token only; a role no wider than the owner's; an expiry), marks on a
    # call's timeline (label and note at a position, shared with whoever may see the call), saved
    # searches per user, four-eyes replay requests and grants, and the waveform peaks of a
    # recording computed once; the audit log indexed by target (who viewed, played or downloaded
    # a call, on its page).
    """
    ALTER TABLE users ADD COLUMN lang TEXT NOT NULL DEFAULT 'en';
    ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'ok';
    CREATE TABLE api_tokens (
        id_hash    TEXT PRIMARY KEY,             -- SHA-256 of the token (never the token)
        user_name  TEXT NOT NULL,
        role       TEXT NOT NULL,                -- no wider than the owner's role
        label      TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        last_used  REAL,
        revoked    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX api_tokens_user ON api_tokens(user_name);
    CREATE TABLE marks (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id      TEXT NOT NULL,
        recording_id TEXT NOT NULL DEFAULT '',
        position_s   REAL NOT NULL,
        label        TEXT NOT NULL,
        note         TEXT NOT NULL DEFAULT '',
        author       TEXT NOT NULL,
        created_at   REAL NOT NULL
    );
    CREATE INDEX marks_call ON marks(call_id, position_s);
    CREATE TABLE saved_searches (
        user_name  TEXT NOT NULL,
        name       TEXT NOT NULL,
        query      TEXT NOT NULL,                -- the search page's query string
        created_at REAL NOT NULL,
        PRIMARY KEY (user_name, name)
    );
    CREATE TABLE replay_grants (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id      TEXT NOT NULL,
        requester    TEXT NOT NULL,
        reason       TEXT NOT NULL DEFAULT '',
        requested_at REAL NOT NULL,
        state        TEXT NOT NULL DEFAULT 'requested',  -- requested | granted | refused
        approver     TEXT NOT NULL DEFAULT '',
        decided_at   REAL,
        expires_at   REAL
    );
    CREATE INDEX replay_grants_call ON replay_grants(call_id, requester);
    CREATE INDEX audit_target ON audit_log(target, id);
    CREATE TABLE waveform_peaks (
        recording_id TEXT PRIMARY KEY,
        peaks        TEXT NOT NULL,              -- JSON: {"rate": peaks per second, "peaks": [...]}
        created_at   REAL NOT NULL
    );
    """,
    # 9 (working with recordings in the console): export jobs (what was exported, by whom, with
    # which filter and how far it got; never the password nor the file's contents), two-person
    # deletion requests and the destruction records kept after any disposal (who asked, who
    # approved, what, the hashes), the tag vocabulary admins manage, QA scorecards and reviews
    # (comments anchored to marks), and reports with their schedules.
    """
    CREATE TABLE export_jobs (
        id          TEXT PRIMARY KEY,              -- random, unguessable
        user_name   TEXT NOT NULL,
        kind        TEXT NOT NULL,                 -- csv | xlsx | audio
        filter      TEXT NOT NULL DEFAULT '{}',    -- the search filter (JSON)
        fields      TEXT NOT NULL DEFAULT '[]',    -- the columns picked (JSON)
        state       TEXT NOT NULL DEFAULT 'queued',-- queued | running | done | failed | expired
        rows_total  INTEGER NOT NULL DEFAULT 0,
        rows_done   INTEGER NOT NULL DEFAULT 0,
        bytes       INTEGER NOT NULL DEFAULT 0,
        file_name   TEXT NOT NULL DEFAULT '',
        sha256      TEXT NOT NULL DEFAULT '',
        pending     TEXT NOT NULL DEFAULT '[]',    -- audio: cold recordings left out (JSON)
        error       TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        finished_at REAL,
        expires_at  REAL
    );
    CREATE INDEX export_jobs_user ON export_jobs(user_name, created_at);
    CREATE TABLE deletion_requests (
        id           TEXT PRIMARY KEY,
        requested_by TEXT NOT NULL,
        reason       TEXT NOT NULL,
        scope        TEXT NOT NULL,                -- JSON: what was asked ({"call_ids": [...]})
        recordings   TEXT NOT NULL DEFAULT '[]',   -- JSON: recording ids and hashes fixed at request
        state        TEXT NOT NULL DEFAULT 'requested', -- requested | refused | executed | failed
        requested_at REAL NOT NULL,
        approver     TEXT NOT NULL DEFAULT '',
        decided_at   REAL,
        executed_at  REAL,
        result       TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX deletion_requests_state ON deletion_requests(state, requested_at);
    CREATE TABLE destruction_records (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id   TEXT NOT NULL,                -- deletion request, erasure request or retention run
        kind         TEXT NOT NULL,                -- deletion | erasure | retention
        requested_by TEXT NOT NULL DEFAULT '',
        approved_by  TEXT NOT NULL DEFAULT '',
        recording_id TEXT NOT NULL,
        call_id      TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        destroyed_at REAL NOT NULL,
        keep_until   REAL NOT NULL                 -- destroyed_at + 3 years
    );
    CREATE INDEX destruction_records_request ON destruction_records(request_id);
    CREATE TABLE tag_vocabulary (
        tag        TEXT PRIMARY KEY,
        kind       TEXT NOT NULL DEFAULT 'topic',  -- intent | topic
        label_en   TEXT NOT NULL DEFAULT '',
        label_zh   TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        retired    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE qa_scorecards (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        criteria   TEXT NOT NULL,                  -- JSON [{key, label, kind yesno|scale, max, weight}]
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL,
        retired    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE qa_reviews (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id      TEXT NOT NULL,
        reviewer     TEXT NOT NULL,
        agent        TEXT NOT NULL DEFAULT '',     -- the call's agent (an agent reads their own)
        scorecard_id INTEGER NOT NULL,
        answers      TEXT NOT NULL,                -- JSON {criterion key: value}
        score        REAL NOT NULL,                -- weighted, 0..100
        comments     TEXT NOT NULL DEFAULT '[]',   -- JSON [{mark_id, text}]
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        UNIQUE (call_id, reviewer, scorecard_id)
    );
    CREATE INDEX qa_reviews_agent ON qa_reviews(agent, created_at);
    CREATE TABLE report_schedules (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        owner       TEXT NOT NULL,
        name        TEXT NOT NULL,
        period      TEXT NOT NULL,                 -- week | month
        team        TEXT NOT NULL DEFAULT '',      -- '' : overall
        filter      TEXT NOT NULL DEFAULT '{}',
        mail_to     TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        last_period TEXT NOT NULL DEFAULT ''       -- the last period produced (2026-W48, 2026-11)
    );
    CREATE TABLE reports (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule_id INTEGER,
        owner       TEXT NOT NULL,
        period      TEXT NOT NULL,
        period_key  TEXT NOT NULL,
        team        TEXT NOT NULL DEFAULT '',
        data        TEXT NOT NULL,                 -- JSON: the figures
        created_at  REAL NOT NULL
    );
    CREATE INDEX reports_owner ON reports(owner, created_at);
    """,
    # 10 (scoped searches, pbx_recorder.catalog.scopes): a supervisor's or agent's search reads
    # its agents' calls first.  Each filter the console offers beside the scope gets an index led
    # by the agent, in the result's order, and call_tags carries the call's agent (kept in step by
    # the triggers, now also when a call's agent changes), so a scoped page is a few short index
    # ranges (queries.py merges one per agent) and a scoped count reads only matching entries.
    """
    CREATE INDEX calls_agent_status_time ON calls(agent, status, started_at DESC, call_id);
    CREATE INDEX calls_agent_consent_time ON calls(agent, consent_decision, started_at DESC, call_id);
    CREATE INDEX calls_agent_queue_time ON calls(agent, queue, started_at DESC, call_id);
    ALTER TABLE call_tags ADD COLUMN agent TEXT;  -- copy of calls.agent: the scoped tag index
    UPDATE call_tags SET agent = (SELECT c.agent FROM calls c WHERE c.call_id = call_tags.call_id);
    CREATE INDEX call_tags_agent ON call_tags(agent, tag, started_at DESC, call_id);
    DROP TRIGGER call_tags_insert;
    DROP TRIGGER call_tags_update;
    CREATE TRIGGER call_tags_insert AFTER INSERT ON calls BEGIN
        INSERT OR IGNORE INTO call_tags (call_id, tag, started_at, agent)
            SELECT NEW.call_id, value, NEW.started_at, NEW.agent
            FROM json_each(CASE WHEN json_valid(NEW.tags) THEN NEW.tags ELSE '[]' END)
            WHERE value IS NOT NULL;
    END;
    CREATE TRIGGER call_tags_update AFTER UPDATE OF call_id, tags, started_at, agent ON calls BEGIN
        DELETE FROM call_tags WHERE call_id = OLD.call_id;
        INSERT OR IGNORE INTO call_tags (call_id, tag, started_at, agent)
            SELECT NEW.call_id, value, NEW.started_at, NEW.agent
            FROM json_each(CASE WHEN json_valid(NEW.tags) THEN NEW.tags ELSE '[]' END)
            WHERE value IS NOT NULL;
    END;
    -- seeded like migration 5's: 500 agents, 4 statuses, ~7 consent decisions, 20 queues
    INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
        ('calls', 'calls_agent_status_time', '10000000 20000 5000 1 1'),
        ('calls', 'calls_agent_consent_time', '10000000 20000 3000 1 1'),
        ('calls', 'calls_agent_queue_time', '10000000 20000 1000 1 1'),
        ('call_tags', 'call_tags_agent', '1000000 2000 100 1 1');
    ANALYZE sqlite_schema;
    """,
    # 11 (footprint, issue 11; pbx_recorder.manifest_copy): the signed manifest is the object stored
    # beside the audio; a row written from now on keeps in ``manifest`` only what display reads and
    # in ``manifest_sha256`` the hash of the signed bytes, which ``verify`` checks the stored object
    # against.  Rows written before keep their whole copy ('' here) and are verified as before.
    """
    ALTER TABLE recordings ADD COLUMN manifest_sha256 TEXT NOT NULL DEFAULT '';
    """,
    # 12 (issue 11, pbx_recorder.catalog.extra_numbers): the numbers call_numbers indexes for a call
    # that its own sealed row does not hold (named only by a recording's signed manifest, or by an
    # earlier version of the row), sealed, so `keys rotate-index` can re-make their indexes.  A
    # catalog with recordings gets the data step's marker: rows stored under schema 11 before it
    # lost that plaintext, which `catalog migrate` reads back from their stored signed manifests
    # (pbx_recorder.catalog.manifest_numbers); rows created after ``upto`` need no pass.
    """
    CREATE TABLE call_extra_numbers (
        call_id TEXT PRIMARY KEY,
        numbers TEXT NOT NULL                -- AES-256-GCM token of the digit strings (pn1:...)
    ) WITHOUT ROWID;
    INSERT INTO catalog_settings (name, value)
        SELECT 'manifest_numbers_pass',
               '{"cursor":"","upto":' || CAST(strftime('%s', 'now') AS INTEGER) || '}'
        WHERE EXISTS (SELECT 1 FROM recordings);
    """,
]


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring ``conn`` to the newest schema; return the resulting version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = row[0] or 0
    for number, script in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        with conn:
            conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number});")
        current = number
    return current


def ensure_schema(conn: Any, target: str | Path) -> str:
    """The catalog behind ``conn`` at the newest schema, whichever engine holds it; its version."""
    from pbx_recorder.catalog import engine

    if engine.is_postgres(conn):
        from pbx_recorder.catalog import pg_schema

        url = str(getattr(conn, "url", "") or target)
        return pg_schema.ensure(conn, url, password=engine.password_of(url))
    return str(apply_migrations(conn))
