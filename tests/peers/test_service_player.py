"""The player's server side: peaks (scoped, audited, computed once, per channel, PCI pauses),
restore, and the player page, for every role (allowed / 403 / 404 out of scope, denials audited)."""

from __future__ import annotations

import json

import pytest

from pbx_recorder.service import peaks as peak_store
from tests.peers.player_support import count_rows, put_wav
from tests.peers.service_support import NOW

# user -> expected status on alice's call c-red-1 (peaks / page: calls.play; restore: calls.restore)
PLAY = {"root-admin": 200, "lead-red": 200, "qa1": 404, "alice": 200, "comp": 200, "counsel": 200, "ops": 403}
RESTORE = {"root-admin": 200, "lead-red": 200, "qa1": 403, "alice": 403, "comp": 200, "counsel": 200,
           "ops": 403}


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    manifest = json.dumps({"recorded_from": NOW - 3600, "pauses": [[NOW - 3590, NOW - 3585]]})
    put_wav(seeded_service, "c-red-1", "r-wav", 20, 2, caller_from=10, manifest=manifest)
    return seeded_service


def _denied(service, user: str, action: str, target: str) -> bool:  # type: ignore[no-untyped-def]
    return any(r["action"] == action and r["target"] == target for r in service.audit_rows(user))


@pytest.mark.parametrize("user", sorted(PLAY))
def test_peaks_by_role(service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login(user)
    answer = client.get("/api/recordings/r-wav/peaks")
    assert answer.status_code == PLAY[user], answer.text
    if PLAY[user] == 200:
        body = answer.json()
        assert body["channels"] == 2 and body["duration"] == 20.0 and body["rate"] == 10.0
        assert len(body["peaks"]) == 200 and len(body["channel_peaks"]) == 2
        caller, agent = body["channel_peaks"]
        assert max(caller[:100]) == 0 and min(caller[100:]) >= 45  # the caller speaks from 10 s
        assert min(agent) >= 20 and max(agent) <= 26  # the agent at a quarter scale throughout
        assert body["pauses"] == [[10.0, 15.0]] and body["customer_channel"] == 0
        assert any(r["action"] == "calls.play" and "peaks" in r["detail"] for r in service.audit_rows(user))
    elif PLAY[user] == 403:
        assert _denied(service, user, "denied:calls.play", "r-wav")
    else:
        assert _denied(service, user, "denied:calls.play", "r-wav")


def test_peaks_out_of_scope_is_the_same_404_as_absent(service) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("alice")
    other = client.get("/api/recordings/r-c-blue-1/peaks")
    absent = client.get("/api/recordings/r-nope/peaks")
    assert other.status_code == absent.status_code == 404 and other.json() == absent.json()
    assert _denied(service, "alice", "denied:calls.play", "r-c-blue-1")
    assert _denied(service, "alice", "calls.play.absent", "r-nope")


def test_peaks_computed_once_then_cached(service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = []
    real = peak_store.compute
    monkeypatch.setattr(peak_store, "compute", lambda *a: calls.append(a) or real(*a))
    client, _ = service.login("lead-red")
    first = client.get("/api/recordings/r-wav/peaks").json()
    second = client.get("/api/recordings/r-wav/peaks").json()
    other, _ = service.login("comp")
    third = other.get("/api/recordings/r-wav/peaks").json()
    assert len(calls) == 1 and first == second == third
    assert count_rows(service.seeded.db, "SELECT COUNT(*) FROM waveform_peaks WHERE recording_id = ?",
                      ("r-wav",)) == 1


def test_peaks_of_audio_that_is_not_wav_is_a_clear_error(service) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("root-admin")
    answer = client.get("/api/recordings/r-c-red-1/peaks")  # the seed's bytes are not a WAV
    assert answer.status_code == 422 and answer.json() == {"error": "no waveform for this recording"}


def test_mono_recording_has_no_customer_channel(service) -> None:  # type: ignore[no-untyped-def]
    put_wav(service, "c-red-2", "r-mono", 5, 1)
    client, _ = service.login("lead-red")
    body = client.get("/api/recordings/r-mono/peaks").json()
    assert body["channels"] == 1 and body["channel_peaks"] == [] and body["customer_channel"] is None


@pytest.mark.parametrize("user", sorted(RESTORE))
def test_restore_by_role(service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, csrf = service.login(user)
    answer = client.post("/api/recordings/r-wav/restore", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == RESTORE[user], answer.text
    if RESTORE[user] == 200:
        assert answer.json() == {"recording_id": "r-wav", "restore_state": "done"}  # a local tier is online
        assert any(r["action"] == "calls.restore" for r in service.audit_rows(user))
    else:
        assert _denied(service, user, "denied:calls.restore", "r-wav")


def test_restore_needs_csrf_and_scope(service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = service.login("lead-red")
    assert client.post("/api/recordings/r-wav/restore").status_code == 403
    other = client.post("/api/recordings/r-c-blue-1/restore", headers={"X-CSRF-Token": csrf})
    assert other.status_code == 404
    assert _denied(service, "lead-red", "denied:calls.restore", "r-c-blue-1")


@pytest.mark.parametrize("user", sorted(PLAY))
def test_player_page_by_role(service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login(user)
    answer = client.get("/recordings/r-wav/play")
    assert answer.status_code == PLAY[user]
    if PLAY[user] != 200:
        assert _denied(service, user, "denied:calls.play", "r-wav")
        return
    html = answer.text
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<script src="/static/player.js" defer></script>' in html and "<style" not in html
    assert " style=" not in html and " onclick" not in html.lower()
    assert 'src="/api/recordings/r-wav/audio"' in html
    assert ('id="download"' in html) == (user in ("root-admin", "lead-red", "counsel"))
    assert ('id="mark-form"' in html) == (user in ("root-admin", "lead-red", "counsel"))


def test_player_page_out_of_scope_404_and_static_files(service) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("alice")
    assert client.get("/recordings/r-c-blue-1/play").status_code == 404
    assert client.get("/recordings/nope/play").status_code == 404
    js = client.get("/static/player.js")
    assert js.status_code == 200 and "textContent" in js.text and "innerHTML" not in js.text
    assert client.get("/static/player.css").status_code == 200


def test_cold_recording_shows_restore_state_not_the_audio(service) -> None:  # type: ignore[no-untyped-def]
    from pbx_recorder.catalog import Catalog

    catalog = Catalog(service.seeded.db)
    catalog.mark_state("r-wav", "migrated", storage_class="GLACIER", restore_state="in_progress")
    catalog.close()
    client, _ = service.login("lead-red")
    html = client.get("/recordings/r-wav/play").text
    assert 'id="cold"' in html and "in_progress" in html and 'id="restore"' in html
    assert "<audio" not in html
    agent, _ = service.login("alice")
    html = agent.get("/recordings/r-wav/play").text
    assert 'id="cold"' in html and 'id="restore"' not in html  # the state only: an agent may not restore


def test_dual_recording_channels_come_from_its_legs(service) -> None:  # type: ignore[no-untyped-def]
    import hashlib
    import io

    from pbx_recorder.catalog import Catalog
    from tests.peers.player_support import tone_blocks

    put_wav(service, "c-red-2", "r-dual", 8, 1, caller_from=0)  # the mix
    objects = [{"role": "audio", "key": "2027/01/c-red-2/r-dual.wav", "sha256": ""}]
    for role, start in (("read", 4), ("write", 99)):  # the caller speaks from 4 s, the agent never
        data = b"".join(tone_blocks(8, 1, caller_from=start))
        key = f"2027/01/c-red-2/r-dual-{role}.wav"
        sha = hashlib.sha256(data).hexdigest()
        service.seeded.tier.put(key, io.BytesIO(data), sha256=sha)
        objects.append({"role": f"leg:{role}", "key": key, "sha256": sha})
    catalog = Catalog(service.seeded.db)
    catalog.mark_state("r-dual", "stored", mode="dual", objects=json.dumps(objects))
    catalog.close()
    client, _ = service.login("lead-red")
    body = client.get("/api/recordings/r-dual/peaks").json()
    read, write = body["channel_peaks"]
    assert body["channels"] == 1 and body["customer_channel"] == 0
    assert max(read[:40]) == 0 and min(read[40:]) >= 45 and max(write) == 0


def test_customer_channel_follows_the_direction() -> None:
    assert peak_store.customer_channel({"direction": "inbound"}, [[1], [2]]) == 0
    assert peak_store.customer_channel({"direction": "outbound"}, [[1], [2]]) == 1
    assert peak_store.customer_channel({"direction": "outbound"}, []) is None
