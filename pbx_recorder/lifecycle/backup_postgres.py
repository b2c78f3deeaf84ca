"""Catalog backup and restore for a PostgreSQL catalog, with PostgreSQL's own consistent dump.

``backup`` runs ``pg_dump --format=custom`` (one snapshot: consistent while every node writes)
of the catalog's schema (the first schema of a ``search_path`` in the URL's ``options``; the
whole database when the URL names none) into an owner-only work folder beside the node's local
catalog state, then seals and ships it exactly as :mod:`pbx_recorder.lifecycle.backup` does a
SQLite backup (same envelope, backup key, hash sidecar and tier), as
``catalog-backups/<UTC timestamp>.pgdump.pbxr``: the suffix says which engine it is for.

``restore`` verifies and decrypts it the same way, then ``pg_restore``\\ s it in one transaction
into an empty schema (or a database with nothing in its ``public`` schema) named by the target
URL: a dump of schema S restored into schema T is restored as S (which must not exist there),
scrubbed by the erasure tombstones while still named S, and only then renamed T, so the catalog
never appears with an erased subject in it.  A restore that fails after ``pg_restore`` drops what
it created.

The password (``catalog.password_file``) reaches ``pg_dump``/``pg_restore`` only through the
``PGPASSWORD`` variable of the child process: never on a command line, never in a message.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pbx_recorder.catalog import engine
from pbx_recorder.errors import CatalogError, IntegrityError

BIN_ROOT = Path("/usr/lib/postgresql")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+) \S+", re.M)

Scrub = Callable[[Any], int]


def tool(name: str) -> str:
    """``pg_dump``/``pg_restore``: from PATH, else the newest /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which(name)
    if found:
        return found
    dirs = sorted((d for d in BIN_ROOT.glob("*/bin") if d.parent.name.isdigit()),
                  key=lambda d: int(d.parent.name), reverse=True)
    for d in dirs:
        if os.access(d / name, os.X_OK):
            return str(d / name)
    raise CatalogError(f"{name} not found on PATH nor in {BIN_ROOT}/<version>/bin: install the "
                       "PostgreSQL client (Debian: postgresql-client) to back up a PostgreSQL catalog")


def schema_of(url: str) -> str | None:
    """The schema the catalog lives in: the first entry of a ``search_path`` set by the URL's
    ``options`` (``-c search_path=...``), or None (the database's default, ``public``)."""
    options = dict(parse_qsl(urlsplit(url).query)).get("options", "")
    try:
        words = shlex.split(options)
    except ValueError as exc:
        raise CatalogError(f"catalog URL options cannot be read: {exc}") from exc
    path = None
    for i, word in enumerate(words):
        setting = word[2:] if word.startswith(("-c", "--")) else None
        if setting == "" and i + 1 < len(words):
            setting = words[i + 1]
        if setting and setting.replace("-", "_").startswith("search_path="):
            path = setting.split("=", 1)[1]
    if path is None:
        return None
    for entry in (e.strip().strip('"') for e in path.split(",")):
        if entry and entry not in ("$user", "pg_catalog"):
            if not _NAME.fullmatch(entry):
                raise CatalogError(f"catalog schema {entry!r} is not a plain SQL name")
            return entry
    return None


