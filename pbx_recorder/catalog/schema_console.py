"""The catalog's SQLite migrations 7-10: the operator service and its console (accounts, teams,
sessions, TOTP, API tokens, marks, saved searches, replay grants, waveform peaks), working with
recordings (exports, deletion requests, destruction records, tags, QA, reports) and the indexes of
scoped searches.

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

SERVICE_AND_CONSOLE: list[str] = [
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
]
