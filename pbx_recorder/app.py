"""The one composition root: everything the daemon runs, built from a ``Config``.

Only this module (and CLI commands) read the Config; every part below takes plain
parameters.  Building does no network I/O (the AMI client connects when run, the AGI
server binds when built so a port clash fails at start-up).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ami.client import AmiClient
from ami.normalize import Normalizer
from consent.agi_async import AsyncAgiConnection, AsyncAgiServer, RefusalHandler
from consent.async_session import AsyncConsentBackend, AsyncConsentSession
from consent.session_contract import DialogSettings
from pbx_recorder.catalog import Catalog
from pbx_recorder.core.calls import CallBook
from pbx_recorder.errors import ConfigError, CryptoError
from pbx_recorder.lifecycle.late_copies import ErasureAwareCatalog, LateCopyGuard
from pbx_recorder.metrics import Metrics, NullMetrics
from pbx_recorder.recording.pipeline import Pipeline
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.spool import Spool
from pbx_recorder.vip import VipDirectory

log = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_GRACE_S = 20.0
DEFAULT_AGI_SESSION_TIMEOUT_S = 120.0
DEFAULT_CONSENT_WAIT_S = 10.0  # AGI thread waiting for the daemon loop (decision + MixMonitor)
DEFAULT_BOOT_TIMEOUT_S = 10.0


@dataclass
class App:
    """The built parts; the consent server is started by :meth:`start_consent_server` on the loop."""

    config: Any
    node: str
    normalizer: Any  # ami.normalize.Normalizer, or esl.normalize.EslNormalizer for FreeSWITCH
    ami: Any  # ami.client.AmiClient, or esl.client.EslClient (the same run/events/execute/close)
    callbook: CallBook
    catalog: Catalog
    spool: Spool
    pipeline: Pipeline
    shipper: Shipper
    prompts: Any
    vip: VipDirectory
    settings: DialogSettings
    metrics: NullMetrics = field(default_factory=NullMetrics)  # a Metrics when metrics.port is set
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    consent_wait_s: float = DEFAULT_CONSENT_WAIT_S
    tiers: dict[str, Any] = field(default_factory=dict)  # every configured tier, by name

    async def start_consent_server(self, backend: AsyncConsentBackend, refused: RefusalHandler) -> Any:
        """The consent server the daemon runs on its loop, bound and listening: the asyncio
        FastAGI server (Asterisk) or the outbound-socket server (FreeSWITCH)."""
        if self.config.pbx.type == "freeswitch":
            from esl.wiring import start_outbound_server

            return start_outbound_server(self, backend)
        agi_cfg = self.config.pbx.agi

        async def session(conn: AsyncAgiConnection) -> None:
            await AsyncConsentSession(conn, node=self.node, backend=backend, prompts=self.prompts,
                                      vip=self.vip, settings=self.settings,
                                      call_id_of=self.normalizer.call_id_for,
                                      max_question_delay_s=agi_cfg.max_question_delay_s,
                                      on_asked=getattr(backend, "asked", None)).run()

        server = AsyncAgiServer(
            agi_cfg.host, agi_cfg.port, session=session, refused=refused, max_sessions=agi_cfg.max_sessions,
            session_timeout_s=float(getattr(agi_cfg, "session_timeout_s", DEFAULT_AGI_SESSION_TIMEOUT_S)))
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {agi_cfg.host}:{agi_cfg.port}: {exc.strerror}", key="pbx.agi"
            ) from exc
        return server


def build_app(config: Any) -> App:
    if config.pbx.type not in ("asterisk", "freeswitch", ""):
        raise ConfigError(f"unknown pbx.type {config.pbx.type!r}", key="pbx.type")
    node = config.node
    prompts = _build_prompts(config)  # first: a daemon that would fail at the first call never starts
    normalizer: Any
    ami: Any
    if config.pbx.type == "freeswitch":  # the ESL edge (esl/CONTRACT.md) in place of AMI + FastAGI
        from esl.wiring import build_esl_client

        normalizer, ami = build_esl_client(config)
    else:
        normalizer, ami = _build_ami(config, node)
    callbook = CallBook(node, str(config.pbx.monitor_dir), config.rules,
                        exact_mutes=config.pbx.type == "freeswitch",  # uuid_record mask names the file
                        pause_max_s=config.pbx.pause_max_s)
    guard = _late_copy_guard(config)
    numbers = _number_protection(config)
    sealer = _call_sealer(config, numbers)
    target = config.catalog.target
    catalog: Catalog = (Catalog(target, sealer=sealer, numbers=numbers) if guard is None else
                        ErasureAwareCatalog(target, sealer=sealer, numbers=numbers, guard=guard))
    catalog.protect_numbers()  # schema 6 data step: numbers written before it, encrypted (resumable)
    spool_cfg = config.spool
    spool = Spool(spool_cfg.dir, min_free_mb=spool_cfg.min_free_mb)
    pipeline = Pipeline(
        spool, catalog=catalog, stable_ms=spool_cfg.stable_ms, closure_timeout_s=spool_cfg.closure_timeout_s,
        discard_timeout_s=spool_cfg.discard_timeout_s,
    )
    metrics_cfg = config.metrics
    metrics = NullMetrics() if metrics_cfg.port is None else Metrics(metrics_cfg.host, metrics_cfg.port)
    shipper, tiers = _build_shipper(config, spool, catalog, metrics)
    if guard is not None:  # a recording of a subject erased while its call was live: destroyed
        shipper.arrival_checks.append(guard.admit_spool_entry)
    consent_cfg = config.consent
    vip = VipDirectory(file=config.vip.file, redis_url=config.redis.url, redis_key=config.vip.redis_key)
    settings = DialogSettings(
        default_language=consent_cfg.default_language,
        timeout_s=consent_cfg.timeout_s,
        max_attempts=consent_cfg.max_attempts,
        digit_yes=consent_cfg.digit_yes,
        digit_no=consent_cfg.digit_no,
    )
    return App(
        config=config,
        node=node,
        normalizer=normalizer,
        ami=ami,
        callbook=callbook,
        catalog=catalog,
        spool=spool,
        pipeline=pipeline,
        shipper=shipper,
        prompts=prompts,
        vip=vip,
        settings=settings,
        metrics=metrics,
        shutdown_grace_s=float(getattr(config, "shutdown_grace_s", DEFAULT_SHUTDOWN_GRACE_S)),
        tiers=tiers,
    )


def _build_ami(config: Any, node: str) -> tuple[Normalizer, AmiClient]:
    ami_cfg = config.pbx.ami
    normalizer = Normalizer(node)
    secret = ami_cfg.secret.reveal() if ami_cfg.secret is not None else ""
    ami = AmiClient(
        host=ami_cfg.host,
        port=ami_cfg.port,
        username=ami_cfg.username,
        secret=secret,
        normalizer=normalizer,
        backoff_min=ami_cfg.reconnect_min_s,
        backoff_max=ami_cfg.reconnect_max_s,
        action_timeout=ami_cfg.action_timeout_s,
        connect_timeout=ami_cfg.connect_timeout,
        boot_timeout=float(getattr(ami_cfg, "boot_timeout_s", DEFAULT_BOOT_TIMEOUT_S)),
    )
    return normalizer, ami


def _build_prompts(config: Any) -> Any:
    """The prompt catalog over ``consent.prompts_dir``; ConfigError when audio a call needs is missing."""
    from consent.prompts import PromptCatalog
    from pbx_recorder.prompt_check import check_prompts, required_languages, required_prompts

    consent_cfg = config.consent
    catalog = PromptCatalog(consent_cfg.prompts_dir, default_language=consent_cfg.default_language)
    rules = tuple(config.rules)
    check_prompts(catalog, required_prompts(rules), required_languages(consent_cfg, rules),
                  getattr(config, "config_file", None))
    return catalog


def hot_tiers(config: Any, tiers: dict[str, Any]) -> dict[str, Any]:
    """The hot tiers new recordings go to (the global one and any region's), by name."""
    storage = config.storage
    names = [storage.hot, *(r.hot for r in storage.regions.values())]
    return {name: tiers[name] for name in dict.fromkeys(names) if name in tiers}


def _first_start_keys(config: Any) -> None:
    """Create the configuration's missing keys (what ``keys init`` does at install)."""
    import time

    from pbx_recorder.cli.crypto_setup import ensure_keys

    try:
        for line in ensure_keys(config, time.time()):
            log.warning("first start: created %s", line)
    except (OSError, CryptoError) as exc:
        needed = config.encryption.enabled and not _master_key_present(config)
        if needed:  # recording cannot start without it; the other keys serve the CLI
            raise ConfigError(f"cannot create the missing keys ({exc}); run `pbx-recorder keys init` "
                              "at install", key="encryption.master_key_file") from exc
        log.warning("could not create a missing key (%s): run `pbx-recorder keys init`", exc)


def _master_key_present(config: Any) -> bool:
    from pbx_recorder.cli.crypto_setup import current_key_id, keyring_of

    ring = keyring_of(config, required=False)
    return ring is not None and ring.has(current_key_id(config))


def _late_copy_guard(config: Any) -> LateCopyGuard | None:
    """Copies of an erased subject's call that was live during the erasure (lifecycle.late_copies)."""
    key_file = getattr(config.privacy, "hash_key_file", None)
    return LateCopyGuard(key_file) if key_file else None


def _number_protection(config: Any) -> Any:
    """The catalog's numbers: encrypted under the key ring, searched by blind index (keys made
    on first start like the others)."""
    from pbx_recorder.catalog.number_keys import protection_for

    try:
        return protection_for(config)
    except (OSError, CryptoError) as exc:
        raise ConfigError(f"cannot load the catalog's number keys ({exc}); run `pbx-recorder keys init`",
                          key="privacy.hash_key_file") from exc


def _call_sealer(config: Any, numbers: Any = None) -> Any:
    """Seals every call row the recorder writes (``pbx_recorder.recording.call_seal``) with the node's key."""
    key_file = config.signing.key_file
    if key_file is None:
        return None
    from pbx_recorder.recording.call_seal import CallSealer
    from pbx_recorder.recording.signing import load_signing_key

    _first_start_keys(config)  # makes the signing key (and the others) on first start
    return CallSealer(load_signing_key(key_file), reveal=numbers.open_call if numbers is not None else None)


def _build_shipper(
    config: Any, spool: Spool, catalog: Catalog, metrics: NullMetrics
) -> tuple[Shipper, dict[str, Any]]:
    from storage.factory import build_tiers

    tiers = build_tiers(config.storage)
    _first_start_keys(config)

    def tier_for_region(region: str) -> Any:
        name = config.storage.tiers_for_region(region or None).hot
        if name not in tiers:
            raise ConfigError(f"no tier named {name!r}", key="storage.hot")
        return tiers[name]

    prepare: list[Any] = []
    transcode = config.storage.transcode
    if transcode.format != "none":
        from storage.transcode import Transcoder

        prepare.append(Transcoder(transcode.format, keep_original=transcode.keep_original))
    if config.encryption.enabled:
        from pbx_recorder.cli.crypto_setup import current_key_id, keyring_of
        from storage.envelope import EncryptStage

        keyring = keyring_of(config, required=True)
        assert keyring is not None
        prepare.append(EncryptStage(keyring, current_key_id(config)))
    after: list[Any] = []
    key_file = config.signing.key_file
    if key_file is not None:
        from pbx_recorder.recording.signing import SignAfterStore, generate_signing_key, load_signing_key

        if not Path(key_file).is_file():
            # First start: make the node's manifest-signing key (0600, public key beside it).
            generate_signing_key(key_file)
            log.warning("generated a new manifest signing key at %s (public key %s.pub)", key_file, key_file)
        after.append(SignAfterStore(load_signing_key(key_file)))
    else:
        log.warning("signing.key_file is not set: manifests will not be signed")
    from pbx_recorder.recording.ledger import StoredLedgerHook

    after.append(StoredLedgerHook())
    if key_file is not None:  # last: sign the ledger and audit heads the hooks above extended
        from pbx_recorder.recording.chain_head import ChainHeadHook, store_for

        heads = ChainHeadHook(load_signing_key(key_file), store_for(config, tiers), node=config.node)
        heads.start(catalog)
        after.append(heads)
    claimer = None
    if config.redis.url:
        from storage.claims import RedisClaimer

        claimer = RedisClaimer(config.redis.url, config.node)
    shipper = Shipper(
        spool, catalog, tier_for_region, prepare_stages=prepare, after_store=after, claimer=claimer,
        metrics=metrics,
    )
    return shipper, tiers
