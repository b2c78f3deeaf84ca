"""The catalog's SQLite migrations 1-5: calls, recordings and what the lifecycle needs (tier moves,
holds, the objects of a recording, the hash-chained audit log and call seals), then the indexes
that serve the write path and every search filter, the tag table and the planner's statistics.

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

CALLS_AND_LIFECYCLE: list[str] = [
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
    # 3 (lifecycle): every object a recording is stored as (pbx_recorder.recording.recording_objects):
    # JSON list of {key, role: audio | leg:<role> | original | manifest, sha256, size}.
    # '[]' (rows shipped before this column) = derive from storage_key with pbx_recorder.core.naming.
    """
    ALTER TABLE recordings ADD COLUMN objects TEXT NOT NULL DEFAULT '[]';
    """,
    # 4 (tamper evidence): the audit log is hash-chained like the ledger (pbx_recorder.audit_trail;
    # rows from before have hash ''), and each call row carries an Ed25519 seal over its canonical
    # metadata (pbx_recorder.recording.call_seal; '' = not sealed).
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
]
