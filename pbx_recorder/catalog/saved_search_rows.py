"""A saved search's stored query: encrypted under the catalog key, because it is run again.

A saved search (``saved_searches.query``, the search page's query string) may name a number in a
field no masking reaches: a number typed into ``keyword``, a remote agent's dial string in
``agent`` (``Local/4915112345678@from-internal``).  An export's stored filter is masked
(``exports.stored_filter``) because nothing runs on it again; a saved search is re-run, so a
masked copy would find other calls.  It is therefore stored as one token of the catalog's number
protection (``protected_rows.NumberProtection.seal_text``, AES-256-GCM; associated data: the owner
and the name, so a token copied onto another user's row fails): a copied database file or a
catalog backup does not give the number, the owner's console opens it and runs it as before.

A catalog without number protection (no keys: numbers in clear as before schema 6) refuses to
save a query that names a number (:func:`names_a_number`) rather than keep it in clear.

The catalog key is not per subject, so crypto-shredding does not reach these rows: erasure by
number opens them and deletes those that name the subject (:func:`names_number`,
``lifecycle.erasure``).  Rows written in clear before this version are sealed by ``catalog
migrate`` (``catalog.stored_filters_pass``).

The name is the row's key and stays in clear (the owner's list shows it, the token's associated
data binds it), so it may not hold a number: the console refuses a name with a number-like run
(:func:`name_names_a_number`, the same >= 5 digit rule as the query's), erasure deletes a saved
search whose name names the subject (:func:`text_names_number`), and ``catalog migrate`` renames
one an older version accepted to its masked form (:func:`masked_name`).  Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from urllib.parse import parse_qsl

from pbx_recorder.catalog.number_protection import digits_of, is_token
from pbx_recorder.catalog.protected_rows import NumberProtection, named_digits
from pbx_recorder.core.masking import mask_text
from pbx_recorder.errors import CryptoError, PolicyRefusal

KIND = "saved_searches"
#: a run this long, without its trunk zeros, is the subject's number written nationally when it
#: ends the subject's digits (``015112345678`` of ``4915112345678``)
MIN_NATIONAL_DIGITS = 7


def _row_key(user: str, name: str) -> str:
    return json.dumps([user, name], ensure_ascii=False)  # unambiguous: a name may hold a '/'


def _values(query: str) -> list[str]:
    return [v for _, v in parse_qsl(query.lstrip("?"), keep_blank_values=False)]


def names_a_number(query: str) -> bool:
    """Does any field of ``query`` hold a number-like run (>= 5 digits, as the catalog indexes)?"""
    return bool(named_digits(*_values(query)))


def name_names_a_number(name: str) -> bool:
    """Does a saved search's name (kept in clear: the row's key) hold a number-like run (>= 5
    digits, written in groups or not, as :func:`names_a_number` reads a query's fields)?"""
    return bool(named_digits(name))


def names_number(query: str, number: str) -> bool:
    """Does ``query`` name ``number``: a run of its fields that holds the number's digits, or that
    is the number without its country code (trunk zeros dropped, at least 7 digits).  Naming a
    number too many makes an erasure delete one saved search more, never keep one too many."""
    return text_names_number(number, *_values(query))


def filters_call(query: str, call_ids: Collection[str]) -> bool:
    """Does ``query`` filter on one of ``call_ids`` (its ``call_id`` field)?"""
    return any(k == "call_id" and v.strip() in call_ids
               for k, v in parse_qsl(query.lstrip("?"), keep_blank_values=False))


def text_names_number(number: str, *values: str) -> bool:
    """:func:`names_number` over plain texts (a saved search's name, a query hold's free field)."""
    return _runs_name(named_digits(*values), digits_of(number))


def _runs_name(runs: Iterable[str], digits: str) -> bool:
    if len(digits) < 5:
        return False
    for run in runs:
        national = run.lstrip("0")
        if digits in run or (len(national) >= MIN_NATIONAL_DIGITS and digits.endswith(national)):
            return True
    return False


def masked_name(name: str) -> str:
    """A name an older version accepted with a number in it, as ``catalog migrate`` renames it:
    each number masked (``complaint 4915112345678`` -> ``complaint 491******5678``); a run the
    text masking keeps readable (a date, a 5-digit run) loses every digit, so no 5+ digit run is
    left."""
    masked = mask_text(name)
    return _DIGIT.sub("*", masked) if name_names_a_number(masked) else masked


def unique_name(base: str, taken: Iterable[str]) -> str:
    """``base``, or ``base #2``, ``base #3`` ... : the first one not among ``taken`` (one owner's
    names: the key is (owner, name)).  ``#`` keeps the suffix apart from digits ``base`` ends in
    (``(2)`` would read as one run with them)."""
    used = set(taken)
    if base not in used:
        return base
    n = 2
    while f"{base} #{n}" in used:
        n += 1
    return f"{base} #{n}"


_DIGIT = re.compile(r"\d")


def sealed(numbers: NumberProtection | None, user: str, name: str, query: str) -> str:
    """What the catalog stores for the saved search: the query as a token; without keys, the
    query in clear when it names no number, else :class:`PolicyRefusal`."""
    if numbers is None:
        if names_a_number(query):
            raise PolicyRefusal("a saved search cannot hold a phone number (in keyword, agent ...) "
                                "in a catalog without number protection: leave it out of the search")
        return query
    return numbers.seal_text(KIND, _row_key(user, name), query)


def opened(numbers: NumberProtection | None, user: str, name: str, stored: str) -> str:
    """The query a stored value gives back (a value in clear, from before, as it is);
    :class:`CryptoError` when it is a token that cannot be opened."""
    if not is_token(stored):
        return stored
    if numbers is None:
        raise CryptoError(f"saved search {name!r} is encrypted and this catalog has no number keys")
    return numbers.open_text(KIND, _row_key(user, name), stored)
