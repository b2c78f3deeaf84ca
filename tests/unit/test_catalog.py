import threading
from datetime import UTC, datetime

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.queries import preset_range
from pbx_recorder.errors import CatalogError, NotFound

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC).timestamp()
DAY = 86400


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "cat.db", clock=lambda: NOW)
    rows = [
        dict(call_id="n1_1.1", caller_num="13812345678", callee_num="100", status="answered", agent="alice",
             queue="sales", tags=["vip"], consent_decision="granted", started_at=NOW - 3600),
        dict(call_id="n1_2.2", caller_num="+8613900001234", callee_num="200", status="no_answer",
             agent="bob", queue="support", tags=[], consent_decision="refused", started_at=NOW - DAY - 60),
        dict(call_id="n1_3.3", caller_num="5678", callee_num="13812345678", status="busy", queue="sales",
             tags=["complaint", "vip"], consent_decision="not_required", started_at=NOW - 10 * DAY),
        dict(call_id="n1_4.4", caller_num="02012345678", status="failed", started_at=NOW - 40 * DAY),
    ]
    for r in rows:
        c.upsert_call(r)
    yield c
    c.close()


def ids(rows):
    return [r["call_id"] for r in rows]


def search(cat, **kw):
    return ids(cat.search(CallFilters(**kw), now=NOW, tz=UTC))


def test_presets(cat):
    assert search(cat, preset="today") == ["n1_1.1"]
    assert search(cat, preset="yesterday") == ["n1_2.2"]
    assert search(cat, preset="7d") == ["n1_1.1", "n1_2.2"]
    assert search(cat, preset="30d") == ["n1_1.1", "n1_2.2", "n1_3.3"]
    assert search(cat) == ["n1_1.1", "n1_2.2", "n1_3.3", "n1_4.4"]
    start, end = preset_range("yesterday", NOW, UTC)
    assert end - start == DAY


def test_time_range(cat):
    assert search(cat, start=NOW - 11 * DAY, end=NOW - DAY) == ["n1_2.2", "n1_3.3"]


def test_status_agent_queue_tag_consent_callid(cat):
    assert search(cat, status="busy") == ["n1_3.3"]
    assert search(cat, agent="bob") == ["n1_2.2"]
    assert search(cat, queue="sales") == ["n1_1.1", "n1_3.3"]
    assert search(cat, tag="vip") == ["n1_1.1", "n1_3.3"]
    assert search(cat, tag="complaint", queue="sales") == ["n1_3.3"]
    assert search(cat, consent="refused") == ["n1_2.2"]
    assert search(cat, call_id="n1_4.4") == ["n1_4.4"]
    assert search(cat, limit=1) == ["n1_1.1"]


def test_numbers_full_and_last4(cat):
    assert search(cat, caller="13812345678") == ["n1_1.1"]
    assert search(cat, caller="5678") == ["n1_1.1", "n1_3.3", "n1_4.4"]
    assert search(cat, caller="1234") == ["n1_2.2"]
    assert search(cat, callee="5678") == ["n1_3.3"]
    assert search(cat, caller="+8613900001234") == ["n1_2.2"]
    assert search(cat, caller="99999999999") == []


def test_hostile_filter_values_are_data(cat):
    assert search(cat, agent="x' OR '1'='1") == []
    assert search(cat, tag='"); DROP TABLE calls; --') == []
    assert len(search(cat)) == 4
    with pytest.raises(CatalogError):
        cat.search(CallFilters(status="nonsense"), now=NOW)


def test_upsert_call_updates_only_given_columns(cat):
    cat.upsert_call({"call_id": "n1_1.1", "billsec": 42})
    row = cat.get_call("n1_1.1")
    assert row["billsec"] == 42 and row["agent"] == "alice" and row["tags"] == ["vip"]
    with pytest.raises(CatalogError):
        cat.upsert_call({"call_id": "n1_1.1", "no_such_column": 1})


def test_recordings_and_states(cat):
    cat.upsert_recording({"recording_id": "n1_1.1_call001", "call_id": "n1_1.1", "state": "spooled",
                          "flags": ["duration_mismatch"]})
    cat.mark_state("n1_1.1_call001", "verified", tier="hot", storage_key="k")
    [rec] = cat.recordings_for_call("n1_1.1")
    assert (rec["state"], rec["tier"], rec["flags"]) == ("verified", "hot", ["duration_mismatch"])
    assert cat.recordings_in_state("verified")[0]["recording_id"] == "n1_1.1_call001"
    with pytest.raises(NotFound):
        cat.mark_state("nope", "verified")


def test_live_calls_and_audit(cat):
    cat.save_live_call("n1_9.9", {"state": "recording"})
    cat.save_live_call("n1_9.9", {"state": "paused"})
    assert cat.load_live_calls() == {"n1_9.9": {"state": "paused"}}
    cat.delete_live_call("n1_9.9")
    assert cat.load_live_calls() == {}
    cat.audit("ops", "admin", "calls.search.unmask", "", {"caller": "5678"})
    [entry] = cat.audit_entries()
    assert (entry["actor"], entry["action"]) == ("ops", "calls.search.unmask")
    assert entry["detail"] == {"caller": "5***"}  # numbers are masked before they reach the audit log


def test_threads_share_the_file(tmp_path):
    c = Catalog(tmp_path / "cat.db")
    errors = []

    def work(n):
        try:
            for i in range(20):
                c.upsert_call({"call_id": f"n{n}_{i}.0", "started_at": float(i)})
        except CatalogError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(c.search(CallFilters(limit=1000))) == 80
    c.close()
