"""The number finder scans a compact JSON text (made by orjson where it writes ``json``'s text):
it finds the runs the spaced text of ``json.JSONEncoder`` found before, whatever the value."""

from __future__ import annotations

import json
import random
from typing import Any

from pbx_recorder.catalog import protected_rows
from pbx_recorder.catalog.protected_rows import named_digits

_SPACED = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False)


def spaced_named_digits(*values: Any) -> set[str]:
    """named_digits as it was, over the spaced text."""
    runs: set[str] = set()
    for value in values:
        if value is None or value == "":
            continue
        value = protected_rows._scanned(value)
        text = value if isinstance(value, str) else _SPACED.encode(value)
        for run in protected_rows._NUMBER_RUN.findall(text):
            digits = protected_rows.digits_of(run)
            if len(digits) >= protected_rows.MIN_NAMED_DIGITS:
                runs.add(digits)
            if digits != run:
                runs.update(protected_rows._PLAIN_RUN.findall(run))
    return runs


def piece(r: random.Random) -> Any:
    kind = r.randrange(7)
    if kind == 0:
        return r.randrange(10**12)
    if kind == 1:
        return r.choice([12345.5, 1e-05, 1e16, 0.1, -7.25, 123456789.125])
    if kind == 2:
        return None
    alphabet = "0123456789 +-()./,:户é"
    return "".join(r.choice(alphabet) for _ in range(r.randrange(1, 24)))


def document(r: random.Random, depth: int = 0) -> Any:
    if depth > 2 or r.random() < 0.3:
        return piece(r)
    if r.random() < 0.5:
        return [document(r, depth + 1) for _ in range(r.randrange(5))]
    keys = ("".join(r.choice("ab1 2") for _ in range(3)) for _ in range(r.randrange(6)))
    return {key: document(r, depth + 1) for key in keys}


def test_compact_text_finds_the_runs_the_spaced_text_found() -> None:
    r = random.Random(20261207)
    found = 0
    for _ in range(5000):
        doc = document(r)
        want = spaced_named_digits(doc, {"src": doc, "billsec": 12345678})
        assert named_digits(doc, {"src": doc, "billsec": 12345678}) == want
        found += len(want)
    assert found > 1000  # the documents name numbers (the test compares something)
