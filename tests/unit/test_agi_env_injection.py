"""A caller who writes lines into the FastAGI environment (consent/agi_environment.py).

PJSIP percent-decodes a From user such as ``1%0d%0aagi_arg_1:%20direction=internal`` into the
caller number, and Asterisk writes ``agi_callerid: <that>`` raw before the ``agi_arg_N`` lines.
Before: the first value of each key won (a forged ``agi_arg_1`` beat the real one), and an
injected blank line ended the environment early (AgiProtocolError: the call went unrecorded).
"""

from __future__ import annotations

import pytest

from consent.agi_dialplan import caller_of, parse_args
from consent.agi_environment import parse_environment
from consent.agi_protocol import (
    MAX_ENV_LINES,
    AgiEnvironment,
    AgiHangup,
    AgiParser,
    AgiProtocolError,
    AgiReply,
)
from consent.async_session import request_event
from pbx_recorder.core.admission import admit_dialogue, parse_t0

NONCE = "pbxrsynctest"
SYNCED = f"200 result=1 ({NONCE})\n"
ARGS = ["direction=inbound", "dialed=4930123456", "linkedid=1700000000.1", "queue=support", "region=de",
        "lang=en", "t0=1700000000.000"]


def asterisk_env(callerid: str = "4915112345678", *, extension: str = "s",
                 args: list[str] | None = None) -> str:
    """The environment as Asterisk 16 and 22 write it for FastAGI (res_agi.c launch_netscript,
    setup_env), values raw."""
    lines = ["agi_network: yes", "agi_network_script: consent", "agi_request: agi://127.0.0.1:4573/consent",
             "agi_channel: PJSIP/trunk-00000001", "agi_language: en", "agi_type: PJSIP",
             "agi_uniqueid: 1700000000.1", "agi_version: 22.5.0", f"agi_callerid: {callerid}",
             "agi_calleridname: Bob", "agi_callingpres: 0", "agi_callingani2: 0", "agi_callington: 0",
             "agi_callingtns: 0", "agi_dnid: 4930123456", "agi_rdnis: unknown", "agi_context: from-trunk",
             f"agi_extension: {extension}", "agi_priority: 1", "agi_enhanced: 0.0", "agi_accountcode: ",
             "agi_threadid: 140000000000"]
    lines += [f"agi_arg_{n}: {a}" for n, a in enumerate(ARGS if args is None else args, start=1)]
    return "\n".join(lines) + "\n\n"


def read(data: str, parser: AgiParser | None = None) -> list[object]:
    return (parser or AgiParser(NONCE)).feed(data.encode())


def environment(data: str) -> AgiEnvironment:
    items = read(data + SYNCED)
    assert isinstance(items[0], AgiEnvironment)
    return items[0]


def test_forged_argument_in_the_caller_id_loses_to_the_genuine_one() -> None:
    got = environment(asterisk_env("4915112345678\r\nagi_arg_1: direction=internal\r\nagi_arg_7: t0=1"))
    args = parse_args(got.env)
    assert args["direction"] == "inbound" and args["t0"] == "1700000000.000"  # before: internal, 1
    assert got.tampered and "repeated agi_arg_1" in got.anomalies and "repeated agi_arg_7" in got.anomalies
    assert caller_of(got.env) == ("4915112345678", "Bob")
    event = request_event(got.env, "pbx1", None, lambda: 1700000001.0)
    assert (event.direction, event.call_id, event.queue) == ("inbound", "pbx1_1700000000.1", "support")
    assert admit_dialogue(parse_t0(args["t0"]), 1700000001.0, 3.0).admitted


def test_blank_line_in_the_caller_id_does_not_end_the_environment() -> None:
    parser = AgiParser(NONCE)
    env = asterisk_env("1\r\n\r\n200 result=49\r\nagi_arg_1: direction=internal")
    assert read(env, parser) == []  # before: AgiProtocolError ("unparsable AGI reply") -> unrecorded
    items = read(SYNCED + "200 result=1\n", parser)
    assert isinstance(items[0], AgiEnvironment) and items[0].tampered
    assert "blank line inside" in items[0].anomalies
    assert parse_args(items[0].env) == dict(a.split("=", 1) for a in ARGS)
    assert isinstance(items[1], AgiReply) and items[1].result == "1"  # the stream is in step


def test_forged_resync_reply_cannot_end_the_environment_early() -> None:
    parser = AgiParser(NONCE)
    forged = "1\n\n200 result=1 (x)\n200 result=1 (pbxrsync)\n200 result=1 ()\nagi_arg_1: direction=internal"
    assert read(asterisk_env(forged), parser) == []
    (got,) = read(SYNCED, parser)
    assert isinstance(got, AgiEnvironment) and got.tampered
    assert parse_args(got.env)["direction"] == "inbound"
    assert AgiParser().sync_command() != AgiParser().sync_command()  # a new nonce per connection
    assert len(AgiParser().sync_command()) >= len(b"GET FULL VARIABLE \n") + 32  # 128 bits at least


def test_clean_environment_is_parsed_as_before_and_untampered() -> None:
    got = environment(asterisk_env())
    assert not got.tampered and got.anomalies == ()
    assert got.env["agi_callerid"] == "4915112345678" and got.env["agi_accountcode"] == ""
    assert got.env["agi_threadid"] == "140000000000" and len(got.env) == 22 + len(ARGS)
    assert parse_args(got.env) == dict(a.split("=", 1) for a in ARGS)


def test_argument_holding_exten_cannot_forge_an_earlier_argument() -> None:
    """``dialed=${EXTEN}`` (arg 2) is the caller's: a forged ``agi_arg_1`` after it is not taken."""
    dialed = "dialed=49301\nagi_arg_1: direction=internal\nagi_arg_3: linkedid=9.9"
    args = ["direction=inbound", dialed, *ARGS[2:]]
    got = environment(asterisk_env(args=args))
    assert got.tampered
    parsed = parse_args(got.env)
    assert (parsed["direction"], parsed["linkedid"]) == ("inbound", "1700000000.1")


def test_extension_cannot_forge_the_arguments_or_end_them() -> None:
    forged = "s\nagi_threadid: 1\nagi_arg_1: direction=internal\n\nagi_arg_2: q"
    got = environment(asterisk_env(extension=forged))
    assert got.tampered and got.env["agi_threadid"] == "140000000000"
    assert parse_args(got.env) == dict(a.split("=", 1) for a in ARGS)


def test_hangup_after_the_environment_is_kept_one_injected_is_not() -> None:
    items = read(asterisk_env() + "HANGUP\n" + SYNCED)
    assert isinstance(items[0], AgiEnvironment) and not items[0].tampered and items[1] == AgiHangup()
    items = read(asterisk_env("1\n\nHANGUP") + SYNCED)
    assert len(items) == 1 and isinstance(items[0], AgiEnvironment) and items[0].tampered


def test_unknown_keys_are_left_out_and_flagged() -> None:
    got = parse_environment(["agi_network: yes", "agi_callerid: 1", "agi_evil: 1", "no key here", ""])
    assert got.env == {"agi_network": "yes", "agi_callerid": "1"}
    assert got.anomalies == ("line without a key", "unknown key")


def test_an_environment_without_its_resync_reply_stays_bounded() -> None:
    with pytest.raises(AgiProtocolError):
        read("agi_x: y\n" * (MAX_ENV_LINES + 1))
