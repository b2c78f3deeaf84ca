from pbx_recorder.masking import last4, mask_number, sanitize


def test_mask_mobile_number():
    assert mask_number("13812345678") == "138****5678"


def test_mask_keeps_plus_and_masks_middle():
    assert mask_number("+8613812345678") == "+861******5678"


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
