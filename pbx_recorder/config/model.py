"""The typed, frozen configuration objects.  Built and validated by ``config.build``.

Field names are the YAML keys.  Lists are tuples, mappings are read-only mappings,
paths are absolute ``Path`` objects, secrets are ``Secret`` (``.reveal()``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pbx_recorder.config.reports import ReportsConfig
from pbx_recorder.config.secret import REDACTED, Secret

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


# --- pbx -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pbx-recorder"
    secret: Secret | None = None
    connect_timeout: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    action_timeout_s: float = 5.0


@dataclass(frozen=True)
class AgiConfig:
    host: str = "127.0.0.1"
    port: int = 4573
    max_sessions: int = 200
    max_question_delay_s: float = 3.0  # admission control: pbx_recorder/core/admission.py


@dataclass(frozen=True)
class EslOutboundConfig:
    """The recorder's server for FreeSWITCH's dialplan ``socket`` app (esl/CONTRACT.md)."""

    host: str = "127.0.0.1"
    port: int = 8084
    max_sessions: int = 200
    session_timeout_s: float = 120.0


@dataclass(frozen=True)
class EslConfig:
    host: str = "127.0.0.1"
    port: int = 8021
    password: Secret | None = None
    connect_timeout: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    api_timeout_s: float = 5.0
    outbound: EslOutboundConfig = EslOutboundConfig()


@dataclass(frozen=True)
class PbxConfig:
    type: str
    ami: AmiConfig
    agi: AgiConfig
    monitor_dir: Path
    esl: EslConfig
    #: how long ``calls pause|resume`` and the console wait for the daemon to record the PBX's
    #: mute event before answering "sent, not confirmed" (0: do not wait)
    pause_confirm_s: float = 3.0
    #: how long a call's PCI pauses may last together: the recorder then ends the open one itself
    #: and refuses more, so no pause leaves the rest of a call unrecorded (0: no limit)
    pause_max_s: float = 300.0


# --- pipeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolConfig:
    dir: Path
    min_free_mb: int = 200
    closure_timeout_s: float = 30.0
    stable_ms: int = 500
    #: a recording the recorder withdraws (consent refused, a failed start): how long to wait for
    #: the PBX to close its file before deleting it (a file closed later is the orphan sweep's)
    discard_timeout_s: float = 10.0


@dataclass(frozen=True)
class CatalogConfig:
    #: the SQLite file (one node), and with ``url`` the folder anchor of the node's local catalog
    #: state (chain heads, verify progress, lifecycle locks)
    path: Path
    #: ``postgresql://user@host:port/db``: the shared multi-node catalog (None: SQLite at ``path``)
    url: str | None = None
    password: Secret | None = None
    pool_size: int = 10
    #: PostgreSQL: parallel workers a catalog statement may use (``max_parallel_workers_per_gather``
    #: of the recorder's own connections); 0, the default: none (a search reads one page of 50 rows,
    #: and starting workers for it cost more than they saved: docs/catalog-at-scale.md, session 53)
    parallel_workers: int = 0
    #: SQLite: the page cache of the process's one group-commit writer connection, MiB
    writer_cache_mb: int = 512

    @property
    def target(self) -> str:
        """What :func:`pbx_recorder.catalog.engine.connect` opens: the URL, else the file."""
        return self.url if self.url else str(self.path)


DEFAULT_PROMPTS_DIR = Path("var/prompts")  # embedded default (no config file), relative to the cwd

_URL_PASSWORD = re.compile(r"(?P<head>://[^:/@]*:)(?P<pw>[^@]*)(?P<tail>@)")


def redact_url(url: str | None) -> str | None:
    """``redis://:pw@host`` -> ``redis://:**********@host``."""
    if url is None:
        return None
    return _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED + m["tail"], url)


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = field(default=None, repr=False)  # null = embedded mode, no Redis

    def __repr__(self) -> str:
        return f"RedisConfig(url={redact_url(self.url)!r})"


@dataclass(frozen=True)
class VipConfig:
    file: Path | None = None
    redis_key: str = "pbx-recorder:vip"


# --- consent and rules -----------------------------------------------------------------


@dataclass(frozen=True)
class ConsentConfig:
    # Prompt audio (``pbx-recorder prompts generate`` writes it there).  Built configs always
    # set it: default ``prompts/`` beside the config file, embedded defaults ``./var/prompts``.
    prompts_dir: Path = DEFAULT_PROMPTS_DIR
    default_language: str = "en"
    languages: Mapping[str, str] = field(default_factory=lambda: _frozen_map({"default": "en"}))
    timeout_s: float = 5.0
    max_attempts: int = 3
    digit_yes: str = "1"
    digit_no: str = "2"
    on_recorder_down: str = "continue"  # continue | hangup


