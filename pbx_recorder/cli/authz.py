"""The one way a CLI command learns who is acting and whether they may: ``authorize``.

The actor is the OS user (``PBX_RECORDER_USER`` only when run as root, see current_actor);
the role is ``access.users[actor]``.
``pbx_recorder.core.access_policy`` decides.  A refusal is written to ``audit_log`` (action
``denied:<action>``) before ``AccessDenied`` (exit 7) is raised.

When ``access.users`` is empty, role-based access is not configured (a sandbox or the demo):
the actor acts as ``admin`` and a one-line warning on stderr says so.  Configure
``access.users`` on any real installation.
"""

from __future__ import annotations

import logging
import os
import pwd
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from pbx_recorder import audit_trail
from pbx_recorder.catalog import engine
from pbx_recorder.core import access_policy
from pbx_recorder.errors import AccessDenied, CatalogError

log = logging.getLogger(__name__)

UNCONFIGURED_ROLE = "admin"
HOST_ADMIN = access_policy.HOST_ADMIN  #: the role audited for root or the service user acting themselves


@dataclass(frozen=True)
class Principal:
    actor: str
    role: str


def named_operator() -> str | None:
    """The operator a root front end acts for (``PBX_RECORDER_USER`` while the effective uid is
    0), else None.  Such a run takes roles and paths from the root-owned default config only
    (``cli/operator_gate.py``), and every command it runs must authorize an action."""
    named = os.environ.get("PBX_RECORDER_USER")
    return named if named and os.geteuid() == 0 else None


def current_actor() -> str:
    """The OS user of this process (from the uid, not from $USER/$LOGNAME, which anyone can
    set).  ``PBX_RECORDER_USER`` names the operator only when the process runs as root: a
    trusted front end or sudo wrapper acting for a named person.  For anyone else it is
    ignored, so a user cannot claim another user's role by setting a variable."""
    named = named_operator()
    if named:
        return named
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid:{os.getuid()}"


def _rbac_configured(config: Any) -> bool:
    return bool(config.access.users)


def resolve(config: Any) -> Principal:
    """Actor and role, no permission check (empty role: a user not in ``access.users``)."""
    actor = current_actor()
    if not _rbac_configured(config):
        return Principal(actor, UNCONFIGURED_ROLE)
    return Principal(actor, config.access.role_of(actor) or "")


def authorize(config: Any, catalog_or_conn: Any, action: str, target: str = "", *,
              also: Iterable[str] = ()) -> Principal:
    """Resolve the actor and check ``action`` (and each of ``also``); audit and raise on refusal.

    ``catalog_or_conn`` is a ``Catalog``, a writable ``sqlite3.Connection`` or ``None`` (the
    configured catalog is then opened only to record a refusal).
    """
    principal = resolve(config)
    if not _rbac_configured(config):
        click.echo(f"warning: access.users is empty: role-based access is not configured, "
                   f"{principal.actor!r} acts as admin", err=True)
    for wanted in (action, *also):
        if access_policy.check(principal.role, wanted):
            continue
        _record_denial(config, catalog_or_conn, principal, wanted, target)
        who = f"user {principal.actor!r}"
        if not principal.role:
            raise AccessDenied(f"{who} is not in access.users (no role) and may not {wanted}")
        raise AccessDenied(f"{who} (role {principal.role}) may not {wanted}")
    return principal


def host_admin_or_authorize(config: Any, catalog_or_conn: Any, action: str, target: str = "") -> Principal:
    """For the host administrator's commands (``users``, ``review sample``, ``reports run``,
    ``asterisk check``): root or the service user acting themselves is ``host-admin`` (the
    privilege gate already let only them in); a root front end acting for a named operator is
    that operator, held to ``action`` like any operator command (refusals audited)."""
    if named_operator() is None:
        from pbx_recorder.cli.privilege import require_privileged

        return Principal(require_privileged(), HOST_ADMIN)
    return authorize(config, catalog_or_conn, action, target)


def refuse(config: Any, catalog_or_conn: Any, action: str, target: str, message: str) -> None:
    """Audit ``denied:<action>`` for the current actor (role from ``config`` when there is one) and
    raise ``AccessDenied(message)``.  ``config`` None: nothing could be loaded, nothing is audited."""
    if config is None:
        click.echo("warning: the refusal could not be audited: the default config could not be read",
                   err=True)
    else:
        _record_denial(config, catalog_or_conn, resolve(config), action, target)
    raise AccessDenied(message)


def _insert(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    at, actor, role, action, target, detail = row
    try:
        audit_trail.record(conn, actor=actor, role=role, action=action, target=target, detail=detail, now=at)
    except CatalogError as exc:
        raise sqlite3.OperationalError(str(exc)) from exc  # handled like a read-only connection below
    if conn.in_transaction and conn.isolation_level is not None:
        conn.commit()  # the refusal must be kept even though the command stops here


def _record_denial(config: Any, catalog_or_conn: Any, principal: Principal, action: str,
                   target: str) -> None:
    detail: Mapping[str, Any] = {"allowed_roles": sorted(access_policy.roles_for(action))}
    name = f"denied:{action}"
    log.info("access denied: %s (role %s) may not %s %s", principal.actor, principal.role or "none", action,
             target)
    if catalog_or_conn is not None and not engine.is_connection(catalog_or_conn):
        catalog_or_conn.audit(principal.actor, principal.role, name, target, dict(detail))
        return
    row = (time.time(), principal.actor, principal.role, name, target, dict(detail))
    if catalog_or_conn is not None:
        try:
            _insert(catalog_or_conn, row)
            return
        except engine.db_errors():
            pass  # a read-only connection: open a writable one below
    from pbx_recorder.lifecycle.journal import open_catalog

    try:
        conn = open_catalog(config.catalog.target)
    except CatalogError as exc:
        click.echo(f"warning: the refusal could not be audited: {exc}", err=True)
        return
    try:
        _insert(conn, row)
    except engine.db_errors() as exc:
        click.echo(f"warning: the refusal could not be audited: {exc}", err=True)
    finally:
        conn.close()
