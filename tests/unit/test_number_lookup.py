"""The one number lookup (full-number blind index; rows still in clear hashed as a cursor reads
them).  A number written with separators, odd characters or as a JSON number in a signed
manifest is still found; a number it only resembles is not."""

from __future__ import annotations

import json

from lifecycle_support import KEY, add_call, add_recording, make_env

from pbx_recorder.catalog.number_protection import BlindIndex
from pbx_recorder.lifecycle import number_lookup

NUMBER = "+15558675309"


def test_written_forms_of_the_same_number_are_found_and_lookalikes_are_not(tmp_path):
    env = make_env(tmp_path)
    forms = {"plain": NUMBER, "spaced": "+1 (555) 867-5309", "odd": "+1555x867/5309", "callee": NUMBER,
             "doubled": "++15558675309"}
    for cid, num in forms.items():
        if cid == "callee":
            add_call(env, cid, caller="200", callee=num)
        else:
            add_call(env, cid, caller=num)
    for cid, num in {"longer": "+155586753090", "no_plus": "15558675309", "other": "+15550000000"}.items():
        add_call(env, cid, caller=num)
    want = set(forms) | {"no_plus"}  # the blind index is of the digits: +1555... and 1555... are one number
    found = list(number_lookup.calls_with_number(env.conn, KEY, BlindIndex(KEY).full(NUMBER)))
    assert set(found) == want and len(found) == len(want)


def test_the_signed_manifest_and_the_cdr_name_a_subject_the_calls_row_does_not(tmp_path):
    env = make_env(tmp_path)
    for cid in ("m-text", "m-int", "m-did", "cdr", "bad-json", "none"):
        add_call(env, cid, caller="300")
        add_recording(env, cid, f"r-{cid}")
    manifests = {"m-text": {"cdr": {"src": "+1 555 867 5309"}}, "m-int": {"cdr": {"dst": 15558675309}},
                 "m-did": {"did": "+1-555-867-5309"}, "none": {"cdr": {"src": "+15558675300"}}}
    for cid, manifest in manifests.items():
        env.conn.execute("UPDATE recordings SET manifest=? WHERE call_id=?", (json.dumps(manifest), cid))
    env.conn.execute("UPDATE recordings SET manifest='{not json' WHERE call_id='bad-json'")
    cdr = json.dumps({"lastdata": "SIP/15558675309"})
    env.conn.execute("UPDATE calls SET cdr=? WHERE call_id='cdr'", (cdr,))
    found = number_lookup.calls_naming(env.conn, KEY, "15558675309")
    assert found == {"m-int", "cdr"}  # normalized '15558675309' (no '+') is what those name
    found = number_lookup.calls_naming(env.conn, KEY, NUMBER)
    assert found == {"m-text", "m-did", "cdr"}
