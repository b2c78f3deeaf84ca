"""consent/agi_dialplan.py: the snippet's FastAGI arguments and caller, read from hostile input."""

from __future__ import annotations

from consent.agi_dialplan import MAX_ARGS, ROUTE, caller_of, parse_args


def test_known_arguments_only_first_of_each_and_no_control_characters_or_long_values() -> None:
    env = {
        "agi_arg_1": "direction=inbound",
        "agi_arg_2": "dialed=1\x00\x1b[2J",
        "agi_arg_3": "evil=1",
        "agi_arg_4": "queue=" + "q" * 500,
        "agi_arg_5": "noequals",
        "agi_arg_6": "direction=outbound",
        "agi_arg_7": "Region= eu ",
    }
    assert parse_args(env) == {"direction": "inbound", "region": "eu"}


def test_arguments_stop_at_the_first_gap_and_at_the_bound() -> None:
    assert parse_args({"agi_arg_1": "queue=a", "agi_arg_3": "region=eu"}) == {"queue": "a"}
    many = {f"agi_arg_{n}": "x=1" for n in range(1, MAX_ARGS + 1)} | {f"agi_arg_{MAX_ARGS + 1}": "queue=late"}
    assert parse_args(many) == {}


def test_caller_unknown_is_empty_and_the_rest_is_sanitized() -> None:
    assert caller_of({"agi_callerid": "unknown", "agi_calleridname": "<unknown>"}) == ("", "")
    num, name = caller_of({"agi_callerid": "+49\r\n151", "agi_calleridname": "A" * 200})
    assert num == "+49151" and len(name) == 80 and name.endswith("…")


def test_route_is_context_exten_priority() -> None:
    assert ROUTE.fullmatch("unrecorded,s,1")
    assert not ROUTE.fullmatch("unrecorded,s")
    assert not ROUTE.fullmatch("a,b,1;System(rm)")
