import json

import pytest

from pbx_recorder.core.retention import (
    DAY,
    ClassPolicy,
    Hold,
    RecordingInfo,
    capacity_ranking,
    disposal_candidates,
    eviction_refusal,
    hold_reason,
    migration_candidates,
    retain_until,
)

NOW = 1_800_000_000.0
CLASSES = {
    "short": ClassPolicy("short", 30, cold_after_days=7),
    "long": ClassPolicy("long", 3650, 90),
    "forever": ClassPolicy("forever", 0),
    "locked": ClassPolicy("locked", 10, protected=True),
}


def rec(rid="r1", age_days=40.0, cls="short", **kw):
    return RecordingInfo(
        rid, kw.pop("call_id", "pbx1_1.1"), NOW - age_days * DAY, cls, tier=kw.pop("tier", "hot"), **kw
    )


def test_retain_until():
    assert retain_until(1000.0, 1, NOW) == 1000.0 + DAY
    assert retain_until(1000.0, 0, NOW) is None and retain_until(1000.0, None, NOW) is None
    assert retain_until(0, 2, NOW) == NOW + 2 * DAY  # unknown start counts from now


def test_disposal_expired_and_not():
    out = disposal_candidates(
        [rec("old", 40), rec("young", 10), rec("kept", 9999, "forever")], [], NOW, CLASSES
    )
    assert [(c.recording_id, c.allowed) for c in out] == [("old", True)]
    assert "expired 10 day(s) ago" in out[0].reason


def test_disposal_refusals_carry_reasons():
    recs = [
        rec("held-call", call_id="pbx1_9.9"),
        rec("held-flag", legal_hold=True),
        rec("prot", protected=True),
        rec("cls", 20, "locked"),
        rec("held-caller", caller_hash="h1"),
        rec("free"),
    ]
    holds = [
        Hold("H1", "call", "pbx1_9.9"),
        Hold("H2", "caller", "h1"),
        Hold("H3", "call", "x", released_at=NOW - 1),
    ]
    out = {c.recording_id: c for c in disposal_candidates(recs, holds, NOW, CLASSES)}
    assert not out["held-call"].allowed and "H1" in out["held-call"].reason
    assert not out["held-caller"].allowed and "H2" in out["held-caller"].reason
    assert out["held-flag"].reason == "legal hold: legal hold flag set"
    assert out["prot"].reason == "protected" and out["cls"].reason == "protected"
    assert out["free"].allowed


def test_disposal_only_for_live_states_and_explicit_retain_until():
    gone = rec("gone", state="erased")
    explicit = rec("explicit", 40, retain_until=NOW - 5)  # (past its class period: an end only extends it)
    out = disposal_candidates([gone, explicit], [], NOW, CLASSES)
    assert [c.recording_id for c in out] == ["explicit"]


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        ({"region": "eu"}, True),
        ({"region": "us"}, False),
        ({"tags": ["complaint"]}, True),
        ({"from": NOW - 50 * DAY, "to": NOW - 30 * DAY}, True),
        ({"from": NOW - DAY}, False),
        ({"unknown_field": 1}, True),  # cannot narrow: holds (fail safe)
    ],
)
def test_query_holds(query, hit):
    r = rec(region="eu", tags=("complaint",))
    assert (hold_reason(Hold("Q", "query", json.dumps(query)), r, NOW) is not None) is hit


def test_unreadable_hold_holds_everything():
    assert "holds everything" in hold_reason(Hold("Q", "query", "{not json"), rec(), NOW)
    assert "holds everything" in hold_reason(Hold("Q", "weird", "x"), rec(), NOW)


def test_mapping_rows_work_too():
    row = {
        "recording_id": "r",
        "call_id": "c",
        "created_at": NOW - 40 * DAY,
        "retention_class": "short",
        "retain_until": None,
        "state": "stored",
        "legal_hold": 0,
        "protected": 0,
        "tags": '["vip"]',
    }
    (c,) = disposal_candidates(
        [row], [{"hold_id": "H", "scope": "call", "value": "zzz", "released_at": None}], NOW, CLASSES
    )
    assert c.allowed


def test_migration_candidates():
    recs = [
        rec("due", 8),
        rec("young", 3),
        rec("done", 8, state="migrated"),
        rec("long-young", 30, "long"),
        rec("expired", 40),
        rec("expired-held", 40, legal_hold=True),
        rec("forever", 500, "forever"),
    ]
    out = {m.recording_id: m for m in migration_candidates(recs, CLASSES, NOW)}
    assert set(out) == {"due", "expired-held"}
    assert out["due"].from_tier == "hot" and "cold_after_days 7" in out["due"].reason
    assert "never deleted" in out["expired-held"].reason


def test_capacity_ranking_lowest_value_first():
    recs = [
        rec("new", 1),
        rec("old", 100),
        rec("vip-old", 200, tags=("vip",)),
        rec("held-oldest", 300, legal_hold=True),
        rec("prot", 250, protected=True),
        rec("old-big", 100, size=10),
    ]
    order = [r.recording_id for r in capacity_ranking(recs, NOW)]
    assert order == ["old-big", "old", "new", "vip-old", "held-oldest", "prot"]
    assert eviction_refusal(recs[3], [], NOW) == "legal hold: legal hold flag set"
    assert eviction_refusal(recs[0], [Hold("H", "call", "pbx1_1.1")], NOW).startswith("legal hold: hold H")
    assert eviction_refusal(recs[1], [], NOW) is None


def test_capacity_ranking_accepts_rows_without_now():
    rows = [
        {"recording_id": "a", "created_at": 5, "size": 1},
        {"recording_id": "b", "created_at": 1, "size": 1},
    ]
    assert [r["recording_id"] for r in capacity_ranking(rows)] == ["b", "a"]
