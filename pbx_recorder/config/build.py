"""Turn the merged config data into a validated ``Config`` (errors go to ``ctx.errors``)."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pbx_recorder.config.keys import check_drop_folder, check_key_layout
from pbx_recorder.config.model import (
    DEFAULT_PROMPTS_DIR,
    AccessConfig,
    AgiConfig,
    AmiConfig,
    CatalogConfig,
    Config,
    ConsentConfig,
    EncryptionConfig,
    EslConfig,
    EslOutboundConfig,
    FourEyesConfig,
    LoggingConfig,
    MetricsConfig,
    PbxConfig,
    PrivacyConfig,
    RedisConfig,
    SigningConfig,
    SpoolConfig,
    VipConfig,
    WebConfig,
)
from pbx_recorder.config.qa import MIN_SEED_CHARS, build_qa_sampling
from pbx_recorder.config.reader import Ctx, Node
from pbx_recorder.config.reports import build_reports
from pbx_recorder.config.rules import LANGUAGE_RE, build_rules, check_timezone
from pbx_recorder.config.storage import build_retention, build_storage
from pbx_recorder.core import access_policy
from pbx_recorder.service.roles import ROLES as SERVICE_ROLES

NODE_RE = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ROLES = access_policy.ROLES
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HOST_RE = r"[A-Za-z0-9_.:\[\]-]+"


def _pbx(n: Node) -> PbxConfig:
    a = n.child("ami")
    ami = AmiConfig(
        host=a.get_str("host", "127.0.0.1", regex=HOST_RE, what="host name or address"),
        port=a.get_port("port", 5038),
        username=a.get_str("username", "pbx-recorder"),
        secret=a.get_secret("secret"),
        connect_timeout=a.get_float("connect_timeout", 5.0, lo=0.1, hi=300),
        reconnect_min_s=a.get_float("reconnect_min_s", 0.5, lo=0.01, hi=3600),
        reconnect_max_s=a.get_float("reconnect_max_s", 30.0, lo=0.01, hi=3600),
        action_timeout_s=a.get_float("action_timeout_s", 5.0, lo=0.1, hi=300),
    )
    if ami.reconnect_min_s > ami.reconnect_max_s:
        a.error("reconnect_min_s", f"{ami.reconnect_min_s} is above reconnect_max_s ({ami.reconnect_max_s})")
    a.finish()
    g = n.child("agi")
    agi = AgiConfig(
        host=g.get_str("host", "127.0.0.1", regex=HOST_RE, what="host name or address"),
        port=g.get_port("port", 4573),
        max_sessions=g.get_int("max_sessions", 200, lo=1, hi=10_000),
        max_question_delay_s=g.get_float("max_question_delay_s", 3.0, lo=0.5, hi=60),
    )
    g.finish()
    esl = _esl(n.child("esl"))
    pbx = PbxConfig(
        type=n.get_str("type", "asterisk", choices=("asterisk", "freeswitch")),
        ami=ami,
        agi=agi,
        monitor_dir=n.get_path("monitor_dir", "./var/monitor"),
        esl=esl,
        pause_confirm_s=n.get_float("pause_confirm_s", 3.0, lo=0, hi=60),
        pause_max_s=n.get_float("pause_max_s", 300.0, lo=0, hi=86_400),
    )
    if 0 < pbx.pause_max_s < 10:
        n.error("pause_max_s", f"{pbx.pause_max_s:g} s would end a pause before a card number "
                    "is read out: 0 (no limit) or at least 10")
    n.finish()
    if pbx.type == "freeswitch" and esl.password is None:
        n.ctx.error(n.path + ("esl", "password"), "FreeSWITCH needs the event socket password "
                    "(pbx.esl.password_file, pbx.esl.password or PBX_RECORDER_PBX__ESL__PASSWORD)")
    return pbx


def _esl(e: Node) -> EslConfig:
    """``pbx.esl``: the inbound event socket and the outbound consent server (esl/CONTRACT.md)."""
    o = e.child("outbound")
    outbound = EslOutboundConfig(
        host=o.get_str("host", "127.0.0.1", regex=HOST_RE, what="host name or address"),
        port=o.get_port("port", 8084),
        max_sessions=o.get_int("max_sessions", 200, lo=1, hi=10_000),
        session_timeout_s=o.get_float("session_timeout_s", 120.0, lo=1, hi=3600),
    )
    o.finish()
    esl = EslConfig(
        host=e.get_str("host", "127.0.0.1", regex=HOST_RE, what="host name or address"),
        port=e.get_port("port", 8021),
        password=e.get_secret("password"),
        connect_timeout=e.get_float("connect_timeout", 5.0, lo=0.1, hi=300),
        reconnect_min_s=e.get_float("reconnect_min_s", 0.5, lo=0.01, hi=3600),
        reconnect_max_s=e.get_float("reconnect_max_s", 30.0, lo=0.01, hi=3600),
        api_timeout_s=e.get_float("api_timeout_s", 5.0, lo=0.1, hi=300),
        outbound=outbound,
    )
    if esl.reconnect_min_s > esl.reconnect_max_s:
        e.error("reconnect_min_s", f"{esl.reconnect_min_s} is above reconnect_max_s ({esl.reconnect_max_s})")
    e.finish()
    return esl


def _default_prompts_dir(ctx: Ctx) -> Path:
    """``prompts/`` beside the main config file (where ``pbx-recorder prompts generate`` writes);
    embedded defaults (no config file): ``./var/prompts``."""
    if ctx.main_file is not None:
        return (ctx.main_file.parent / "prompts").resolve()
    return (ctx.default_base / DEFAULT_PROMPTS_DIR).resolve()


def _consent(n: Node) -> ConsentConfig:
    languages: dict[str, str] = {}
    ln = n.child("languages")
    for region, lang in ln.items():
        if isinstance(lang, str) and re.fullmatch(LANGUAGE_RE, lang):
            languages[region] = lang
        else:
            ln.error(region, f"{lang!r} is not a language code (e.g. en, zh, pt-BR)")
    default_language = n.get_str("default_language", "en", regex=LANGUAGE_RE, what="language code")
    languages.setdefault("default", default_language)
    digit = r"[0-9*#]"
    consent = ConsentConfig(
        prompts_dir=n.get_path("prompts_dir", None, optional=True) or _default_prompts_dir(n.ctx),
        default_language=default_language,
        languages=MappingProxyType(languages),
        timeout_s=n.get_float("timeout_s", 5.0, lo=0.5, hi=120),
        max_attempts=n.get_int("max_attempts", 3, lo=1, hi=10),
        digit_yes=n.get_str("digit_yes", "1", regex=digit, what="DTMF digit", digits=True),
        digit_no=n.get_str("digit_no", "2", regex=digit, what="DTMF digit", digits=True),
        on_recorder_down=n.get_str("on_recorder_down", "continue", choices=("continue", "hangup")),
    )
    if consent.digit_yes == consent.digit_no:
        n.error("digit_no", f"must differ from digit_yes ({consent.digit_yes!r})")
    n.finish()
    return consent


def _catalog(n: Node) -> CatalogConfig:
    url = n.get_str("url", None, optional=True, regex=r"postgres(ql)?://[^\s?#]+(\?\S*)?",
                    what="PostgreSQL URL (postgresql://user@host:port/dbname)", show=False)
    if url and re.match(r"postgres(ql)?://[^/@]*:[^/@]*@", url):
        n.error("url", "the URL carries a password: give it in catalog.password_file instead "
                "(the config is shown and logged; a secret file is not)")
    elif url and any(k.lower() == "password"
                     for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)):
        n.error("url", "the URL carries a password (its 'password' query parameter): give it in "
                "catalog.password_file instead (the config is shown and logged, and the URL reaches "
                "pg_dump's command line; a secret file does not)")
    cfg = CatalogConfig(path=n.get_path("path", "./var/catalog.db"), url=url or None,
                        password=n.get_secret("password"),
                        pool_size=n.get_int("pool_size", 10, lo=1, hi=500),
                        parallel_workers=n.get_int("parallel_workers", 0, lo=0, hi=64),
                        writer_cache_mb=n.get_int("writer_cache_mb", 512, lo=8, hi=65536))
    from pbx_recorder.catalog import engine as catalog_engine

    catalog_engine.configure_writer_cache(cfg.writer_cache_mb * 1024)
    if cfg.url:
        from pbx_recorder.catalog import engine

        engine.configure(cfg.url, password=cfg.password.reveal() if cfg.password else None,
                         pool_size=cfg.pool_size, parallel_workers=cfg.parallel_workers)
    return cfg


def _simple(n: Node, build: Any) -> Any:
    result = build(n)
    n.finish()
    return result


def build_config(ctx: Ctx, data: dict[str, Any]) -> Config:
    root = Node(ctx, (), data)
    timezone = root.get_str("timezone", "UTC")
    if timezone != "UTC" and not check_timezone(ctx, ("timezone",), timezone):
        timezone = "UTC"
    retention = build_retention(root.child("retention"))
    access = root.child("access")
    users: dict[str, str] = {}
    users_node = access.child("users")
    for user, role in users_node.items():
        if role not in ROLES:
            users_node.error(user, f"{role!r} is not one of: {', '.join(ROLES)}")
        else:
            users[user] = role
    download_dir = access.get_path("download_dir", None, optional=True)
    access.finish()
    level_node = root.child("logging")
    level = level_node.get_str("level", "INFO")
    if level.upper() not in LOG_LEVELS:
        level_node.error("level", f"{level!r} is not one of: {', '.join(LOG_LEVELS)}")
        level = "INFO"
    config = Config(
        node=root.get_str("node", "pbx1", regex=NODE_RE, what="node name (letters, digits, '-', max 63)"),
        timezone=timezone,
        pbx=_pbx(root.child("pbx")),
        spool=_simple(
            root.child("spool"),
            lambda n: SpoolConfig(
                dir=n.get_path("dir", "./var/spool"),
                min_free_mb=n.get_int("min_free_mb", 200, lo=0),
                closure_timeout_s=n.get_float("closure_timeout_s", 30.0, lo=1, hi=3600),
                stable_ms=n.get_int("stable_ms", 500, lo=50, hi=60_000),
                discard_timeout_s=n.get_float("discard_timeout_s", 10.0, lo=0.5, hi=3600),
            ),
        ),
        catalog=_simple(root.child("catalog"), _catalog),
        redis=_simple(
            root.child("redis"),
            lambda n: RedisConfig(
                url=n.get_str(
                    "url",
                    None,
                    optional=True,
                    regex=r"(redis|rediss|unix)://\S+",
                    what="Redis URL (redis://, rediss:// or unix://)",
                    show=False,
                )
            ),
        ),
        vip=_simple(
            root.child("vip"),
            lambda n: VipConfig(
                file=n.get_path("file", None, optional=True),
                redis_key=n.get_str("redis_key", "pbx-recorder:vip"),
            ),
        ),
        consent=_consent(root.child("consent")),
        rules=build_rules(ctx, root.raw("rules"), timezone, retention.classes.keys()),
        retention=retention,
        storage=build_storage(root.child("storage")),
        encryption=_simple(
            root.child("encryption"),
            lambda n: EncryptionConfig(
                enabled=n.get_bool("enabled", False),
                master_key_file=n.get_path("master_key_file", None, optional=True),
                key_id=n.get_str("key_id", None, optional=True),
                backup_key_dir=n.get_path("backup_key_dir", None, optional=True),
            ),
        ),
        signing=_simple(
            root.child("signing"),
            lambda n: SigningConfig(key_file=n.get_path("key_file", "./var/keys/signing.ed25519"),
                                    checkpoint_dir=n.get_path("checkpoint_dir", None, optional=True),
                                    checkpoint_tier=n.get_str("checkpoint_tier", None, optional=True)),
        ),
        privacy=_simple(
            root.child("privacy"),
            lambda n: PrivacyConfig(
                mask_numbers=n.get_bool("mask_numbers", True),
                hash_key_file=n.get_path("hash_key_file", "./var/keys/subject-hmac.key"),
            ),
        ),
        web=_simple(
            root.child("web"),
            lambda n: WebConfig(
                host=n.get_str("host", "127.0.0.1", regex=HOST_RE, what="host name or address"),
                port=n.get_port("port", None, optional=True),
                idle_timeout_s=n.get_int("idle_timeout_s", 900, lo=60, hi=86400),
                absolute_timeout_s=n.get_int("absolute_timeout_s", 8 * 3600, lo=300, hi=7 * 86400),
                tls=n.get_bool("tls", False),
                tls_cert=n.get_path("tls_cert", None, optional=True),
                tls_key=n.get_path("tls_key", None, optional=True),
                number_searches=n.get_int("number_searches", 20, lo=1, hi=10000),
                number_search_window_s=n.get_int("number_search_window_s", 600, lo=10, hi=86400),
                trusted_proxies=n.get_str_list("trusted_proxies"),
                totp_required_roles=n.get_str_list("totp_required_roles", choices=SERVICE_ROLES),
                secret_key_file=n.get_path("secret_key_file", None, optional=True),
                allow_unsealed=n.get_bool("allow_unsealed", False),
                token_max_days=n.get_int("token_max_days", 365, lo=1, hi=3650),
                token_touch_s=n.get_int("token_touch_s", 60, lo=1, hi=86400),
                login_failures_per_ip=n.get_int("login_failures_per_ip", 20, lo=1, hi=100000),
                login_ip_window_s=n.get_int("login_ip_window_s", 600, lo=10, hi=86400),
                four_eyes=_simple(n.child("four_eyes"), lambda f: FourEyesConfig(
                    tags=f.get_str_list("tags"), rules=f.get_str_list("rules"),
                    grant_minutes=f.get_int("grant_minutes", 60, lo=1, hi=7 * 1440))),
                qa_sampling=build_qa_sampling(n),
                qa_sampling_seed=n.get_secret("qa_sampling_seed"),
                reports=build_reports(n),
                export_dir=n.get_path("export_dir", "./var/exports"),
            ),
        ),
        access=AccessConfig(users=MappingProxyType(users), download_dir=download_dir),
        logging=LoggingConfig(level=level.upper(), json=level_node.get_bool("json", False)),
        metrics=_simple(
            root.child("metrics"),
            lambda n: MetricsConfig(
                port=n.get_port("port", None, optional=True),
                host=n.get_str("host", "127.0.0.1", regex=HOST_RE, what="host name or address"),
            ),
        ),
    )
    level_node.finish()
    if config.encryption.enabled and config.encryption.master_key_file is None:
        ctx.error(("encryption", "master_key_file"), "is required when encryption.enabled is true")
    if config.web.totp_required_roles and config.web.secret_key_file is None:
        ctx.error(("web", "secret_key_file"), "is required when web.totp_required_roles is set")
    seed = config.web.qa_sampling_seed
    if seed is not None and len(seed.reveal()) < MIN_SEED_CHARS:
        ctx.error(("web", "qa_sampling_seed"), f"is too short: at least {MIN_SEED_CHARS} characters "
                  "(the secret that keeps agents from predicting which calls are reviewed)")
    if (config.web.tls_cert is None) != (config.web.tls_key is None):
        ctx.error(("web", "tls_cert" if config.web.tls_cert is None else "tls_key"),
                  "is required when the other of web.tls_cert / web.tls_key is set")
    check_key_layout(ctx, config)
    check_drop_folder(ctx, config)
    root.finish()
    return config
