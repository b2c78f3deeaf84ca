"""Bulk writes whose new calls' tokens, blind indexes and seals, and whose manifests' signatures
and hashes, a helper process makes ahead (``recording.sign_ahead`` given the catalog's number
keys): the writer takes them without making them again, except one in ``CHECK_EVERY`` (the
first of each batch among them), which it makes itself and compares.  A helper whose result is
not the writer's own fails the batch: nothing of it is committed, and the writer writes it
again alone and starts no new helper.  A rotated catalog key gets a new helper."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog.number_protection import NumberCipher, token_key_id
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.recording import ledger, sign_ahead, signing
from tests.peers.test_catalog_sign_ahead import N, _batch, _check
from tests.unit.test_catalog_bulk_once import MASTER, _catalog, _hooks, _opened

OTHER_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """What the writer's process made itself: tokens (``seal_call_opened``) and manifests'
    canonical bytes (``manifest_bytes``); and the takes of each batch, added up as it finishes."""
    seen = {"tokens": 0, "manifest_bytes": 0, "taken": 0, "checked": 0, "named": 0}
    seal_call_opened = NumberProtection.seal_call_opened
    named_index = NumberProtection.named_index
    manifest_bytes = signing.manifest_bytes
    finish = sign_ahead.Presigned.finish

    def counting_tokens(self: NumberProtection, *args: Any) -> Any:
        seen["tokens"] += 1
        return seal_call_opened(self, *args)

    def counting_named(self: NumberProtection, *values: Any) -> Any:
        seen["named"] += any(v not in (None, "", {}) for v in values)  # (a manifest names none new here)
        return named_index(self, *values)

    def counting_bytes(manifest: Any) -> bytes:
        seen["manifest_bytes"] += 1
        return manifest_bytes(manifest)

    def counting_finish(self: sign_ahead.Presigned) -> None:
        seen["taken"] += self.taken
        seen["checked"] += self.checked
        finish(self)

    monkeypatch.setattr(NumberProtection, "seal_call_opened", counting_tokens)
    monkeypatch.setattr(NumberProtection, "named_index", counting_named)
    monkeypatch.setattr(signing, "manifest_bytes", counting_bytes)
    monkeypatch.setattr(sign_ahead.Presigned, "finish", counting_finish)
    return seen


def test_new_calls_are_written_with_what_the_helper_made_and_the_rows_are_the_writers_own(
        tmp_path: Path, made: dict[str, int]) -> None:
    alone, ahead = _catalog(tmp_path / "alone.db"), _catalog(tmp_path / "ahead.db")
    for first in (0, N):
        assert alone.write_calls(_batch(first), after_store=_hooks()) == N
    made.update(tokens=0, manifest_bytes=0, named=0)
    ahead.enable_sign_ahead()
    try:
        for first in (0, N):
            assert ahead.write_calls(_batch(first), after_store=_hooks()) == N
        helper = ahead._sign_ahead
        assert helper is not None and helper.prepares and not helper.broken
        # a call and a manifest each, taken as made: the writer made only the checked ones
        assert made["taken"] == 4 * N
        per_kind = -(-N // sign_ahead.CHECK_EVERY)  # a batch's 1st, 33rd, 65th ... call and manifest
        assert made["checked"] == 2 * 2 * per_kind
        assert made["tokens"] + made["manifest_bytes"] == made["checked"]
        assert made["tokens"] == made["manifest_bytes"] == 2 * per_kind
        assert made["named"] == made["tokens"]  # the numbers a call names: indexed by the helper too
        # the same rows as the writer alone writes: fields opened, blind indexes, seals,
        # signatures, the ledger, the named numbers
        assert _opened(alone) == _opened(ahead)
        _check(ahead, 2 * N)
        tokens = [r[0] for r in ahead._conn().execute("SELECT numbers FROM calls")]
        assert len(tokens) == 2 * N and {token_key_id(t) for t in tokens} == {"m1"}
    finally:
        ahead.close()
        alone.close()


def _forging(monkeypatch: pytest.MonkeyPatch, what: str) -> list[str]:
    """The helper's first checked result of each batch replaced by one the writer does not make."""
    forged: list[str] = []
    take_call, take_manifest = sign_ahead.Presigned.take_call, sign_ahead.Presigned.take_manifest

    def forge_call(self: sign_ahead.Presigned, call_id: str, row: Any) -> Any:
        got = take_call(self, call_id, row)
        if got is None or not got.check or forged or what == "manifest":
            return got
        forged.append(call_id)
        if what == "seal":
            return sign_ahead.PreparedCall(got.stored, got.opened, "Zm9yZ2Vk", got.named, True)
        if what == "named":  # one number of the CDR indexed under another number's index
            named = dict(got.named)
            first, second = sorted(named)[:2]
            named[first] = named[second]
            return sign_ahead.PreparedCall(got.stored, got.opened, got.seal, named, True)
        other = NumberProtection(NumberCipher(lambda _key_id: bytes(32), "m1"), _catalog_numbers_index())
        stored, opened = other.seal_call_opened(call_id, {**got.opened})
        return sign_ahead.PreparedCall({**got.stored, "numbers": stored["numbers"]}, got.opened, got.seal,
                                       got.named, True)

    def forge_manifest(self: sign_ahead.Presigned, recording_id: str, manifest: Any) -> Any:
        got = take_manifest(self, recording_id, manifest)
        if got is None or not got.check or forged or what != "manifest":
            return got
        forged.append(recording_id)
        signature = signing.base64.b64encode(OTHER_KEY.sign(got.data)).decode("ascii")
        return sign_ahead.PreparedManifest(signature, got.sha256, got.data, True)

    monkeypatch.setattr(sign_ahead.Presigned, "take_call", forge_call)
    monkeypatch.setattr(sign_ahead.Presigned, "take_manifest", forge_manifest)
    return forged


