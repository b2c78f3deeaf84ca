from pbx_recorder.core.masking import last4, mask_number, mask_text, sanitize


def test_mask_mobile_number():
    assert mask_number("13812345678") == "138****5678"


def test_mask_keeps_plus_and_masks_middle():
    assert mask_number("+8613812345678") == "+861******5678"


def test_mask_hides_at_least_four_digits_of_every_number_of_eight_or_more():
    """An 8-digit number showed 3 + 4 digits: one hidden digit, found by 10 throttled searches."""
    assert mask_number("62345678") == "****5678"
    assert mask_number("0215551234") == "******1234"
    for n in range(8, 16):
        number = "9" * (n - 4) + "1234"
        assert sum(ch == "*" for ch in mask_number(number)) >= 4, number


def test_mask_short_numbers():
    assert mask_number("1234567") == "*****67"
    assert mask_number("12345") == "***45"
    assert mask_number("1001") == "1***"
    assert mask_number("7") == "7"
    assert mask_number("") == ""
    assert mask_number(None) == ""


def test_mask_hostile_strings_are_stripped_and_bounded():
    hostile = "138\x1b[31m1234\n5678\x00" + "9" * 500
    masked = mask_number(hostile)
    assert "\x1b" not in masked and "\n" not in masked and "\x00" not in masked
    assert len(masked) <= 32
    assert "5678" not in masked[3:-4]


def test_sanitize_removes_control_and_bounds():
    assert sanitize("a\tb\u202ec") == "abc"
    assert sanitize("x" * 100, 10) == "x" * 9 + "…"


def test_last4():
    assert last4("+86 138-1234-5678") == "5678"
    assert last4("12") == "12"
    assert last4("anonymous") == ""


# --- every number-bearing field (issue 6 "masking is complete", issue 10 pbxrecdnid) ----------

CALLER, DIALED = "4915112345678", "4930123456"


def call_row():
    return {"call_id": "n1_1.1", "caller_num": CALLER, "callee_num": DIALED, "did": DIALED,
            "caller_name": f"Mobile {CALLER}", "agent": "alice",
            "cdr": {"src": CALLER, "dst": "1", "clid": f'"Caller" <{CALLER}>', "pbxrecdnid": DIALED,
                    "channel": f"SIP/{CALLER}-00000001", "dstchannel": f"PJSIP/{DIALED}-0002",
                    "lastdata": f"PJSIP/{DIALED}@trunk,30", "userfield": f"cb:{CALLER}",
                    "some_custom_mapping": f"+{CALLER}", "disposition": "ANSWERED", "billsec": "29",
                    "uniqueid": "1732200000.42", "dcontext": f"did-{DIALED}"}}


def test_present_call_masks_every_number_bearing_field():
    from pbx_recorder.core.masking import present_call

    shown = present_call(call_row(), unmask=False)
    text = repr(shown)
    assert CALLER not in text and DIALED not in text
    assert shown["cdr"]["clid"] == '"Caller" <491******5678>'
    assert shown["cdr"]["pbxrecdnid"] == "******3456" and shown["did"] == "******3456"
    assert shown["cdr"]["lastdata"] == "PJSIP/******3456@trunk,30"
    assert shown["cdr"]["some_custom_mapping"] == "+491******5678"  # unknown CDR fields: default deny
    assert shown["cdr"]["disposition"] == "ANSWERED" and shown["cdr"]["uniqueid"] == "1732200000.42"
    assert shown["caller_name"] == "Mobile 491******5678"
    assert present_call(call_row(), unmask=True)["cdr"] == call_row()["cdr"]


def test_present_record_masks_nested_number_keys():
    from pbx_recorder.core.masking import present_record

    live = {"call_id": "n1_1.1", "caller_num": CALLER, "channels": [f"SIP/{CALLER}-01", "PJSIP/alice-02"]}
    shown = present_record(live, unmask=False)
    assert CALLER not in repr(shown) and shown["channels"][1] == "PJSIP/alice-02"
    assert present_record(live, unmask=True) == live


def test_mask_text_masks_numbers_in_free_text_but_not_ids():
    from pbx_recorder.core.masking import mask_text

    line = f"call pbx1_1732200000.42 from {CALLER} (+{DIALED}) at 1732200000.5 ext 1001, 4500 bytes"
    masked = mask_text(line)
    assert CALLER not in masked and DIALED not in masked
    assert "pbx1_1732200000.42" in masked and "1732200000.5" in masked and "1001" in masked


def test_log_lines_and_cli_errors_are_masked(tmp_path, capsys):
    import io
    import logging

    from pbx_recorder import log_masking
    from pbx_recorder.cli import main

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    log_masking.install(logger)
    try:
        logger.warning("caller %s hung up", CALLER)
        try:
            raise ValueError(f"bad caller id {CALLER}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert CALLER not in stream.getvalue() and "491******5678" in stream.getvalue()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {tmp_path}/cat.db}}\n")
    assert main(["--config", str(cfg), "calls", "show", CALLER]) != 0
    assert CALLER not in capsys.readouterr().err


