"""Four-eyes replay checks the call row's seal before it trusts the row.

Whether a call needs a second person's grant is read from its row: its rule and the tags its rule
set (``calls.rule``, ``calls.rule_tags``, both sealed).  An insider who can write the catalog but
not sign (the threat ``verify`` is built for) could blank them and play, download or export the
call without a grant; ``verify`` reported the broken seal, but only when it ran.  Now the service
checks the stored row's seal whenever a call does not look sensitive: a broken seal, a removed
one or numbers that no longer match their blind indexes make it need a grant (fail closed), with
an ALERT.  An intact call is not affected, and without a signing key nothing changes.  Both engines.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from tamper_support import NOW, indexing_deployment

from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.core.rules import rules_from_dicts
from pbx_recorder.recording.signing import load_public_key, public_key_path
from pbx_recorder.service import api_replay
from pbx_recorder.service.context import ServiceContext

TAGGED, BOARD, PLAIN = "n1_1.1", "n1_2.2", "n1_3.3"


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    d.call(TAGGED, rule="vip-line", queue="sales", rule_tags='["vip"]')  # sensitive by its rule's tags
    d.call(BOARD, caller="4917000000002", rule="board", rule_tags="[]")  # sensitive by its rule
    d.call(PLAIN, caller="4917000000003", rule="", rule_tags="[]")
    yield d
    d.close()


def _ctx(d, *, key: bool = True) -> ServiceContext:
    config = replace(d.config, rules=rules_from_dicts([
        {"name": "vip-line", "match": {"queue": "sales"}, "action": {"record": "yes", "tags": ["vip"]}}]))
    ctx = ServiceContext(d.catalog, {}, web=replace(d.config.web, four_eyes=FourEyesConfig(
        tags=("vip",), rules=("board",))), config=config)
    if key:
        ctx.seal_key = load_public_key(d.sign_key)
    return ctx


def _sensitive(d, ctx: ServiceContext, call_id: str) -> bool:
    return api_replay.sensitive(ctx, dict(d.catalog.get_call(call_id)))


def test_intact_calls_are_judged_by_their_rows(dep) -> None:
    ctx = _ctx(dep)
    assert _sensitive(dep, ctx, TAGGED) and _sensitive(dep, ctx, BOARD)
    assert not _sensitive(dep, ctx, PLAIN)


@pytest.mark.parametrize("call_id, edits", [
    (TAGGED, ["rule_tags = '[]'"]),  # the rule's tags blanked ...
    (TAGGED, ["rule = '', rule_tags = ''"]),  # ... or the row made to look written before schema 20
    (BOARD, ["rule = 'other'"]),  # the four-eyes rule renamed away
    (BOARD, ["rule = 'other'", "seal = ''"]),  # and the seal removed as well
], ids=["tags-blanked", "tags-unrecorded", "rule-renamed", "seal-removed"])
def test_an_insiders_edit_of_the_row_still_needs_a_grant(dep, call_id, edits, caplog) -> None:
    dep.sql(*(f"UPDATE calls SET {e} WHERE call_id = '{call_id}'" for e in edits))
    assert not _sensitive(dep, _ctx(dep, key=False), call_id)  # what the row alone says now
    with caplog.at_level(logging.ERROR):
        assert _sensitive(dep, _ctx(dep), call_id)
    assert any("ALERT" in r.getMessage() and call_id in r.getMessage() for r in caplog.records)


def test_the_service_loads_the_public_key_of_the_signing_key(dep, tmp_path) -> None:
    ctx = ServiceContext.from_config(dep.config)
    try:
        assert ctx.seal_key is not None
        assert ctx.seal_key.public_bytes_raw() == load_public_key(dep.sign_key).public_bytes_raw()
    finally:
        ctx.catalog.close()
    # the service's account may not read the private key: the .pub file is enough
    pub = public_key_path(dep.config.signing.key_file)
    assert pub.is_file()


def test_a_sealed_row_replaced_by_a_bare_stand_in_still_needs_a_grant(dep, caplog) -> None:
    """The row deleted and a row naming only the call id put in its place (no metadata, no seal:
    nothing to verify in it); the ledger says the call was sealed."""
    dep.sql(f"DELETE FROM calls WHERE call_id = '{TAGGED}'",
            f"INSERT INTO calls (call_id) VALUES ('{TAGGED}')")
    assert not _sensitive(dep, _ctx(dep, key=False), TAGGED)
    with caplog.at_level(logging.ERROR):
        assert _sensitive(dep, _ctx(dep), TAGGED)
    assert any("replaced by an unsealed one" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("edits", [
    ["call_id = '{plain}'"],  # the recording moved to an ordinary call ...
    ["call_id = '{plain}'", "storage_key = replace(storage_key, '{tagged}', '{plain}')"],  # ... and its key
    ["call_id = '{plain}'", "manifest = ''"],  # ... with the catalog's manifest copy dropped
], ids=["call-id", "call-id-and-key", "call-id-no-copy"])
def test_a_recording_moved_to_another_call_is_served_to_nobody(dep, edits, caplog) -> None:
    rid = dep.record(TAGGED)
    ctx = _ctx(dep)
    assert api_replay.recording_binding(ctx, dep.catalog.get_recording(rid)) == ""
    listed = api_replay.bound_recordings(ctx, dep.catalog.recordings_for_call(TAGGED))
    assert [r["recording_id"] for r in listed] == [rid]
    dep.sql(*(f"UPDATE recordings SET {e.format(plain=PLAIN, tagged=TAGGED)} WHERE recording_id = '{rid}'"
              for e in edits))
    rec = dep.catalog.get_recording(rid)
    assert rec["call_id"] == PLAIN and not _sensitive(dep, ctx, PLAIN)  # what the rows alone say
    with caplog.at_level(logging.ERROR):
        assert api_replay.recording_binding(ctx, rec)
    assert any("ALERT" in r.getMessage() and rid in r.getMessage() for r in caplog.records)
    # the call page and GET /api/calls/{id} do not list it under the call it was moved to
    assert api_replay.bound_recordings(ctx, dep.catalog.recordings_for_call(PLAIN)) == []


@pytest.mark.sqlite_only  # PostgreSQL's typed columns refuse the bytes an insider can put in SQLite's
def test_a_cell_no_writer_makes_is_a_problem_not_an_error(dep) -> None:
    dep.sql(f"UPDATE calls SET agent = X'00ff' WHERE call_id = '{PLAIN}'")
    assert _sensitive(dep, _ctx(dep), PLAIN)  # fail closed, not a 500


def test_four_eyes_without_a_readable_public_key_refuses_to_start(dep) -> None:
    from pbx_recorder.errors import ConfigError

    key_file = dep.config.signing.key_file
    public_key_path(key_file).unlink()
    key_file.rename(key_file.with_name("elsewhere.pem"))  # the service's account cannot read it
    config = replace(dep.config, web=replace(dep.config.web, four_eyes=FourEyesConfig(tags=("vip",))))
    with pytest.raises(ConfigError) as err:
        ServiceContext.from_config(config)
    assert err.value.key == "signing.key_file"
    ServiceContext.from_config(dep.config).catalog.close()  # four-eyes off: starts (nothing to check)


def test_a_grant_row_written_by_hand_without_a_second_person_is_not_honoured(dep) -> None:
    from pbx_recorder.service import four_eyes

    conn = dep.catalog.connection()
    insert = ("INSERT INTO replay_grants (call_id, requester, reason, requested_at, state, approver, "
              "decided_at, expires_at) VALUES ('{call}', '{who}', 'x', {at}, 'granted', '{by}', {at}, {end})")
    dep.sql(insert.format(call=TAGGED, who="mallory", by="mallory", at=NOW, end=NOW + 3600),
            insert.format(call=TAGGED, who="eve", by="", at=NOW, end=NOW + 3600))
    assert four_eyes.open_grant(conn, TAGGED, "mallory", NOW) is None
    assert four_eyes.open_grant(conn, TAGGED, "eve", NOW) is None
    granted = four_eyes.ask(conn, TAGGED, "alice", "complaint", NOW)
    four_eyes.decide(conn, granted, "auditor", True, NOW, 30)  # the way a grant is made
    assert four_eyes.open_grant(conn, TAGGED, "alice", NOW + 1) is not None


@pytest.mark.parametrize("four_eyes_on", [True, False])
def test_a_corrupt_public_key_file_is_a_config_error_only_with_four_eyes(dep, four_eyes_on) -> None:
    from pbx_recorder.errors import ConfigError

    public_key_path(dep.config.signing.key_file).write_text("not a key\n")
    dep.config.signing.key_file.rename(dep.config.signing.key_file.with_name("elsewhere.pem"))
    web = replace(dep.config.web, four_eyes=FourEyesConfig(tags=("vip",) if four_eyes_on else ()))
    config = replace(dep.config, web=web)
    if four_eyes_on:
        with pytest.raises(ConfigError):
            ServiceContext.from_config(config)
    else:
        ctx = ServiceContext.from_config(config)
        assert ctx.seal_key is None
        ctx.catalog.close()
