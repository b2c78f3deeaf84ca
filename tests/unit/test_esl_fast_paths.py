"""The fast forms of the ESL ingest path give what the plain forms gave.

* percent-decoding (esl.frames.decode_value) equals urllib's ``unquote`` on every value,
  hostile ones included;
* the lazy header view (esl.frames.Headers: look-ups, ``pick``) equals the whole block split
  and decoded into a dict, and the normalizer makes the same call events from either;
* the call events and core commands of every captured FreeSWITCH stream, and of the bench's
  stream, are those the normalizer of commit 3aa2428 made (tests/fixtures/esl/normalized_golden.json,
  see tests/unit/esl_transcript.py).
"""

from __future__ import annotations

import json
import random
from urllib.parse import unquote

import pytest

from esl.frames import EslEvent, EslParser, Headers, HeaderSet, decode_value, parse_event_plain, pick
from esl.normalize import CDR_VARIABLES, EslNormalizer
from tests.unit.esl_transcript import FIXTURES, sources, transcript

GOLDEN = json.loads((FIXTURES / "normalized_golden.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "raw",
    [
        "Jane%20Doe", "M%C3%BCller%2C%20J%C3%BCrgen%20%E5%BC%A0%E4%BC%9F", "1%0D%0AEvent-Name%3A%20CUSTOM",
        "%", "100%", "%2", "%zz", "%%41", "%E5%BC", "%FF%FE", "a%5Cx41", "\\x41%41", "%5C%5C", "%00",
        "caf\u00e9%20", "%u0041", "%41%4a%4A%4g", "plain", "",
    ],
)
def test_decode_value_is_unquote(raw: str) -> None:
    assert decode_value(raw) == unquote(raw, errors="replace")


def test_decode_value_is_unquote_on_random_values() -> None:
    rnd = random.Random(7)
    alphabet = "%%%%0123456789abcdefABCDEFgz \\x\n\r:\u00e9\u5f20"
    for _ in range(5000):
        raw = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 24)))
        assert decode_value(raw) == unquote(raw, errors="replace"), raw


def eager(event: EslEvent) -> EslEvent:
    """The plain form: every header split and decoded into a dict up front."""
    return EslEvent(dict(event.headers), event.body)


def events_of(data: bytes) -> list[EslEvent]:
    return [e for f in EslParser().feed(data) if (e := f.event()) is not None]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_lazy_view_gives_the_same_call_events_as_a_dict(name: str) -> None:
    data = sources()[name]
    lazy, plain = EslNormalizer("pbx1"), EslNormalizer("pbx1")
    for event in events_of(data):
        assert lazy.normalize(event, 0.0) == plain.normalize(eager(event), 0.0)
    assert (lazy.injections, lazy.ignored) == (plain.injections, plain.ignored)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_call_events_and_commands_are_those_before_the_fast_paths(name: str) -> None:
    assert transcript(sources()[name]) == GOLDEN[name]


def test_every_lookup_of_the_view_equals_the_split_block() -> None:
    for data in sources().values():
        for event in events_of(data):
            fresh = parse_event_plain_again(event)
            split = dict(event.headers)
            for key in split:
                assert fresh.get(key, None) == split[key], key
            assert fresh.get("No-Such-Header", None) is None


def parse_event_plain_again(event: EslEvent) -> Headers:
    """A second, never-iterated view of the same block (the first one was split by dict())."""
    assert isinstance(event.headers, Headers)
    return Headers(event.headers._text, event.headers._end)


def test_pick_equals_one_get_per_name_and_keeps_the_first_value() -> None:
    body = (
        b"Event-Name: CHANNEL_HANGUP_COMPLETE\nvariable_billsec: 59\nvariable_billsec_x: 1\n"
        b"variable_duration:\nvariable_duration: 60\nvariable_last_app:x\nvariable_last_app: park\n"
        b"variable_sip_call_id: a%40b%0D%0AX: y\nvariable_billsec: 99\n\n"
        b"Content-Length: 5\n\nvariable_accountcode: inner-body-not-a-header\n"
    )
    lazy = parse_event_plain(body).headers
    names = HeaderSet(["variable_billsec", "variable_duration", "variable_last_app", "variable_sip_call_id",
                       "variable_accountcode"])
    found = pick(lazy, names)
    assert found == {"variable_billsec": "59", "variable_duration": "", "variable_last_app": "park",
                     "variable_sip_call_id": "a@b\r\nX: y"}
    fresh = parse_event_plain(body).headers
    assert found == {k: v for k in names.names if (v := fresh.get(k, None)) is not None}
    # the dict form (split_head) reads a malformed "Name:x" line (no space) as a value, the view
    # as no header (unchanged since 3aa2428; FreeSWITCH always writes ": "): compare without it
    well_formed = body.replace(b"variable_last_app:x\n", b"")
    assert pick(dict(parse_event_plain(well_formed).headers), names) == found


def test_cdr_variables_from_the_view_equal_those_from_a_dict() -> None:
    for event in events_of(sources()["bench_synthetic_3_calls"]):
        assert pick(event.headers, CDR_VARIABLES) == pick(dict(parse_event_plain_again(event)), CDR_VARIABLES)


@pytest.mark.parametrize("names", [[], [""], ["a:b"], ["a\nb"]])
def test_header_set_refuses_bad_names(names: list[str]) -> None:
    with pytest.raises(ValueError):
        HeaderSet(names)


def test_hostile_value_never_becomes_another_header_in_the_view() -> None:
    body = b"Event-Name: CHANNEL_CREATE\nCaller-Caller-ID-Name: Eve%0AUnique-ID: forged\nUnique-ID: real\n\n"
    headers = parse_event_plain(body).headers
    assert headers.get("Unique-ID") == "real"
    assert headers.get("Caller-Caller-ID-Name") == "Eve\nUnique-ID: forged"
    assert pick(headers, HeaderSet(["Unique-ID"])) == {"Unique-ID": "real"}


@pytest.mark.parametrize("max_legs", [1, 2, 3, 100_000])
def test_known_leg_short_cut_equals_deriving_the_call_id_again(max_legs: int) -> None:
    """A leg's call id remembered by _ids is the one root_of + call_id give, evictions included."""
    for name in ("queue_attended_transfer", "queue_bridge_blind_transfer", "bench_synthetic_3_calls"):
        fast, slow = EslNormalizer("pbx1", max_legs=max_legs), EslNormalizer("pbx1", max_legs=max_legs)
        for event in events_of(sources()[name]):
            assert fast.normalize(event, 0.0) == slow.normalize(event, 0.0)
            assert len(fast._call_of) <= len(fast._roots) <= max_legs
            slow._call_of.clear()  # the slow one derives every id again
