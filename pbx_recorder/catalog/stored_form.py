"""What a row's columns read back as, computed from the values bound to its INSERT or UPDATE.

The call seal covers a call row *as ``verify`` reads it* (``call_seal.sealed_bytes`` over the
stored values).  The write path used to read every row back after writing it, then seal it and
update it: two statements a call, and a row written twice.  It can seal before writing instead,
but only where the value read back is provably the value bound: a ``str`` into a TEXT column,
an ``int`` into an INTEGER column, an ``int`` or ``float`` into a REAL column (read back as a
float: the seal's canonical form makes ``12.0`` and ``12`` alike), ``None`` (NULL), and a
column's literal default when it is not bound.  Any other value (a ``bool``, a float bound
to an INTEGER column, which SQLite keeps and PostgreSQL rounds, a ``bytes``, a string bound to a
number column, a column type or default this module does not know) makes :func:`read_back`
answer None, and the caller reads the row back as before.  Both engines: SQLite's declared
types and ``PRAGMA table_info`` defaults, PostgreSQL's ``information_schema`` types and defaults.

``tests/unit/test_stored_form.py`` writes rows of every kind of value through SQLite and
compares what is read back with what this module says.  Pure once :func:`describe` has run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pbx_recorder.catalog import engine

INT64 = (-(2**63), 2**63 - 1)
_TEXT, _REAL, _INTEGER = "text", "real", "integer"
#: a literal default as either engine reports it: '...' (quotes doubled), a number or NULL, with an
#: optional PostgreSQL cast (``''::text``) -- anything else (a function call) is not evaluated here
_LITERAL = re.compile(r"^\(?(?:'(?P<text>(?:[^']|'')*)'|(?P<num>-?\d+(?:\.\d+)?)|(?P<null>NULL))\)?"
                      r"(?:::[a-z ]+)?$", re.IGNORECASE)
_SQLITE_KINDS = {"TEXT": _TEXT, "REAL": _REAL, "INTEGER": _INTEGER}
_PG_KINDS = {"text": _TEXT, "double precision": _REAL, "integer": _INTEGER, "bigint": _INTEGER,
             "smallint": _INTEGER}


class _Unknown:
    """A default this module cannot state (no literal): such a column must be bound."""


UNKNOWN = _Unknown()


@dataclass(frozen=True, slots=True)
class Column:
    kind: str  # text | real | integer
    default: Any  # the value read back when the column is not bound (UNKNOWN: cannot say)


def _literal(expr: str | None) -> Any:
    if expr is None:
        return None  # no default: NULL
    found = _LITERAL.match(expr.strip())
    if found is None:
        return UNKNOWN
    if found.group("text") is not None:
        return found.group("text").replace("''", "'")
    if found.group("num") is not None:
        num = found.group("num")
        return float(num) if "." in num else int(num)
    return None


def describe(conn: Any, table: str, names: Iterable[str]) -> dict[str, Column] | None:
    """The kind and default of each of ``names`` in ``table``; None if one is of a kind not known
    here (then every write reads back)."""
    if engine.is_postgres(conn):
        rows = conn.execute("SELECT column_name, data_type, column_default FROM information_schema.columns "
                            "WHERE table_name = ? AND table_schema = current_schema()", (table,)).fetchall()
        found = {str(r[0]): (_PG_KINDS.get(str(r[1])), r[2]) for r in rows}
    else:
        rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
        found = {str(r[1]): (_SQLITE_KINDS.get(str(r[2]).upper()), r[4]) for r in rows}
    out: dict[str, Column] = {}
    for name in names:
        kind, default = found.get(name, (None, None))
        if kind is None:
            return None
        value = _literal(default)
        converted = value if value is None or value is UNKNOWN else _as_stored(kind, value)
        out[name] = Column(kind, UNKNOWN if converted is UNKNOWN else converted)
    return out


def _as_stored(kind: str, value: Any) -> Any:
    """``value`` as the column returns it, or UNKNOWN when that is not certain."""
    if value is None:
        return None
    vtype = type(value)
    if kind == _TEXT:
        return value if vtype is str else UNKNOWN
    if kind == _REAL:
        if vtype is float:
            return value
        if vtype is int and INT64[0] <= value <= INT64[1]:
            return float(value)
        return UNKNOWN
    if vtype is int and INT64[0] <= value <= INT64[1]:
        return value
    return UNKNOWN


def read_back(columns: Mapping[str, Column], bound: Mapping[str, Any],
              base: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The columns of ``columns`` as they will be read back after writing ``bound`` (encoded
    values, as bound to SQL) over ``base`` (the stored row an update changes; None: a new row,
    whose unbound columns take their defaults).  None when one value is not certain."""
    out: dict[str, Any] = {}
    for name, col in columns.items():
        if name in bound:
            value = _as_stored(col.kind, bound[name])
        elif base is not None:
            value = base.get(name, UNKNOWN)
        else:
            value = col.default
        if value is UNKNOWN:
            return None
        out[name] = value
    return out
