"""A second person's decision is made by that person logged in, never with an API token (session-45
review): an account holding ``tokens.manage`` mints tokens for other accounts, and an admin who
minted one for the compliance officer granted their own replay request, or approved their own
deletion request, under the officer's name."""

from __future__ import annotations

import json

import pytest

from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.core.access_policy import HOST_ADMIN
from pbx_recorder.service import user_admin
from tests.peers.authx_support import bearer
from tests.peers.disposal_support import disposal_service
from tests.peers.service_support import make_service


def _auditor_token_minted_by_the_admin(svc) -> str:  # type: ignore[no-untyped-def]
    """The officer's token: since session 51 the console refuses to mint it (an approver's
    credential), so it is minted where it still can be, on the host; a decision made with it is
    refused all the same."""
    admin, csrf = svc.login("root-admin")
    refused = admin.post("/api/tokens", json={"user": "comp", "role": "auditor", "days": 1, "label": "x"},
                         headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 409 and "on the host" in refused.json()["error"], refused.text
    token, _ = user_admin.create_token(svc.ctx.accounts(), "comp", "auditor", 1, "x", max_days=365,
                                       actor="root", actor_role=HOST_ADMIN, now=svc.clock.now)
    return token


@pytest.fixture
def four_eyes(tmp_path):  # type: ignore[no-untyped-def]
    service = make_service(tmp_path, four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30))
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def test_a_replay_grant_is_refused_to_a_token(four_eyes) -> None:  # type: ignore[no-untyped-def]
    svc = four_eyes
    admin, csrf = svc.login("root-admin")
    asked = admin.post("/api/calls/c-blue-1/replay-requests", json={"reason": "complaint #42"},
                       headers={"X-CSRF-Token": csrf})
    assert asked.status_code == 201, asked.text
    token = _auditor_token_minted_by_the_admin(svc)
    answer = svc.client().post(f"/api/replay-requests/{asked.json()['id']}/grant", headers=bearer(token))
    assert answer.status_code == 403  # before: 200, the grant recorded with comp as approver
    denied = svc.audit_rows("comp")[-1]
    assert denied["action"] == "denied:calls.replay_approve"
    assert json.loads(denied["detail"])["reason"] == "bearer"
    assert admin.get("/api/recordings/r-c-blue-1/audio").status_code == 403  # still no grant
    comp, ccsrf = svc.login("comp")  # the officer, logged in, decides
    assert comp.post(f"/api/replay-requests/{asked.json()['id']}/grant",
                     headers={"X-CSRF-Token": ccsrf}).status_code == 200


def test_a_deletion_approval_is_refused_to_a_token(tmp_path) -> None:
    svc = disposal_service(tmp_path)
    try:
        admin, csrf = svc.login("root-admin")
        asked = admin.post("/api/deletions", json={"call_ids": ["c-red-1"], "reason": "by mistake"},
                           headers={"X-CSRF-Token": csrf})
        assert asked.status_code == 201, asked.text
        token = _auditor_token_minted_by_the_admin(svc)
        for action in ("approve", "refuse", "execute"):
            answer = svc.client().post(f"/api/deletions/{asked.json()['id']}/{action}", json={},
                                       headers=bearer(token))
            assert answer.status_code == 403, (action, answer.text)
        assert svc.seeded.tier.stat("2027/01/c-red-1/r-c-red-1.wav") is not None
        assert svc.audit_rows("comp")[-1]["action"] == "denied:calls.delete_approve"
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]
