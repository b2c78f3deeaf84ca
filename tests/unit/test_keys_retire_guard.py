"""``keys rotate --retire-old`` never retires a key a catalog value still needs, and a running
recorder's number cipher stops writing under a key that left the ring (fails closed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.catalog.number_protection import NumberCipher, token_key_id
from pbx_recorder.cli import cmd_keys
from pbx_recorder.config import load_config
from pbx_recorder.errors import CryptoError
from pbx_recorder.lifecycle.journal import open_catalog
from storage.keyring import KeyRing
from tests.unit.test_keys_layout import _config, run_fixture  # noqa: F401  (the run fixture)

OLD, NEW = "k2026-01", "k2027-01"


def _plant_old_token(config_path: Path, call_id: str) -> None:
    """What a recorder still on the old key (its derived key cached) writes meanwhile."""
    old_key = (config_path.parent / "keys" / "master" / f"{OLD}.key")
    if not old_key.exists():
        old_key = old_key.parent / "retired" / old_key.name
    key = old_key.read_bytes()
    token = NumberCipher(lambda kid: key, OLD).encrypt('{"caller_num": "+4915112345678"}',
                                                      f"live_calls/{call_id}")
    conn = open_catalog(load_config(config_path, env={}).catalog.target)
    try:
        conn.execute("INSERT INTO live_calls (call_id, state, updated_at) VALUES (?, ?, ?)",
                     (call_id, token, 1.0))
        if conn.in_transaction:
            conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.fixture()
def rotated(tmp_path, run, monkeypatch):
    """Keys made, rotated to NEW (no retirement), the configuration switched to NEW."""
    monkeypatch.setattr(cmd_keys.time, "sleep", lambda s: None)
    config = _config(tmp_path)
    assert run(config, "keys", "init")[0] == 0
    open_catalog(tmp_path / "catalog.db").close()
    assert run(config, "keys", "rotate", "--to", NEW)[0] == 0
    config.write_text(config.read_text().replace(f"{OLD}.key", f"{NEW}.key"))
    return config, KeyRing(tmp_path / "keys" / "master")


def test_retire_old_is_refused_while_the_configuration_names_another_key(tmp_path, run):
    config = _config(tmp_path)
    assert run(config, "keys", "init")[0] == 0
    open_catalog(tmp_path / "catalog.db").close()
    code, out = run(config, "keys", "rotate", "--to", NEW, "--retire-old")
    assert code == 2, out
    assert f"current master key is {OLD}, not {NEW}" in out and f"{NEW}.key" in out
    assert KeyRing(tmp_path / "keys" / "master").ids() == [OLD]  # nothing retired, nothing rotated


def test_a_value_written_under_the_old_key_during_the_pass_keeps_the_key(rotated, run, monkeypatch):
    config, ring = rotated
    real = cmd_keys._reencrypt_numbers

    def pass_with_a_late_writer(cfg, new_id):
        real(cfg, new_id)
        _plant_old_token(config, "late-call")  # sorts behind the pass's cursor / written after it

    monkeypatch.setattr(cmd_keys, "_reencrypt_numbers", pass_with_a_late_writer)
    code, out = run(config, "keys", "rotate", "--to", NEW, "--retire-old")
    assert code == CryptoError.exit_code, out
    assert "1 catalog values are still under other keys" in out and "live_calls.state" in out
    assert f"keys rotate --to {NEW} --retire-old again" in out
    assert ring.ids() == [OLD, NEW]  # kept
    monkeypatch.setattr(cmd_keys, "_reencrypt_numbers", real)
    code, out = run(config, "keys", "rotate", "--to", NEW, "--retire-old")  # re-run: re-encrypts, retires
    assert code == 0, out
    assert ring.ids() == [NEW]


def test_a_value_written_while_retiring_puts_the_keys_back(rotated, run, monkeypatch):
    config, ring = rotated
    monkeypatch.setattr(cmd_keys.time, "sleep", lambda s: _plant_old_token(config, "racing-call"))
    code, out = run(config, "keys", "rotate", "--to", NEW, "--retire-old")
    assert code == CryptoError.exit_code, out
    assert f"{OLD} put back in the ring" in out
    assert ring.ids() == [OLD, NEW]


def test_the_number_cipher_fails_closed_once_its_key_is_retired(tmp_path):
    ring = KeyRing(tmp_path / "master")
    ring.generate("k1")
    now = [100.0]
    cipher = NumberCipher(ring.get, "k1", recheck_s=1.0, clock=lambda: now[0])
    token = cipher.encrypt("+4915112345678", "calls/c0")
    ring.generate("k2")
    ring.retire("k1")
    now[0] += 0.5  # within the recheck interval the cached key still serves
    assert token_key_id(cipher.encrypt("+4915112345678", "calls/c1")) == "k1"
    now[0] += 1.0
    with pytest.raises(CryptoError, match="'k1' not found"):
        cipher.encrypt("+4915112345678", "calls/c2")
    with pytest.raises(CryptoError):  # and stays closed
        cipher.encrypt("+4915112345678", "calls/c3")
    ring.unretire("k1")
    assert cipher.decrypt(token, "calls/c0") == "+4915112345678"
    assert token_key_id(cipher.encrypt("+4915112345678", "calls/c4")) == "k1"