def test_channel_names_mask_numbers_but_keep_extensions_and_suffixes():
    from pbx_recorder.core.masking import mask_channel

    assert mask_channel(f"SIP/{CALLER}-00000001") == "SIP/491******5678-00000001"
    assert mask_channel("PJSIP/1001-0000000a") == "PJSIP/1001-0000000a"
    assert mask_channel(f"PJSIP/{DIALED}@trunk,30,tT") == "PJSIP/******3456@trunk,30,tT"


def test_a_queue_member_named_by_its_number_is_masked_but_extensions_stay_readable():
    """Red-team re-try: AgentConnect names the agent by MemberName or, without one, by its
    Interface -- for a remote agent that is their mobile (``Local/<number>@from-queue/n``), and
    it reached every agent's ``calls search`` table and JSON, ``calls live`` and the CDR in clear."""
    from pbx_recorder.core.masking import present_call, present_record

    remote = "Local/4915112345678@from-queue/n"
    row = {"call_id": "c", "caller_num": "", "callee_num": "", "did": "", "agent": remote,
           "cdr": {"agent": remote}}
    shown = present_call(row, unmask=False)
    assert shown["agent"] == "Local/491******5678@from-queue/n" and "4915112345678" not in str(shown)
    assert present_call({**row, "agent": "PJSIP/1001"}, unmask=False)["agent"] == "PJSIP/1001"
    assert present_call({**row, "agent": "Alice Smith"}, unmask=False)["agent"] == "Alice Smith"
    assert present_call(row, unmask=True)["agent"] == remote
    assert "4915112345678" not in str(present_record({"agent": remote, "call_id": "c"}, unmask=False))


def test_free_text_masks_an_international_number_written_in_groups():
    """Red-team re-try: log lines and errors masked runs of 6+ digits only, so a caller name or
    an exception quoting ``+49 151 1234 5678`` / ``tel:+49-151-1234-5678`` kept every digit."""
    from pbx_recorder.core.masking import mask_text

    assert mask_text("from tel:+49-151-1234-5678 ok") == "from tel:+491******5678 ok"
    assert mask_text("caller '+49 (151) 1234 5678'") == "caller '+491******5678'"
    for kept in ("at 2026-12-01 15:59:47,021", "ami 10.0.0.1:5038", "v+1.2.3", "retry +5 s"):
        assert mask_text(kept) == kept


def test_free_text_keeps_a_channels_sequence_suffix_but_masks_the_number_before_it():
    from pbx_recorder.core.masking import mask_text

    assert mask_text("on channel PJSIP/mallory-00000002 from") == "on channel PJSIP/mallory-00000002 from"
    masked = mask_text("hangup on SIP/4915112345678-00000009")
    assert "4915112345678" not in masked and masked.endswith("-00000009")


def test_a_freeswitch_call_id_is_not_masked_even_when_a_group_is_all_digits() -> None:
    """An audit row's target is the call id: a UUID group of 12 digits is not a phone number
    (found by a FreeSWITCH PCI test whose audit lookup by call id came back empty)."""
    from pbx_recorder.audit_trail import scrub

    call_id = "sandbox_5185b026-1f2e-4a3b-9c4d-988012347883"
    assert mask_text(call_id) == call_id
    assert scrub(call_id) == call_id
    text = f"call {call_id} from +8613812345678"
    assert mask_text(text) == f"call {call_id} from " + mask_number("+8613812345678")
    assert "13812345678" not in mask_text(text)


def test_a_number_anywhere_in_a_channel_name_is_masked_and_the_accountcode_too():
    """Session-45 review: a number after ``_``, ``-`` or ``.`` in a channel name (a trunk named with
    the caller's number, a Local channel dialled in groups) and the CDR's ``accountcode`` (which a
    PBX may set to the customer's number) reached operators without ``calls.unmask`` in clear."""
    from pbx_recorder.core.masking import mask_channel, present_call

    for name in (f"PJSIP/trunk_{CALLER}-00000001", "Local/0049-151-12345678@from-internal",
                 f"SIP/out.{CALLER}-0000000b", f"Local/{CALLER}@from-queue-0000001a;1"):
        shown = mask_channel(name)
        assert CALLER not in shown and "12345678" not in shown and "5112345" not in shown, shown
    assert mask_channel(f"PJSIP/trunk_{CALLER}-00000001").endswith("-00000001")  # its own suffix
    assert mask_channel("Local/1001@from-queue-0000001a;2") == "Local/1001@from-queue-0000001a;2"
    shown = present_call({"call_id": "c1", "cdr": {"accountcode": CALLER, "disposition": "ANSWERED"}}, False)
    assert CALLER not in str(shown) and shown["cdr"]["disposition"] == "ANSWERED"