def _catalog_numbers_index() -> Any:
    from tests.unit.test_catalog_bulk_once import _numbers

    return _numbers().index


@pytest.mark.parametrize("what", ["seal", "token", "named", "manifest"])
def test_a_helper_result_that_is_not_the_writers_fails_the_batch_which_is_written_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, what: str) -> None:
    alone, ahead = _catalog(tmp_path / "alone.db"), _catalog(tmp_path / "ahead.db")
    ahead.enable_sign_ahead()
    try:
        assert alone.write_calls(_batch(0), after_store=_hooks()) == N
        assert ahead.write_calls(_batch(0), after_store=_hooks()) == N  # the helper is up, trusted
        helper = ahead._sign_ahead
        assert helper is not None and helper.prepares
        forged = _forging(monkeypatch, what)
        with caplog.at_level(logging.ERROR, logger="pbx_recorder.catalog.many_calls"):
            assert ahead.write_calls(_batch(N), after_store=_hooks()) == N
        assert forged and "written again without it" in caplog.text and "not the writer's" in caplog.text
        assert helper.broken and ahead._sign_ahead is helper  # stopped, and no new one started
        assert alone.write_calls(_batch(N), after_store=_hooks()) == N
        assert ahead.write_calls(_batch(2 * N), after_store=_hooks()) == N  # the writer alone
        assert alone.write_calls(_batch(2 * N), after_store=_hooks()) == N
        # the failed attempt left nothing: each call once, each ledger entry once, in one chain
        assert _opened(alone) == _opened(ahead)
        assert ledger.verify_chain(ahead._conn()) == []
        _check(ahead, 3 * N)
    finally:
        ahead.close()
        alone.close()


def test_a_rotated_catalog_key_gets_a_new_helper(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    try:
        assert catalog.write_calls(_batch(0), after_store=_hooks()) == N
        first = catalog._sign_ahead
        assert first is not None and first.prepares
        # the ring's current key becomes m2 (``keys rotate``): the old helper's key is not current
        assert catalog.numbers is not None
        ring = {"m1": MASTER, "m2": bytes(range(32))}
        catalog.numbers.cipher = NumberCipher(ring.__getitem__, "m2")
        assert catalog.write_calls(_batch(N), after_store=_hooks()) == N
        second = catalog._sign_ahead
        assert second is not None and second is not first and second.prepares and not second.broken
        assert first._proc is None  # the old one was stopped
        ids = [token_key_id(r[0]) for r in catalog._conn().execute("SELECT numbers FROM calls")]
        assert sorted(ids) == ["m1"] * N + ["m2"] * N
        rows = catalog._conn().execute("SELECT call_id FROM calls").fetchall()
        assert all(catalog.get_call(r[0]) for r in rows)  # every token opens under the ring
    finally:
        catalog.close()
