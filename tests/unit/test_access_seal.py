"""The access rows' seal (``service/access_seal.py``): what it covers, how values are read back by
either engine, and what a change of one covered column, of the table, or of the key does."""

from __future__ import annotations

import secrets

import pytest

from pbx_recorder.errors import CatalogError, CryptoError
from pbx_recorder.service.access_seal import FIELDS, KEYS, PREFIX, AccessSeal

USER = {"name": "alice", "role": "agent", "password_hash": "$argon2id$x", "disabled": 0, "totp_secret": "",
        "totp_last_step": 0}


def test_every_table_names_its_key_among_the_sealed_columns() -> None:
    assert set(FIELDS) == set(KEYS)
    for table, key in KEYS.items():
        assert set(key) <= set(FIELDS[table]), table


def test_a_seal_changes_with_each_covered_column_and_holds_across_number_types() -> None:
    seal = AccessSeal(secrets.token_bytes(32))
    mac = seal.mac("users", USER)
    assert mac.startswith(PREFIX) and seal.check("users", {**USER, "seal": mac})
    # what SQLite's REAL, PostgreSQL's double precision and a bool written for an int give back
    assert seal.mac("users", {**USER, "disabled": False}) == mac
    assert seal.mac("users", {**USER, "disabled": 0.0}) == mac
    for column, other in (("name", "bob"), ("role", "admin"), ("password_hash", "$argon2id$y"),
                          ("disabled", 1), ("totp_secret", "v1.x"), ("totp_last_step", 7)):
        assert not seal.check("users", {**USER, column: other, "seal": mac}), column
    assert seal.check("users", {**USER, "failed_logins": 9, "lang": "zh", "seal": mac})  # not covered
    assert not seal.check("users", {**USER, "seal": ""})


def test_a_seal_belongs_to_its_table_and_its_key() -> None:
    key = secrets.token_bytes(32)
    seal, other = AccessSeal(key), AccessSeal(secrets.token_bytes(32))
    team = {"team": "red", "agent": "carol"}
    assert seal.mac("team_agents", team) != seal.mac("user_teams", {"user_name": "red", "team": "carol"})
    assert not other.check("team_agents", {**team, "seal": seal.mac("team_agents", team)})
    assert AccessSeal(key).mac("team_agents", team) == seal.mac("team_agents", team)


def test_a_column_of_another_type_and_a_short_key_are_refused() -> None:
    with pytest.raises(CryptoError):
        AccessSeal(b"short")
    with pytest.raises(CatalogError, match="users"):
        AccessSeal(secrets.token_bytes(32)).mac("users", {**USER, "role": b"admin"})
