"""What the operator service works with: the catalog it opens itself, the tiers, the key ring, the
``web:`` settings and the clock.  Built once at start (``from_config``) or by tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from argon2 import PasswordHasher

from pbx_recorder.catalog import Catalog
from pbx_recorder.config.model import WebConfig
from pbx_recorder.service.accounts import Accounts
from storage.base import Tier


@dataclass
class ServiceContext:
    catalog: Catalog
    tiers: Mapping[str, Tier]
    keyring: Any = None  # storage.keyring.KeyRing when recordings are encrypted
    web: WebConfig = field(default_factory=WebConfig)
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    clock: Callable[[], float] = time.time
    tz: tzinfo | None = None
    secret_box: Any = None  # service.secret_box.SecretBox from web.secret_key_file (TOTP)
    config: Any = None  # the recorder's config (the AMI account of ``api_pause``); None in some tests
    #: the signing key's public half: four-eyes replay checks a call row's seal before it trusts the
    #: row's rule and rule tags (``api_replay.sensitive``); None without one (not checked)
    seal_key: Any = None
    #: the access rows' seal (service.access_seal) from web.secret_key_file; None without one
    access_seal: Any = None

    def __post_init__(self) -> None:
        # an agent's and a team's scope read the call row's agent column: trusted only under its
        # seal, while this service holds the key to check it (``seal_key`` may be set later)
        self.catalog.scope_guard = self._call_row_problem

    def _call_row_problem(self, conn: Any, stored: Mapping[str, Any]) -> str:
        if self.seal_key is None:
            return ""
        from pbx_recorder.recording.call_seal import stored_call_problem

        return stored_call_problem(conn, stored, self.seal_key, getattr(self.catalog, "numbers", None))

    def release(self) -> None:
        """End of a request: on PostgreSQL this worker thread's connection goes back to the pool
        (the server has more worker threads than the pool has connections)."""
        self.catalog.release()

    def accounts(self) -> Accounts:
        return Accounts(self.catalog.connection(), hasher=self.hasher, seal=self.access_seal)

    @classmethod
    def from_config(cls, config: Any) -> ServiceContext:
        """The catalog, tiers and key ring the config names (never anything the client sends)."""
        from zoneinfo import ZoneInfo

        from pbx_recorder.catalog.number_keys import protection_for
        from storage.factory import build_tiers

        keyring = None
        enc = config.encryption
        if enc.enabled and enc.master_key_file:
            from storage.keyring import KeyRing

            keyring = KeyRing.from_config_path(enc.master_key_file)
        box = seal = None
        if config.web.secret_key_file is not None:
            from pbx_recorder.service import access_seal
            from pbx_recorder.service.secret_box import SecretBox

            box = SecretBox.from_file(config.web.secret_key_file)
            seal = access_seal.from_file(config.web.secret_key_file)
        seal_key = seal_key_of(config)  # (before the catalog is opened: a missing key fails start-up)
        catalog = Catalog(config.catalog.target, numbers=protection_for(config))
        if seal is not None:
            _refuse_unsealed_rows(catalog, seal)
        return cls(catalog, build_tiers(config.storage), keyring, config.web, tz=ZoneInfo(config.timezone),
                   secret_box=box, config=config, seal_key=seal_key, access_seal=seal)


def _refuse_unsealed_rows(catalog: Catalog, seal: Any) -> None:
    """With a secret key, a table never sealed with it must be sealed before the service starts:
    its rows were written before schema 21 (the QA rows: 23) or without the key, and an admin checks
    them and runs ``pbx-recorder users seal`` (fail closed, named, never sealed silently).  Once a
    table was sealed, a row of it without a seal was not written by the recorder: the service
    starts and does not honour it (logged here, and at each read)."""
    import logging

    from pbx_recorder.errors import ConfigError
    from pbx_recorder.service.access_rows import count_unsealed, tables_sealed_before

    try:
        conn = catalog.connection()
        unsealed = count_unsealed(conn)
        before = tables_sealed_before(conn, seal) if unsealed else frozenset()
    finally:
        catalog.release()
    late = sum(n for table, n in unsealed.items() if table in before)
    never = {table: n for table, n in unsealed.items() if table not in before}
    if late:
        logging.getLogger(__name__).error(
            "%d access or QA row(s) have no seal in tables sealed before: not written by the recorder, not "
            "honoured (pbx-recorder users seal --check)", late)
    if never:
        catalog.close()
        named = ", ".join(f"{table} {n}" for table, n in sorted(never.items()))
        raise ConfigError(f"{sum(never.values())} sealed row(s) (access and QA rows) have no seal ({named}): "
                          "check them with "
                          "`pbx-recorder users seal --check`, then run `pbx-recorder users seal`",
                          key="web.secret_key_file")


def seal_key_of(config: Any) -> Any:
    """The public half of ``signing.key_file`` (its ``.pub`` file, else derived from the key if this
    account may read it).  Without one, four-eyes replay could not check the rows it trusts: with
    ``web.four_eyes`` on that is a configuration error (fail closed, the key named); otherwise
    None."""
    from pbx_recorder.errors import ConfigError, CryptoError
    from pbx_recorder.recording.signing import load_public_key, public_key_path

    key_file = getattr(getattr(config, "signing", None), "key_file", None)
    problems = []
    for source in ((public_key_path(key_file), key_file) if key_file is not None else ()):
        try:
            if source.is_file():
                return load_public_key(source)
        except (OSError, ValueError, CryptoError) as exc:  # unreadable, corrupt: the next, or none
            problems.append(f"{source}: {exc}")
    if config.web.four_eyes.enabled:
        raise ConfigError("four-eyes replay checks call seals with the signing key's public half, and the "
                          f"service cannot read it ({'; '.join(problems) or f'no {key_file} or .pub file'}); "
                          "run `pbx-recorder keys init` or give this account read access to the .pub file",
                          key="signing.key_file")
    return None
