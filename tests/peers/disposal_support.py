"""The disposal tests' service: the seeded service (``service_support``) with the recorder's config
behind it (the lifecycle jobs need the tiers, the privacy key and the retention classes), as
``ServiceContext.from_config`` gives it in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pbx_recorder.config import load_config
from tests.peers.service_support import Service, make_service


def config_for(svc: Service, tmp_path: Path) -> Any:
    """A config naming the seeded catalog and hot tier, a cold tier, the privacy key and a short
    retention class (the seeded recordings are stored at NOW: ``short`` expires them after a day)."""
    (tmp_path / "hmac.key").write_text("0123456789abcdef0123456789abcdef")
    cfg = tmp_path / "disposal.yaml"
    cfg.write_text(f"""
catalog: {{path: {svc.seeded.db}}}
storage:
  hot: hot
  cold: cold
  tiers:
    hot: {{type: local, path: {svc.seeded.tier.root}}}
    cold: {{type: local, path: {tmp_path}/cold}}
privacy: {{hash_key_file: {tmp_path}/hmac.key}}
spool: {{dir: {tmp_path}/spool}}
retention:
  default_class: standard
  classes:
    standard: {{days: 1, allow_short: true, cold_after_days: null}}
    complaints: {{days: 1825, protected: true}}
""")
    return load_config(str(cfg))


def attach_config(svc: Service, tmp_path: Path) -> Service:
    from storage.factory import build_tiers

    config = config_for(svc, tmp_path)
    svc.ctx.config = config  # type: ignore[attr-defined]
    svc.ctx.tiers = {**build_tiers(config.storage), "hot": svc.seeded.tier}  # type: ignore[attr-defined]
    return svc


def disposal_service(tmp_path: Path, **web: Any) -> Service:
    return attach_config(make_service(tmp_path, **web), tmp_path)
