"""The catalog's schema at its newest version, described once, for both engines.

SQLite catalogs reach this layout through the shipped migration ladder in
:mod:`pbx_recorder.catalog.schema` (never edited); PostgreSQL catalogs are created from this
description by the Alembic baseline (:mod:`pbx_recorder.catalog.alembic`), and every later
migration is an Alembic revision written for both.  ``tests/unit/test_schema_model.py`` holds
the ladder's result and this description to the same tables, columns and indexes.

Types are the portable ones: text, double precision for epoch seconds, 64-bit integers for
counts and 0/1 flags (the code writes SQLite's 0/1), bytes nowhere.  PostgreSQL has no implicit
``rowid``: ``calls`` and ``recordings`` carry one as an identity column, so the keyset scans that
walk those tables in insertion order (``pbx_recorder.scan``, ``verify``) read the same column on
both engines.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from pbx_recorder.catalog.schema_agent import AGENT_CARRIED, AGENT_INDEX, RETIRED
from pbx_recorder.catalog.schema_filters import FILTER_COLUMNS, TAG_COPIES, create_index_sql
from pbx_recorder.catalog.schema_filters import TAG_INDEXES as TAG_INDEX_COLUMNS
from pbx_recorder.catalog.schema_fresh_numbers import FRESH, SETTLED, SIDES, fresh_index, settled_index

metadata = MetaData()

REAL = Float(precision=53)
#: the columns only PostgreSQL has (SQLite's implicit rowid)
ROWID_ONLY_ON_POSTGRES = {("calls", "rowid"), ("recordings", "rowid")}


def _text(name: str, default: str = "", *, nullable: bool = False) -> Column[str]:
    return Column(name, Text, nullable=nullable, server_default=text(f"'{default}'"))


calls = Table(
    "calls", metadata,
    Column("call_id", Text, primary_key=True),
    _text("pbx_node"), _text("linkedid"), _text("uniqueids", "[]"), _text("direction"),
    _text("caller_num"), _text("caller_name"), _text("callee_num"), _text("did"), _text("queue"),
    _text("agent"), _text("region"), _text("accountcode"),
    Column("started_at", REAL), Column("answered_at", REAL), Column("ended_at", REAL),
    Column("duration", BigInteger), Column("billsec", BigInteger),
    _text("disposition"), _text("status"), _text("rule"), _text("record_decision"),
    _text("consent_decision"), _text("consent", "{}"), _text("tags", "[]"), _text("retention_class"),
    _text("cdr", "{}"), _text("flags", "[]"),
    Column("updated_at", REAL, nullable=False, server_default=text("0")),
    _text("seal"), _text("numbers"), _text("caller_bi"), _text("caller_bi4"), _text("callee_bi"),
    _text("callee_bi4"),
    _text("rule_tags"),  # (revision 0019: the tags the call's rule set, sealed; '' = not recorded)
    Column("rowid", BigInteger, Identity(), nullable=False, unique=True),
    # (revision 0024: the call's number entries still in the fresh indexes; not sealed)
    Column("fresh", Integer, nullable=False, server_default=text("0")),
)

recordings = Table(
    "recordings", metadata,
    Column("recording_id", Text, primary_key=True),
    Column("call_id", Text, ForeignKey("calls.call_id"), nullable=False),
    _text("kind", "call"), _text("mode", "mixed"), Column("state", Text, nullable=False),
    _text("format", "wav"), Column("duration_s", REAL), Column("size", BigInteger),
    _text("sha256"), _text("hash_alg", "sha256"), _text("audio_sha256"), _text("tier"),
    _text("storage_key"), _text("storage_class"),
    Column("encrypted", BigInteger, nullable=False, server_default=text("0")),
    _text("key_id"), _text("wrapped_key"), _text("manifest", "{}"), _text("signature"),
    _text("retention_class"), Column("retain_until", REAL),
    Column("legal_hold", BigInteger, nullable=False, server_default=text("0")),
    Column("protected", BigInteger, nullable=False, server_default=text("0")),
    _text("region"), _text("flags", "[]"),
    Column("created_at", REAL, nullable=False), Column("stored_at", REAL), Column("migrated_at", REAL),
    _text("restore_state"), _text("objects", "[]"),
    Column("rowid", BigInteger, Identity(), nullable=False, unique=True),
    _text("manifest_sha256"),  # revision 0011 (SQLite's migration 11)
)

holds = Table(
    "holds", metadata,
    Column("hold_id", Text, primary_key=True),
    Column("scope", Text, nullable=False), Column("value", Text, nullable=False),
    _text("reason"), _text("created_by"), Column("created_at", REAL, nullable=False),
    Column("released_at", REAL), _text("released_by"),
    _text("value4"),  # a caller hold's last-4 index(es), beside ``value`` (revision 0015)
)

erasure_requests = Table(
    "erasure_requests", metadata,
    Column("request_id", Text, primary_key=True),
    Column("subject", Text, nullable=False), Column("received_at", REAL, nullable=False),
    Column("deadline", REAL, nullable=False), Column("completed_at", REAL),
    Column("status", Text, nullable=False), _text("receipt", "{}"),
)

deletion_log = Table(
    "deletion_log", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", REAL, nullable=False), Column("recording_id", Text, nullable=False),
    Column("call_id", Text, nullable=False), Column("sha256", Text, nullable=False),
    Column("reason", Text, nullable=False), _text("policy"), _text("actor"),
)

ledger = Table(
    "ledger", metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("at", REAL, nullable=False), Column("event", Text, nullable=False),
    _text("recording_id"), _text("payload", "{}"),
    Column("prev_hash", Text, nullable=False), Column("hash", Text, nullable=False),
    _text("mac"),  # (revision 0023: recording.ledger; '' = not keyed)
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", REAL, nullable=False), Column("actor", Text, nullable=False), _text("role"),
    Column("action", Text, nullable=False), _text("target"), _text("detail", "{}"),
    _text("prev_hash"), _text("hash"),
    _text("mac"),  # (revision 0021: pbx_recorder.audit_key; '' = not keyed)
)

live_calls = Table(
    "live_calls", metadata,
    Column("call_id", Text, primary_key=True),
    Column("state", Text, nullable=False), Column("updated_at", REAL, nullable=False),
)

lifecycle_moves = Table(
    "lifecycle_moves", metadata,
    Column("recording_id", Text, primary_key=True),
    Column("src_tier", Text, nullable=False), Column("src_key", Text, nullable=False),
    Column("dst_tier", Text, nullable=False), Column("dst_key", Text, nullable=False),
    _text("sha256"), Column("step", Text, nullable=False), Column("at", REAL, nullable=False),
)

hold_recordings = Table(
    "hold_recordings", metadata,
    Column("hold_id", Text, nullable=False), Column("recording_id", Text, nullable=False),
    PrimaryKeyConstraint("hold_id", "recording_id"),
)

call_tags = Table(
    "call_tags", metadata,
    Column("call_id", Text, nullable=False), Column("tag", Text, nullable=False),
    Column("started_at", REAL), Column("agent", Text),
    # copies of the call's filter columns (revision 0017), kept by the tag trigger
    Column("status", Text), Column("consent_decision", Text), Column("queue", Text),
    UniqueConstraint("call_id", "tag"),
)

call_numbers = Table(
    "call_numbers", metadata,
    Column("bi", Text, nullable=False), Column("call_id", Text, nullable=False),
    PrimaryKeyConstraint("bi", "call_id"),
)

#: 12 (pbx_recorder.catalog.extra_numbers): numbers call_numbers indexes that the call's own sealed
#: row does not hold, one AES-256-GCM token per call that has any
call_extra_numbers = Table(
    "call_extra_numbers", metadata,
    Column("call_id", Text, primary_key=True), Column("numbers", Text, nullable=False),
)

catalog_settings = Table(
    "catalog_settings", metadata,
    Column("name", Text, primary_key=True), Column("value", Text, nullable=False),
)

# 7: the operator service's accounts (pbx_recorder.service)
users = Table(
    "users", metadata,
    Column("name", Text, primary_key=True), Column("role", Text, nullable=False),
    _text("password_hash"),
    Column("disabled", BigInteger, nullable=False, server_default=text("0")),
    Column("failed_logins", BigInteger, nullable=False, server_default=text("0")),
    Column("locked_until", REAL),
    Column("created_at", REAL, nullable=False), Column("updated_at", REAL, nullable=False),
    _text("lang", "en"), _text("totp_secret"),
    Column("totp_last_step", BigInteger, nullable=False, server_default=text("0")),
    _text("seal"),  # (revision 0020: service.access_seal; '' = not sealed)
)

user_teams = Table(
    "user_teams", metadata,
    Column("user_name", Text, nullable=False), Column("team", Text, nullable=False), _text("seal"),
    PrimaryKeyConstraint("user_name", "team"),
)

team_agents = Table(
    "team_agents", metadata,
    Column("team", Text, nullable=False), Column("agent", Text, nullable=False), _text("seal"),
    PrimaryKeyConstraint("team", "agent"),
)

sessions = Table(
    "sessions", metadata,
    Column("id_hash", Text, primary_key=True), Column("user_name", Text, nullable=False),
    Column("csrf_hash", Text, nullable=False),
    Column("created_at", REAL, nullable=False), Column("last_seen", REAL, nullable=False),
    _text("client"), _text("stage", "ok"), _text("seal"),
)

qa_assignments = Table(
    "qa_assignments", metadata,
    Column("call_id", Text, nullable=False), Column("reviewer", Text, nullable=False),
    _text("assigned_by"), Column("assigned_at", REAL, nullable=False), _text("seal"),
    PrimaryKeyConstraint("call_id", "reviewer"),
)

#: what revision 0007 adds (tables, then indexes), created there when missing
ACCOUNT_TABLES = (users, user_teams, team_agents, sessions, qa_assignments)

# 8: the console (pbx_recorder.service)
api_tokens = Table(
    "api_tokens", metadata,
    Column("id_hash", Text, primary_key=True), Column("user_name", Text, nullable=False),
    Column("role", Text, nullable=False), _text("label"),
    Column("created_at", REAL, nullable=False), Column("expires_at", REAL, nullable=False),
    Column("last_used", REAL), Column("revoked", BigInteger, nullable=False, server_default=text("0")),
    _text("seal"),
)

marks = Table(
    "marks", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("call_id", Text, nullable=False), _text("recording_id"),
    Column("position_s", REAL, nullable=False), Column("label", Text, nullable=False), _text("note"),
    Column("author", Text, nullable=False), Column("created_at", REAL, nullable=False),
)

saved_searches = Table(
    "saved_searches", metadata,
    Column("user_name", Text, nullable=False), Column("name", Text, nullable=False),
    Column("query", Text, nullable=False), Column("created_at", REAL, nullable=False),
    PrimaryKeyConstraint("user_name", "name"),
)

replay_grants = Table(
    "replay_grants", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("call_id", Text, nullable=False), Column("requester", Text, nullable=False), _text("reason"),
    Column("requested_at", REAL, nullable=False), _text("state", "requested"), _text("approver"),
    Column("decided_at", REAL), Column("expires_at", REAL), _text("seal"),
)

waveform_peaks = Table(
    "waveform_peaks", metadata,
    Column("recording_id", Text, primary_key=True), Column("peaks", Text, nullable=False),
    Column("created_at", REAL, nullable=False),
)

# 9: working with recordings (exports, disposal, tags, QA, reports)
export_jobs = Table(
    "export_jobs", metadata,
    Column("id", Text, primary_key=True), Column("user_name", Text, nullable=False),
    Column("kind", Text, nullable=False), _text("filter", "{}"), _text("fields", "[]"),
    _text("state", "queued"),
    Column("rows_total", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_done", BigInteger, nullable=False, server_default=text("0")),
    Column("bytes", BigInteger, nullable=False, server_default=text("0")),
    _text("file_name"), _text("sha256"), _text("pending", "[]"), _text("error"),
    Column("created_at", REAL, nullable=False), Column("finished_at", REAL), Column("expires_at", REAL),
)

deletion_requests = Table(
    "deletion_requests", metadata,
    Column("id", Text, primary_key=True), Column("requested_by", Text, nullable=False),
    Column("reason", Text, nullable=False), Column("scope", Text, nullable=False),
    _text("recordings", "[]"), _text("state", "requested"), Column("requested_at", REAL, nullable=False),
    _text("approver"), Column("decided_at", REAL), Column("executed_at", REAL), _text("result", "{}"),
)

destruction_records = Table(
    "destruction_records", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("request_id", Text, nullable=False), Column("kind", Text, nullable=False),
    _text("requested_by"), _text("approved_by"), Column("recording_id", Text, nullable=False),
    Column("call_id", Text, nullable=False), Column("sha256", Text, nullable=False),
    Column("destroyed_at", REAL, nullable=False), Column("keep_until", REAL, nullable=False),
)

tag_vocabulary = Table(
    "tag_vocabulary", metadata,
    Column("tag", Text, primary_key=True), _text("kind", "topic"), _text("label_en"), _text("label_zh"),
    _text("created_by"), Column("created_at", REAL, nullable=False),
    Column("retired", BigInteger, nullable=False, server_default=text("0")),
)

qa_scorecards = Table(
    "qa_scorecards", metadata,
    Column("id", BigInteger, Identity(), primary_key=True), Column("name", Text, nullable=False, unique=True),
    Column("criteria", Text, nullable=False), Column("created_by", Text, nullable=False),
    Column("created_at", REAL, nullable=False),
    Column("retired", BigInteger, nullable=False, server_default=text("0")),
    _text("seal"),  # (revision 0022: service.access_seal; '' = not sealed)
)

qa_reviews = Table(
    "qa_reviews", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("call_id", Text, nullable=False), Column("reviewer", Text, nullable=False), _text("agent"),
    Column("scorecard_id", BigInteger, nullable=False), Column("answers", Text, nullable=False),
    Column("score", REAL, nullable=False), _text("comments", "[]"),
    Column("created_at", REAL, nullable=False), Column("updated_at", REAL, nullable=False),
    _text("seal"),  # (revision 0022: service.access_seal; '' = not sealed)
    UniqueConstraint("call_id", "reviewer", "scorecard_id"),
)

report_schedules = Table(
    "report_schedules", metadata,
    Column("id", BigInteger, Identity(), primary_key=True), Column("owner", Text, nullable=False),
    Column("name", Text, nullable=False), Column("period", Text, nullable=False), _text("team"),
    _text("filter", "{}"), _text("mail_to"), Column("created_at", REAL, nullable=False), _text("last_period"),
)

reports = Table(
    "reports", metadata,
    Column("id", BigInteger, Identity(), primary_key=True), Column("schedule_id", BigInteger),
    Column("owner", Text, nullable=False), Column("period", Text, nullable=False),
    Column("period_key", Text, nullable=False), _text("team"), Column("data", Text, nullable=False),
    Column("created_at", REAL, nullable=False),
)

#: what revision 0009 adds: these tables and their indexes
WORK_TABLES = (export_jobs, deletion_requests, destruction_records, tag_vocabulary, qa_scorecards, qa_reviews,
               report_schedules, reports)

#: what revision 0008 adds: these tables, and columns of ``users`` and ``sessions``
CONSOLE_TABLES = (api_tokens, marks, saved_searches, replay_grants, waveform_peaks)
CONSOLE_COLUMNS = {"users": ("lang", "totp_secret", "totp_last_step"), "sessions": ("stage",)}

Index("recordings_call", recordings.c.call_id)
Index("recordings_state", recordings.c.state, recordings.c.tier)
#: what revision 0014 adds (SQLite's migration 14): the ranges retention and migration passes read
DUE_INDEXES = (
    Index("recordings_due", recordings.c.state, recordings.c.retention_class, recordings.c.created_at),
    Index("recordings_retain_until", recordings.c.retain_until,
          sqlite_where=recordings.c.retain_until.isnot(None),
          postgresql_where=recordings.c.retain_until.isnot(None)),
)
Index("hold_recordings_rec", hold_recordings.c.recording_id)
Index("ledger_recording", ledger.c.recording_id, ledger.c.seq)
Index("calls_time", calls.c.started_at.desc(), calls.c.call_id)
#: the agent's index as revision 0018 (SQLite's migration 18) makes it, carrying the other filters'
#: columns in place of the three agent-led indexes of revision 0010 (``catalog.schema_agent``)
AGENT_TIME_INDEX = Index(AGENT_INDEX, calls.c.agent, calls.c.started_at.desc(), calls.c.call_id,
                         *(calls.c[c] for c in AGENT_CARRIED))
#: the filter indexes as revision 0016 (SQLite's migration 16) makes them: each carries the other
#: filters' columns a search it leads can need, after ``started_at DESC, call_id``
#: (``catalog.schema_filters``); the agent-led ones of them are gone since revision 0018
FILTER_INDEXES = {
    name: Index(name, *(calls.c[c] for c in lead), calls.c.started_at.desc(), calls.c.call_id,
                *(calls.c[c] for c in carried))
    for name, (lead, carried) in FILTER_COLUMNS.items() if name not in RETIRED}
#: the number indexes as revision 0024 (SQLite's migration 25) makes them: revision 0015's last 4
#: digits' blind index carrying the full number's (``catalog.schema_last4``), now a partial index of
#: the settled calls, and the same columns for the fresh ones (``catalog.schema_fresh_numbers``)
NUMBER_INDEXES = tuple(
    Index(fresh_index(side) if fresh else settled_index(side), calls.c[f"{side}_bi4"],
          calls.c.started_at.desc(), calls.c.call_id, calls.c[f"{side}_bi"], calls.c.fresh,
          sqlite_where=text(FRESH if fresh else SETTLED), postgresql_where=text(FRESH if fresh else SETTLED))
    for fresh in (False, True) for side in SIDES)
Index("call_numbers_call", call_numbers.c.call_id)
ACCOUNT_INDEXES = (
    Index("sessions_user", sessions.c.user_name),
    Index("qa_assignments_reviewer", qa_assignments.c.reviewer, qa_assignments.c.call_id),
    Index("audit_actor_action", audit_log.c.actor, audit_log.c.action, audit_log.c.at),
)
CONSOLE_INDEXES = (
    Index("api_tokens_user", api_tokens.c.user_name),
    Index("marks_call", marks.c.call_id, marks.c.position_s),
    Index("replay_grants_call", replay_grants.c.call_id, replay_grants.c.requester),
    Index("audit_target", audit_log.c.target, audit_log.c.id),
)
WORK_INDEXES = (
    Index("export_jobs_user", export_jobs.c.user_name, export_jobs.c.created_at),
    Index("deletion_requests_state", deletion_requests.c.state, deletion_requests.c.requested_at),
    Index("destruction_records_request", destruction_records.c.request_id),
    Index("qa_reviews_agent", qa_reviews.c.agent, qa_reviews.c.created_at),
    Index("reports_owner", reports.c.owner, reports.c.created_at),
)

#: what revision 0010 adds (SQLite's migration 10): scoped searches read their agents' calls first.
#: Not in the model since revision 0018 dropped them: made from their DDL (name, statement)
SCOPE_INDEXES_0010 = tuple((name, create_index_sql(name, columns_0010=True)) for name in RETIRED)
#: the tag indexes as revision 0017 makes them, carrying the copied filter columns (revision 0010
#: made ``call_tags_agent`` without them: ``SCOPE_TAG_INDEX_0010``)
TAG_INDEXES = {
    name: Index(name, *(call_tags.c.started_at.desc() if c == "started_at" else call_tags.c[c]
                        for c in columns))
    for name, columns in TAG_INDEX_COLUMNS.items()}
SCOPE_TAG_INDEX_0010 = ("CREATE INDEX IF NOT EXISTS call_tags_agent "
                        "ON call_tags(agent, tag, started_at DESC, call_id)")

def postgres_tag_trigger(copies: tuple[str, ...]) -> str:
    """PostgreSQL's form of the SQLite triggers that keep ``call_tags`` in step with ``calls.tags``
    and the call's ``copies`` (migrations 5, 10 and 17): every writer, raw SQL included, keeps the
    tag index right."""
    columns = "".join(f", {c}" for c in copies)
    values = "".join(f", NEW.{c}" for c in copies)
    return f"""
