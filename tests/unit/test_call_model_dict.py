"""call_to_dict is a fast asdict: same content, and a deep copy (the snapshot never aliases the call)."""

from __future__ import annotations

import json
from dataclasses import asdict

from pbx_recorder.core.call_model import Call, Recording, call_from_dict, call_to_dict


def _busy_call() -> Call:
    call = Call("n1_abc", "n1", "abc", 1.0, 2.0, state="recording",
                legs={"u1": "sofia/a", "u2": "sofia/b"}, live=["u1"], created=["u1", "u2"],
                decision={"record": True, "tags": ["a"], "explanation": ["x"]},
                consent_evidence={"digits": ["1"], "prompt_version": "v1"}, vip=True, answered_at=3.5,
                cdrs=[{"disposition": "ANSWERED"}], flags=["transferred"])
    call.recordings = [
        Recording("n1_abc_call001", "call", 1, "stereo", "u1", "/m/a.wav", leg_paths=["/m/r.wav"],
                  pauses=[[4.0, None]], flags=["cut"]),
        Recording("n1_abc_consent001", "consent", 2, "mixed", "u1", "/m/c.wav", state="stopped"),
    ]
    return call


def test_equal_to_asdict_and_round_trips() -> None:
    call = _busy_call()
    data = call_to_dict(call)
    assert data == asdict(call)
    assert json.dumps(data, sort_keys=True) == json.dumps(asdict(call), sort_keys=True)
    assert call_to_dict(call_from_dict(json.loads(json.dumps(data)))) == data


def test_snapshot_is_a_deep_copy() -> None:
    call = _busy_call()
    data = call_to_dict(call)
    data["recordings"][0]["pauses"][0][1] = 9.0
    data["decision"]["tags"].append("b")
    data["legs"]["u3"] = "x"
    assert call.recordings[0].pauses == [[4.0, None]] and call.decision is not None
    assert call.decision["tags"] == ["a"] and "u3" not in call.legs


def test_no_per_value_deepcopy(monkeypatch) -> None:
    """What makes it cheap, held without timing it (speed is the benches' business): neither
    ``asdict`` nor ``copy.deepcopy`` runs for a call of plain JSON-like fields."""
    import copy

    import pbx_recorder.core.call_model as model

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("slow path taken")

    call, expected = _busy_call(), asdict(_busy_call())
    monkeypatch.setattr(model, "asdict", refuse)
    monkeypatch.setattr(copy, "deepcopy", refuse)
    assert call_to_dict(call) == expected
