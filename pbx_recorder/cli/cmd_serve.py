"""``pbx-recorder serve``: the operator service (``pbx_recorder.service``) under uvicorn.

It listens on ``web.host:web.port`` (``web.port`` must be set), opens the catalog, tiers and key
ring the config names, and serves TLS itself when ``web.tls_cert``/``web.tls_key`` are set (else
put it behind a TLS proxy and set ``web.tls: true`` and ``web.trusted_proxies``).  It refuses to
run as root unless ``--allow-root``: run it as the service user (``etc/pbx-recorder-web.service``),
and without ``web.secret_key_file`` unless ``web.allow_unsealed`` (:func:`unsealed_refused`).
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
    unsealed_refused(config)
    app = build_app(ServiceContext.from_config(config))
    tls: dict[str, Any] = {}
    if web.tls_cert is not None and web.tls_key is not None:
        tls = {"ssl_certfile": str(web.tls_cert), "ssl_keyfile": str(web.tls_key)}
    return uvicorn.Server(uvicorn.Config(app, host=web.host, port=web.port, proxy_headers=False,
                                         server_header=False, date_header=False, access_log=False,
                                         log_config=None, **tls))


def unsealed_refused(config: Any) -> None:
    """Without ``web.secret_key_file`` nothing the service trusts in the catalog is sealed (accounts,
    roles, sessions, tokens, teams, QA rows) nor are its audit rows keyed: whoever can write the
    catalog (a PostgreSQL DBA, a stolen database password) could make themselves an admin.  The
    service refuses that unless ``web.allow_unsealed`` says so (a test bench, a demo), and then says
    what it runs without, at every start."""
    import logging

    web = config.web
    if web.secret_key_file is not None:
        return
    if not web.allow_unsealed:
        raise ConfigError(
            "is not set: the service's accounts, roles, sessions, tokens, teams and QA rows would not be "
            "sealed nor its audit rows keyed (whoever can write the catalog could make themselves an "
            "admin). Create it (`pbx-recorder users totp-key init` after setting it), run `pbx-recorder "
            "users seal`, or set web.allow_unsealed: true to run without (not for production)",
            key="web.secret_key_file")
    logging.getLogger(__name__).warning(
        "serving WITHOUT web.secret_key_file (web.allow_unsealed): access rows are not sealed, audit rows "
        "not keyed; whoever can write the catalog can grant themselves any role")


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
