import json

import pytest
from click.testing import CliRunner

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import cli
from pbx_recorder.cli.live_calls import call_on_channel, channel_matches, live_calls
from pbx_recorder.errors import NotFound


def snap(call_id, channel, state="recording", caller="13812345678", created=100.0, rec_state="recording"):
    return {"call_id": call_id, "state": state, "created_at": created, "caller_num": caller,
            "agent": "alice", "queue": "sales", "legs": {"1.1": channel, "1.2": "PJSIP/gone-1"},
            "live": ["1.1"], "recordings": [{"channel": channel, "state": rec_state}]}


SNAPS = {"n1_1.1": snap("n1_1.1", "PJSIP/1001-0000002a", created=200.0),
         "n1_2.2": snap("n1_2.2", "PJSIP/10010-00000001", rec_state="paused", created=100.0),
         "n1_3.3": {**snap("n1_3.3", "PJSIP/x-1"), "live": []}}  # over: no live leg


def test_live_calls_order_state_and_channel_matching():
    calls = live_calls(SNAPS)
    assert [c.call_id for c in calls] == ["n1_2.2", "n1_1.1"]  # oldest first, ended ones left out
    assert calls[0].recording == "paused" and calls[1].channels == ("PJSIP/1001-0000002a",)
    assert channel_matches("PJSIP/1001-0000002a", "PJSIP/1001")
    assert not channel_matches("PJSIP/10010-00000001", "PJSIP/1001")  # another endpoint
    assert call_on_channel(SNAPS, "PJSIP/1001") == "n1_1.1"
    with pytest.raises(NotFound):
        call_on_channel(SNAPS, "PJSIP/2002")
    two = {**SNAPS, "n1_4.4": snap("n1_4.4", "PJSIP/1001-0000002b")}
    with pytest.raises(NotFound, match="name the call id"):
        call_on_channel(two, "PJSIP/1001")


def test_calls_live_lists_masked_and_filters_by_channel(tmp_path):
    db = tmp_path / "cat.db"
    cfg = tmp_path / "pbx-recorder.yaml"
    cfg.write_text(f"catalog:\n  path: {db}\n")
    cat = Catalog(db)
    for cid, s in SNAPS.items():
        cat.save_live_call(cid, s)
    cat.close()
    out = CliRunner().invoke(cli, ["--config", str(cfg), "calls", "live"])
    assert out.exit_code == 0, out.output
    assert "n1_1.1" in out.output and "n1_2.2" in out.output and "n1_3.3" not in out.output
    assert "138****5678" in out.output and "13812345678" not in out.output
    assert "2 live call(s)" in out.output
    args = ["--config", str(cfg), "calls", "live", "--channel", "PJSIP/1001", "--json"]
    res = CliRunner().invoke(cli, args)
    rows = json.loads(res.stdout)
    assert [r["call_id"] for r in rows] == ["n1_1.1"] and rows[0]["recording"] == "recording"
