import json

import pytest

from pbx_recorder.recording.manifest import SCHEMA_VERSION, Manifest, ManifestFile, cdr_subset


def sample():
    return Manifest(
        recording_id="n1_1.1_call001", call_id="n1_1.1", linkedid="1.1", uniqueids=("1.1", "1.2"),
        kind="call", mode="dual",
        files=(ManifestFile("a-rx.wav", 10, "ab" * 32, 1.5, "read"), ManifestFile("a-tx.wav", 12, "cd" * 32)),
        cdr={"src": "13812345678", "billsec": "42"}, consent={"decision": "granted", "digit": "1"},
        rule="sales", tags=("vip",), retention_class="finance", region="eu",
        recorded_from=1000.0, recorded_to=1060.0, pauses=((1010.0, 1020.0),), flags=("cdr_missing",),
        created_at=1061.0, processing={"encrypted": True})


def test_round_trip_is_exact():
    m = sample()
    assert Manifest.from_json(m.to_json()) == m
    assert Manifest.from_json(m.to_json().decode()) == m


def test_canonical_json_sorted_and_compact():
    raw = sample().to_json()
    data = json.loads(raw)
    assert list(data) == sorted(data)
    assert b", " not in raw and b": " not in raw
    assert data["schema"] == SCHEMA_VERSION
    assert sample().to_json() == raw  # deterministic


def test_derived_values_and_flags():
    m = sample()
    assert m.recorded_span_s == 60.0 and m.paused_s == 10.0 and m.audio_sha256 == "ab" * 32
    m2 = m.with_flags("duration_mismatch", "cdr_missing", "")
    assert m2.flags == ("cdr_missing", "duration_mismatch")


def test_unknown_keys_ignored_and_defaults_filled():
    m = Manifest.from_json(json.dumps({"recording_id": "r", "call_id": "c", "future_field": 1,
                                       "files": [{"name": "x.wav", "size": 1, "sha256": "", "new": 2}]}))
    assert m.files[0].name == "x.wav" and m.kind == "call" and m.recorded_span_s is None


@pytest.mark.parametrize("raw", ["[]", "{}", '{"call_id": "c"}'])
def test_not_a_manifest(raw):
    with pytest.raises(ValueError):
        Manifest.from_json(raw)


def test_cdr_subset():
    assert cdr_subset({"Src": "1", "DST": "2", "lastapp": "Dial"}) == {"src": "1", "dst": "2"}
