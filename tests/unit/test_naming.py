import re

import pytest

from pbx_recorder.core.naming import (
    make_call_id,
    make_recording_id,
    mixed_path,
    parse_storage_key,
    recording_paths,
    safe_component,
    split_call_id,
    storage_key,
)

HOSTILE = ["../../etc/passwd", "a\x00b", "line1\nline2", "x" * 10_000, "ünïcødé ☎", "", ".", "..",
           "-rf", "a--b", "a b", "a_b", "a/b", "a\\b", "\udcff", "....", "_x", "a" * 64, "a" * 65]
SAFE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@pytest.mark.parametrize("text", HOSTILE)
def test_safe_component_bounded_and_safe(text):
    out = safe_component(text)
    assert SAFE_RE.fullmatch(out)
    assert out not in (".", "..")
    assert len(out) <= 64
    assert "/" not in out and "\x00" not in out


def test_safe_component_keeps_safe_text():
    assert safe_component("1732200000.42") == "1732200000.42"
    assert safe_component("pbx-1") == "pbx-1"


def test_safe_component_distinct_inputs_stay_distinct():
    outs = {safe_component(t) for t in HOSTILE}
    assert len(outs) == len(set(HOSTILE))
    assert safe_component("x" * 10_000) != safe_component("x" * 10_001)
    # an already-safe string can never look like an encoded one
    encoded = safe_component("a b")
    assert safe_component(encoded) != encoded


def test_call_id_is_node_plus_linkedid_and_unambiguous():
    assert make_call_id("pbx1", "1732200000.42") == "pbx1_1732200000.42"
    assert make_call_id("a_b", "c") != make_call_id("a", "b_c")
    assert make_call_id("pbx1", "1.1") != make_call_id("pbx2", "1.1")
    for text in HOSTILE:
        cid = make_call_id(text, text)
        node, linked = split_call_id(cid)
        assert cid.count("_") == 1 and node and linked


def test_recording_id():
    cid = make_call_id("pbx1", "1732200000.42")
    assert make_recording_id(cid, "call", 1) == "pbx1_1732200000.42_call001"
    assert make_recording_id(cid, "consent", 2).endswith("_consent002")
    with pytest.raises(ValueError):
        make_recording_id(cid, "../x", 1)
    with pytest.raises(ValueError):
        make_recording_id("nounderscore", "call", 1)


def test_recording_paths_under_monitor_dir():
    cid = make_call_id("pbx1", "../../etc")
    rid = make_recording_id(cid, "call", 1)
    (one,) = recording_paths("/var/spool/asterisk/monitor", cid, rid, 1763719200.5, "mixed")
    assert one.startswith("/var/spool/asterisk/monitor/") and one.endswith(".wav")
    assert ".." not in one.split("/")
    legs = recording_paths("/mon", cid, rid, 1763719200, "dual")
    assert len(legs) == 2 and legs[0].endswith("-rx.wav") and legs[1].endswith("-tx.wav")
    assert mixed_path("/mon", rid, 1763719200) == recording_paths("/mon", cid, rid, 1763719200, "mixed")[0]
    with pytest.raises(ValueError):
        recording_paths("relative", cid, rid, 0, "mixed")
    with pytest.raises(ValueError):
        recording_paths("/mon", cid, rid, 0, "surround")


@pytest.mark.parametrize("region", ["", "eu-west", "us.east_1"])
@pytest.mark.parametrize("linkedid", ["1763719200.42", "weird id/../x", "x" * 500, "_"])
def test_storage_key_round_trip(region, linkedid):
    cid = make_call_id("pbx-node.1", linkedid)
    rid = make_recording_id(cid, "consent", 7)
    started = 1763719263.9  # 2025-11-21 10:01:03 UTC
    key = storage_key(cid, rid, started, "wav", region)
    parsed = parse_storage_key(key)
    assert (parsed.region, parsed.call_id, parsed.recording_id, parsed.ext) == (region, cid, rid, "wav")
    assert parsed.started_at == 1763719263.0
    again = storage_key(parsed.call_id, parsed.recording_id, parsed.started_at, parsed.ext, parsed.region)
    assert again == key
    assert "2025/11/21/" in key and "_100103_" in key


def test_storage_key_is_utc_date_partitioned():
    cid = make_call_id("pbx1", "1.2")
    key = storage_key(cid, make_recording_id(cid, "call", 1), 1767225599, "opus", "eu")
    assert key == "eu/2025/12/31/pbx1_1.2_235959_pbx1_1.2_call001.opus"


@pytest.mark.parametrize("bad", ["", "2025/11/21/x.wav", "../2025/11/21/a_b_101010_r.wav",
                                 "2025/13/40/a_b_101010_r.wav", "2025/11/21/a_b_101010_r.w/v"])
def test_parse_storage_key_rejects(bad):
    with pytest.raises(ValueError):
        parse_storage_key(bad)


def test_stereo_recordings_are_raw_interleaved_files():
    from pbx_recorder.core.naming import make_call_id, make_recording_id, recording_paths

    cid = make_call_id("pbx1", "1700000000.1")
    rid = make_recording_id(cid, "call", 1)
    (path,) = recording_paths("/var/spool/asterisk/monitor", cid, rid, 1700000000.0, "stereo")
    assert path.endswith(".raw")
    (mixed,) = recording_paths("/var/spool/asterisk/monitor", cid, rid, 1700000000.0, "mixed")
    assert mixed.endswith(".wav")