@dataclass(frozen=True)
class RuleMatch:
    """All given criteria must hold; an empty tuple / None means "any"."""

    direction: tuple[str, ...] = ()  # inbound | outbound | internal
    dialed: tuple[str, ...] = ()  # patterns, see rule_patterns.compile_pattern
    caller: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()
    agent: tuple[str, ...] = ()
    vip: bool | None = None
    region: tuple[str, ...] = ()
    time: tuple[str, ...] = ()  # windows, see rule_patterns.parse_time_window


@dataclass(frozen=True)
class RuleRefusal:
    """What to do when the caller refuses consent: ``goto`` XOR ``hangup``."""

    goto: str | None = None  # "context,exten,priority"
    hangup: bool = False
    goodbye_prompt: str | None = None


@dataclass(frozen=True)
class RuleAction:
    record: str = "dontcare"  # force | yes | dontcare | no | never
    mode: str = "mixed"  # mixed | dual | stereo
    consent: str = "none"  # none | notify | explicit
    prompt: str | None = None
    language: str | None = None
    record_notice: bool = False
    refusal: RuleRefusal | None = None  # None = the call goes on unrecorded
    retention_class: str | None = None  # None = retention.default_class
    tags: tuple[str, ...] = ()
    start_on: str = "answer"  # answer | bridge


@dataclass(frozen=True)
class RuleConfig:
    name: str
    match: RuleMatch
    action: RuleAction
    timezone: str = "UTC"  # effective zone for match.time (rule's own or the global one)


# --- retention and storage -------------------------------------------------------------


@dataclass(frozen=True)
class RetentionClass:
    days: int
    cold_after_days: int | None = None
    protected: bool = False
    allow_short: bool = False


@dataclass(frozen=True)
class RetentionConfig:
    default_class: str
    classes: Mapping[str, RetentionClass]


@dataclass(frozen=True)
class LocalTierConfig:
    name: str
    path: Path
    read_only: bool = False
    type: str = "local"


@dataclass(frozen=True)
class ObjectLockConfig:
    mode: str = "none"  # GOVERNANCE | COMPLIANCE | none
    days: int | None = None


@dataclass(frozen=True)
class S3TierConfig:
    name: str
    bucket: str
    endpoint_url: str | None = None
    region_name: str | None = None
    prefix: str = ""
    access_key_id: str | None = None
    secret_access_key: Secret | None = None
    addressing_style: str = "path"  # path | virtual | auto
    storage_class: str | None = None
    restore_days: int = 7
    restore_tier: str = "Standard"  # Standard | Bulk | Expedited
    sse: str = "none"  # none | AES256 | aws:kms | SSE-C
    kms_key_id: str | None = None
    sse_c_key_file: Path | None = None
    object_lock: ObjectLockConfig = field(default_factory=ObjectLockConfig)
    multipart_threshold_mb: int = 8
    verify_readback: bool = True
    allow_governance_bypass: bool = False  # delete GOVERNANCE-retained objects (needs the permission)
    class_transition: str = "direct"  # direct: PUT writes storage_class | lifecycle: a bucket rule moves them
    archive_classes: tuple[str, ...] = ("GLACIER", "DEEP_ARCHIVE")  # classes that need a restore to read
    type: str = "s3"


TierConfig = LocalTierConfig | S3TierConfig


@dataclass(frozen=True)
class RegionStorage:
    hot: str
    cold: str | None


@dataclass(frozen=True)
class CapacityConfig:
    high_water: float = 0.85
    low_water: float = 0.75


@dataclass(frozen=True)
class TranscodeConfig:
    format: str = "none"  # none | flac | opus
    keep_original: bool = True


@dataclass(frozen=True)
class MigrationConfig:
    batch_size: int = 200


@dataclass(frozen=True)
class StorageConfig:
    tiers: Mapping[str, TierConfig]
    hot: str = "hot"
    cold: str | None = "cold"
    archive: str | None = None
    regions: Mapping[str, RegionStorage] = field(default_factory=lambda: _EMPTY)
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    transcode: TranscodeConfig = field(default_factory=TranscodeConfig)
    migration: MigrationConfig = field(default_factory=MigrationConfig)

    def tiers_for_region(self, region: str | None) -> RegionStorage:
        """(hot, cold) tier names for a call's region, falling back to the global ones."""
        if region is not None and region in self.regions:
            return self.regions[region]
        return RegionStorage(hot=self.hot, cold=self.cold)


# --- keys, privacy, access, ops --------------------------------------------------------


@dataclass(frozen=True)
class EncryptionConfig:
    enabled: bool = False
    master_key_file: Path | None = None
    key_id: str | None = None
    backup_key_dir: Path | None = None  # keys of catalog backups; None = "backup" beside the HMAC key