def with_schema(url: str, schema: str) -> str:
    """``url`` with its ``options`` replaced by ``-csearch_path=<schema>``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _child(url: str, password: str | None) -> tuple[str, dict[str, str]]:
    """The URL to give a client (without any password, in its user part or its ``password``
    query parameter: a child's argv is readable by every local user) and the environment
    carrying it."""
    parts = urlsplit(url)
    env = dict(os.environ)
    secret = password if password is not None else engine.password_of(url)
    if parts.password is not None:  # config refuses these; a hand-given restore target may not
        secret = secret if secret is not None else parts.password
        netloc = (quote(parts.username or "") + "@" if parts.username else "") + (parts.hostname or "")
        parts = parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else ""))
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "password" for k, _ in query):  # the config refuses it too: argv is readable in ps
        secret = secret if secret is not None else next(v for k, v in query if k == "password")
        parts = parts._replace(query=urlencode([(k, v) for k, v in query if k != "password"],
                                               quote_via=quote))
    if secret is not None:
        env["PGPASSWORD"] = secret
    return urlunsplit(parts), env


def _run(cmd: list[str], env: dict[str, str], what: str, url: str) -> str:
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise CatalogError(f"{what} of {engine.describe(url)} could not start: {exc}") from exc
    if done.returncode != 0:
        lines = [x for x in done.stderr.strip().splitlines() if "CONTEXT:" not in x]  # no row data
        detail = " | ".join([x for x in lines if "error:" in x][:2] or lines[-3:])
        raise CatalogError(f"{what} of {engine.describe(url)} failed ({done.returncode}): {detail}")
    return done.stdout


def dump(url: str, to: Path, *, password: str | None = None) -> None:
    """``pg_dump`` the catalog at ``url`` (its schema only, if the URL names one) into ``to``."""
    target, env = _child(url, password)
    cmd = [tool("pg_dump"), "--format=custom", "--no-password", "--file", str(to)]
    schema = schema_of(url)
    if schema:
        cmd += ["--strict-names", f'--schema="{schema}"']
    _run(cmd + ["--dbname", target], env, "pg_dump", url)


def dumped_schema(archive: Path) -> tuple[str, str]:
    """The one schema the tables of a custom-format dump live in, and the dump's table of
    contents (``pg_restore --list``)."""
    listing = _run([tool("pg_restore"), "--list", str(archive)], dict(os.environ), "pg_restore --list",
                   str(archive))
    schemas = set(_TOC_TABLE.findall(listing))
    if len(schemas) != 1 or not _NAME.fullmatch(next(iter(schemas))):
        raise IntegrityError(f"backup holds tables in {sorted(schemas) or 'no schema'}: not one catalog")
    return schemas.pop(), listing


def _without_create_schema(listing: str, schema: str, to: Path) -> Path:
    """A ``--use-list`` file that restores everything but ``CREATE SCHEMA`` (it exists, empty)."""
    line = re.compile(rf"^(\d+; \d+ \d+ SCHEMA - {re.escape(schema)} \S+)$", re.M)
    to.write_text(line.sub(r";\1", listing))
    return to


def _relations(conn: Any, schema: str) -> int | None:
    """How many tables, sequences, views, functions and types ``schema`` holds; None if there is
    no such schema."""
    if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = ?", (schema,)).fetchone():
        return None
    row = conn.execute(
        "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ?) + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON "
        "n.oid = p.pronamespace WHERE n.nspname = ?) + (SELECT count(*) FROM pg_type t JOIN "
        "pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = ? AND t.typrelid = 0 AND "
        "t.typcategory <> 'A')", (schema, schema, schema)).fetchone()
    return int(row[0])


def load(archive: Path, url: str, key: str, *, scrub: Scrub | None, password: str | None = None) -> int:
    """Restore ``archive`` into the empty schema ``url`` names; returns calls the scrub removed."""
    want = schema_of(url) or "public"
    source, listing = dumped_schema(archive)
    password = password if password is not None else engine.password_of(url)
    engine.configure(url, password=password)
    admin = engine.connect(url)
    try:
        held = _relations(admin, want)
        if held:
            raise CatalogError(f"schema {want} of {engine.describe(url)} holds {held} relation(s): "
                               "restore writes into an empty schema only")
        if source != want and _relations(admin, source) is not None:
            raise CatalogError(f"the backup's schema {source} exists in {engine.describe(url)}: "
                               f"restore into another database, or into schema {source} there")
        cmd = [tool("pg_restore"), "--no-password", "--single-transaction", "--exit-on-error",
               "--no-owner", "--no-privileges"]
        if source == want and held == 0:  # restore into the existing empty schema
            cmd.append(f"--use-list={_without_create_schema(listing, source, archive.with_suffix('.list'))}")
        target, env = _child(url, password)
        _run(cmd + ["--dbname", target, str(archive)], env, "pg_restore", url)
        try:
            removed = _check_and_scrub(with_schema(url, source), key, scrub, password)
            if source != want:
                admin.execute("BEGIN")
                if held == 0:
                    admin.execute(f'DROP SCHEMA "{want}"')
                admin.execute(f'ALTER SCHEMA "{source}" RENAME TO "{want}"')
                admin.execute("COMMIT")
        except BaseException:
            if admin.in_transaction:
                admin.execute("ROLLBACK")
            _undo(admin, source, existed=source == want and held == 0)
            raise
        vacuum_analyze(admin, want)
        return removed
    finally:
        admin.close()


def vacuum_analyze(conn: Any, schema: str) -> None:
    """``VACUUM (ANALYZE)`` every table of ``schema`` (``conn`` in autocommit): a restored catalog
    has no planner statistics (``pg_dump`` does not carry them) and no page marked all-visible,
    so until autovacuum came by its searches would be planned blind and its index-only reads
    would visit the table for every entry (measured at 1 M calls, ``bench_catalog.py``: a team's
    rare-status search 41 ms at p50 right after a bulk load, 13 ms after this)."""
    tables = conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = ? AND c.relkind = 'r' ORDER BY 1", (schema,)).fetchall()
    quoted_schema = '"' + schema.replace('"', '""') + '"'
    for (name,) in tables:
        quoted = '"' + str(name).replace('"', '""') + '"'
        conn.execute(f"VACUUM (ANALYZE) {quoted_schema}.{quoted}")


def _undo(conn: Any, schema: str, *, existed: bool) -> None:
    """Take back a restore that failed after ``pg_restore``: no unscrubbed catalog stays."""
    if not existed:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    rows = conn.execute("SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON "
                        "n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind IN ('r', 'p', 'v', "
                        "'m', 'S') ORDER BY c.relkind DESC", (schema,)).fetchall()
    for name, kind in rows:  # the schema was empty before: everything in it is the restore's
        quoted = '"' + str(name).replace('"', '""') + '"'
        conn.execute(f'DROP {kinds[kind]} IF EXISTS "{schema}".{quoted} CASCADE')
    functions = conn.execute("SELECT format('%I.%I(%s)', n.nspname, p.proname, "
                             "pg_get_function_identity_arguments(p.oid)) FROM pg_proc p JOIN "
                             "pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ?",
                             (schema,)).fetchall()
    for (signature,) in functions:
        conn.execute(f"DROP FUNCTION IF EXISTS {signature} CASCADE")


def _check_and_scrub(url: str, key: str, scrub: Scrub | None, password: str | None) -> int:
    engine.configure(url, password=password)
    conn = engine.connect(url)
    try:
        if not engine.table_columns(conn, "calls"):
            raise IntegrityError(f"backup {key} restored no catalog (no calls table)")
        if engine.integrity_check(conn) != "ok":
            raise IntegrityError(f"backup {key} fails the integrity check")
        return scrub(conn) if scrub is not None else 0
    finally:
        conn.close()
