"""``pbx-recorder serve``: the operator service (``pbx_recorder.service``) under uvicorn.

It listens on ``web.host:web.port`` (``web.port`` must be set), opens the catalog, tiers and key
ring the config names, and serves TLS itself when ``web.tls_cert``/``web.tls_key`` are set (else
put it behind a TLS proxy and set ``web.tls: true`` and ``web.trusted_proxies``).  It refuses to
run as root unless ``--allow-root``: run it as the service user (``etc/pbx-recorder-web.service``).
"""

from __future__ import annotations

import os
from typing import Any

import click

from pbx_recorder.errors import AccessDenied, ConfigError


def build_server(config: Any) -> Any:
    """A ``uvicorn.Server`` for the service the config describes (not yet running)."""
    import uvicorn

    from pbx_recorder.service.app import build_app
    from pbx_recorder.service.context import ServiceContext

    web = config.web
    if web.port is None:
        raise ConfigError("web.port is not set: the operator service has nowhere to listen", key="web.port")
    app = build_app(ServiceContext.from_config(config))
    tls: dict[str, Any] = {}
    if web.tls_cert is not None and web.tls_key is not None:
        tls = {"ssl_certfile": str(web.tls_cert), "ssl_keyfile": str(web.tls_key)}
    return uvicorn.Server(uvicorn.Config(app, host=web.host, port=web.port, proxy_headers=False,
                                         server_header=False, date_header=False, access_log=False,
                                         log_config=None, **tls))


@click.command("serve")
@click.option("--allow-root", is_flag=True, help="Run even as root (not recommended).")
@click.pass_context
def serve(ctx: click.Context, allow_root: bool) -> None:
    """Run the operator service (HTTP API) until SIGTERM; see README "Operator service"."""
    from pbx_recorder.config import load_config

    if os.geteuid() == 0 and not allow_root:
        raise AccessDenied("refusing to serve as root: run as the service user (or pass --allow-root)")
    server = build_server(load_config(ctx.obj["config_path"]))
    server.run()


def register(group: click.Group) -> None:
    group.add_command(serve)