@dataclass(frozen=True)
class SigningConfig:
    key_file: Path
    #: signed ledger / audit chain heads, outside the catalog (None = <catalog dir>/chain-heads)
    checkpoint_dir: Path | None = None
    #: a tier (name) that also keeps each daily chain head: make it WORM (S3 Object Lock)
    checkpoint_tier: str | None = None


@dataclass(frozen=True)
class PrivacyConfig:
    hash_key_file: Path
    mask_numbers: bool = True


@dataclass(frozen=True)
class QaSamplingRule:
    """One ``web.qa_sampling`` rule (pbx_recorder.service.qa_sampling): ``percent`` or ``count``
    of each agent's answered, recorded calls per ISO week, optionally of one queue / tag only."""

    name: str
    reviewers: tuple[str, ...]
    percent: float | None = None
    count: int | None = None
    queue: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int | None = None  # None = disabled
    # the operator service (pbx-recorder serve, pbx_recorder.service)
    idle_timeout_s: int = 900  # a session unused this long ends
    absolute_timeout_s: int = 8 * 3600  # and every session ends this long after login
    tls: bool = False  # served over TLS (here or by a proxy in front): cookies get Secure
    tls_cert: Path | None = None  # serve TLS directly (both set): PEM certificate chain and key
    tls_key: Path | None = None
    number_searches: int = 20  # number-valued searches a user without unmask may run per window
    number_search_window_s: int = 600
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For names the client
    # second factor, API tokens, login rate limit, four-eyes replay (README "Operator service")
    totp_required_roles: tuple[str, ...] = ()  # roles that must log in with TOTP (default: none)
    secret_key_file: Path | None = None  # seals TOTP secrets and the access rows (service.access_seal)
    # `serve` without secret_key_file (no sealed access or QA rows, no keyed audit rows): only when
    # this is true (a test bench, a demo); a production service refuses to start without the key
    allow_unsealed: bool = False
    token_max_days: int = 365  # an API token lives at most this long
    token_touch_s: int = 60  # a token's last_used is rewritten at most this often
    login_failures_per_ip: int = 20  # failed logins per window from one client address, then 429
    login_ip_window_s: int = 600
    four_eyes: FourEyesConfig = field(default_factory=lambda: FourEyesConfig())
    qa_sampling: tuple[QaSamplingRule, ...] = ()  # pbx-recorder review sample
    qa_sampling_seed: Secret | None = None  # None: a secret the catalog keeps (made on first use)
    reports: ReportsConfig = field(default_factory=ReportsConfig)  # web.reports (config/reports.py)
    export_dir: Path | None = None  # private folder of console exports (0700); None: exports off


@dataclass(frozen=True)
class FourEyesConfig:
    """Calls whose play/download needs a grant by a second person (admin or auditor)."""

    tags: tuple[str, ...] = ()  # a call with any of these tags is sensitive
    rules: tuple[str, ...] = ()  # or recorded under any of these rule names
    grant_minutes: int = 60  # a grant opens the call to its requester this long

    @property
    def enabled(self) -> bool:
        return bool(self.tags or self.rules)


@dataclass(frozen=True)
class AccessConfig:
    users: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # name -> role
    #: where `recordings get --out` may write for anyone (None: only into the actor's own directories)
    download_dir: Path | None = None

    def role_of(self, user: str) -> str | None:
        return self.users.get(user)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True)
class MetricsConfig:
    port: int | None = None  # None = no /metrics endpoint
    host: str = "127.0.0.1"


# --- the whole -------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    node: str
    timezone: str
    pbx: PbxConfig
    spool: SpoolConfig
    catalog: CatalogConfig
    redis: RedisConfig
    vip: VipConfig
    consent: ConsentConfig
    rules: tuple[RuleConfig, ...]
    retention: RetentionConfig
    storage: StorageConfig
    encryption: EncryptionConfig
    signing: SigningConfig
    privacy: PrivacyConfig
    web: WebConfig
    access: AccessConfig
    logging: LoggingConfig
    metrics: MetricsConfig
    #: the main file (None = embedded defaults) and every file layered in, in order
    config_file: Path | None = None
    sources: tuple[str, ...] = ()

    def tier(self, name: str) -> TierConfig:
        return self.storage.tiers[name]

    def to_safe_dict(self) -> dict[str, Any]:
        """Plain data for printing: secrets redacted, paths as strings."""
        result = _safe(self)
        assert isinstance(result, dict)
        return result


def _safe(value: Any) -> Any:
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, RedisConfig):
        return {"url": redact_url(value.url)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, tuple | list | frozenset):
        return [_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