CREATE OR REPLACE FUNCTION pbxr_call_tags_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tags json := '[]'::json;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        BEGIN
            tags := NEW.tags::json;
        EXCEPTION WHEN others THEN
            tags := '[]'::json;  -- a broken JSON cell tags nothing, as json_valid() does on SQLite
        END;
        IF json_typeof(tags) <> 'array' THEN
            tags := '[]'::json;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM call_tags WHERE call_id = OLD.call_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO call_tags (call_id, tag, started_at{columns})
            SELECT NEW.call_id, t.tag, NEW.started_at{values}
            FROM json_array_elements_text(tags) AS t(tag)
            WHERE t.tag IS NOT NULL
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER call_tags_insert AFTER INSERT ON calls
    FOR EACH ROW EXECUTE FUNCTION pbxr_call_tags_sync();
CREATE TRIGGER call_tags_update AFTER UPDATE OF call_id, tags, started_at{columns} ON calls
    FOR EACH ROW EXECUTE FUNCTION pbxr_call_tags_sync();
CREATE TRIGGER call_tags_delete AFTER DELETE ON calls
    FOR EACH ROW EXECUTE FUNCTION pbxr_call_tags_sync();
"""


#: PostgreSQL storage parameters of the tables that only grow (revision 0013): autovacuum visits
#: them after every 10,000 inserted rows plus 1 %, so counts stay index-only scans
STORAGE_SETTINGS = {table: "autovacuum_vacuum_insert_threshold = 10000, "
                           "autovacuum_vacuum_insert_scale_factor = 0.01"
                    for table in ("calls", "call_tags")}

#: the trigger as revision 0010 made it (the agent copied), and as the model has it (0017)
POSTGRES_TAG_TRIGGER_0010 = postgres_tag_trigger(("agent",))
POSTGRES_TAG_TRIGGER = postgres_tag_trigger(TAG_COPIES)
