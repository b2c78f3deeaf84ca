"""The bytes a new call's seal will sign, known before the call is written.

``Catalog._write_sealed`` seals a call row from the values it binds (``catalog.stored_form``).
For a call the catalog does not hold yet those values depend on the row alone, not on the
catalog: :func:`new_call_sealed_bytes` makes the same bytes from the same functions, so a helper
process can sign them while the writer is busy with earlier calls (``recording.sign_ahead``).
The writer still makes the bytes itself and takes a signature made ahead only when they are the
same bytes; for anything else (a call already stored, a row the prediction does not cover) it
signs as before.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pbx_recorder.catalog import stored_form
from pbx_recorder.catalog.json_columns import encode_column
from pbx_recorder.catalog.protected_rows import CALL_FIELDS, CLEAR_DEFAULTS, CLEAR_STORED, call_token_text

#: stands for the token and blind indexes a protected row binds: text, as theirs is (what the
#: seal covers never includes them; ``read_back`` only needs their kind)
_TOKEN_STAND_IN = "-"
_INDEX_STAND_INS = {"numbers": _TOKEN_STAND_IN, "caller_bi": _TOKEN_STAND_IN, "caller_bi4": _TOKEN_STAND_IN,
                    "callee_bi": _TOKEN_STAND_IN, "callee_bi4": _TOKEN_STAND_IN}


@dataclass(frozen=True, slots=True)
class SealForm:
    """What a catalog's seal of a new call depends on besides the row (picklable)."""

    columns: tuple[str, ...]  # the calls table's columns
    sealed: Mapping[str, stored_form.Column]  # what the seal covers: kinds and defaults
    protected: bool  # numbers go into the token: the seal covers them as it opens


def bound_columns(columns: Sequence[str], row: Mapping[str, Any], existing: bool,
                  now: float) -> dict[str, Any]:
    """The values ``_write_sealed`` binds for ``row`` (``existing``: over a stored row, only the
    row's own columns and ``updated_at``; a new row: every column the row has)."""
    data = {"updated_at": now, **row}
    return {c: encode_column(c, data[c]) for c in columns
            if c in data and (not existing or c in row or c == "updated_at")}


def new_call_sealed_bytes(form: SealForm, row: Mapping[str, Any]) -> bytes | None:
    """The bytes the seal of ``row`` signs when it is written as a new call (no row with its id
    in the catalog); None where ``_write_sealed`` would not seal from the values it binds."""
    # (the helper's import, not the catalog's: every CLI command imports this module)
    from pbx_recorder.recording.call_seal import sealed_bytes

    if "seal" in row or set(row) - set(form.columns):
        return None
    opened: Mapping[str, Any] = {}
    if form.protected and any(f in row for f in CALL_FIELDS):
        plain = {f: row[f] if f in row else CLEAR_DEFAULTS[f] for f in CALL_FIELDS}
        opened = call_token_text(plain)[1]
        row = {**row, **CLEAR_STORED, **_INDEX_STAND_INS}
    # (updated_at is never sealed: any time stands for the writer's clock)
    stored = stored_form.read_back(form.sealed, bound_columns(form.columns, row, False, 0.0), None)
    if stored is None:
        return None
    return sealed_bytes({**stored, **opened})
