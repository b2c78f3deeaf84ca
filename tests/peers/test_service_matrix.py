"""Every endpoint x every role: allowed, 403 (verb) or 404 (out of scope), each denial audited;
call-id guessing across scopes answers exactly like an absent id; masking per role."""

from __future__ import annotations

import pytest

from tests.peers.service_support import CALLS, USERS

ALL = {c[0] for c in CALLS}
SCOPE = {"root-admin": ALL, "comp": ALL, "counsel": ALL, "lead-red": {"c-red-1", "c-red-2"},
         "alice": {"c-red-1"}, "qa1": {"c-blue-1"}, "ops": set()}
VIEW = {"root-admin", "lead-red", "qa1", "alice", "comp", "counsel"}
DOWNLOAD = {"root-admin", "lead-red", "counsel"}
UNMASK = {"root-admin", "lead-red", "comp", "counsel"}


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    return seeded_service


def _expect(name: str, call_id: str, verb_ok: bool) -> int:
    if not verb_ok:
        return 403
    return 200 if call_id in SCOPE[name] else 404


def _last_audit(service, name: str) -> dict:  # type: ignore[no-untyped-def]
    return service.audit_rows(name)[-1]


@pytest.mark.parametrize("name", sorted(USERS))
def test_endpoint_role_matrix(service, name: str) -> None:  # type: ignore[no-untyped-def]
    assert set(SCOPE) == set(USERS)
    client, _ = service.login(name)
    listed = client.get("/api/calls", params={"limit": 100})
    if name in VIEW:
        assert listed.status_code == 200
        assert {c["call_id"] for c in listed.json()["calls"]} == SCOPE[name]
    else:
        assert listed.status_code == 403
        assert _last_audit(service, name)["action"] == "denied:calls.view"
    for call_id in sorted(ALL):
        for path, ok in ((f"/api/calls/{call_id}", name in VIEW),
                         (f"/api/recordings/r-{call_id}/audio", name in VIEW),
                         (f"/api/recordings/r-{call_id}/audio?download=1", name in DOWNLOAD),
                         (f"/api/calls/{call_id}?unmask=1", name in UNMASK)):
            answer = client.get(path)
            expected = _expect(name, call_id, ok)
            assert answer.status_code == expected, (name, path, answer.text)
            last = _last_audit(service, name)
            if expected == 200:
                assert not last["action"].startswith("denied:"), (name, path)
                assert "192.0.2.7" in last["detail"]
            else:  # every denial is audited, with the client address
                assert last["action"].startswith("denied:"), (name, path, last)
                assert last["target"] in (call_id, f"r-{call_id}") and "192.0.2.7" in last["detail"]


def test_a_call_outside_the_scope_answers_like_an_absent_one(service) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("alice")
    hidden, absent = client.get("/api/calls/c-blue-1"), client.get("/api/calls/c-nonexistent")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.content == absent.content and hidden.headers == absent.headers
    hidden_audio = client.get("/api/recordings/r-c-blue-1/audio")
    absent_audio = client.get("/api/recordings/r-nonexistent/audio")
    assert hidden_audio.status_code == absent_audio.status_code == 404
    assert hidden_audio.content == absent_audio.content
    # the auditor can tell them apart
    actions = [r["action"] for r in service.audit_rows("alice")[-4:]]
    assert actions == ["denied:calls.view", "calls.view.absent", "denied:calls.play", "calls.play.absent"]


def test_numbers_are_masked_unless_a_role_with_unmask_asks(service) -> None:  # type: ignore[no-untyped-def]
    agent, _ = service.login("alice")
    row = agent.get("/api/calls/c-red-1").json()
    assert "12345678" not in row["caller_num"] and row["caller_num"].endswith("5678")
    assert agent.get("/api/calls/c-red-1?unmask=1").status_code == 403
    admin, _ = service.login("root-admin")
    assert admin.get("/api/calls/c-red-1").json()["caller_num"] != "+8613812345678"
    assert admin.get("/api/calls/c-red-1?unmask=1").json()["caller_num"] == "+8613812345678"
    assert service.audit_rows("root-admin")[-1]["action"] == "calls.view.unmask"
    listed = admin.get("/api/calls?unmask=1").json()["calls"]
    assert "+8613812345678" in {c["caller_num"] for c in listed}
    assert all("numbers" not in c and "caller_bi" not in c for c in listed)


def test_hostile_caller_name_comes_back_as_json_text(service) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("root-admin")
    answer = client.get("/api/calls/c-red-1")
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert answer.json()["caller_name"] == "<script>alert(1)</script>"


def test_without_a_session_everything_is_401(service) -> None:  # type: ignore[no-untyped-def]
    client = service.client()
    for path in ("/api/calls", "/api/calls/c-red-1", "/api/recordings/r-c-red-1/audio", "/api/session"):
        assert client.get(path).status_code == 401
