"""``calls pause|resume`` on FreeSWITCH (esl/pause.py) over the ESL peer: ``uuid_record mask``
of every file of the live recording, then the ``pbxrec::mask`` event the daemon listens for."""

from __future__ import annotations

import asyncio
from pathlib import Path

from esl.frames import parse_event_plain
from esl.normalize import EslNormalizer
from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import main
from pbx_recorder.core import events as E
from tests.peers.esl_peer import EslPeer
from tests.peers.test_daemon import free_port
from tests.peers.test_esl_daemon import write_config
from tests.unit.esl_samples import A_LEG

CALL = f"pbx1_{A_LEG}"


def snapshot(path: str) -> dict[str, object]:
    return {
        "call_id": CALL,
        "state": "recording",
        "legs": {A_LEG: A_LEG},
        "live": [A_LEG],
        "recordings": [
            {
                "recording_id": f"{CALL}_call001",
                "channel": A_LEG,
                "state": "recording",
                "path": path,
                "leg_paths": [],
            },
            {
                "recording_id": f"{CALL}_consent001",
                "channel": A_LEG,
                "state": "finalized",
                "path": "/m/old.wav",
                "leg_paths": [],
            },
        ],
    }


async def test_pause_and_resume_mask_the_files_and_announce_it(tmp_path: Path) -> None:
    peer = EslPeer()
    await peer.start()
    try:
        cfg = write_config(tmp_path, peer.port, free_port())
        catalog = Catalog(tmp_path / "catalog.db")
        catalog.save_live_call(CALL, snapshot("/m/call.wav"))
        catalog.close()
        assert await asyncio.to_thread(main, ["--config", str(cfg), "calls", "pause", CALL]) == 0
        assert await asyncio.to_thread(main, ["--config", str(cfg), "calls", "resume", CALL]) == 0
        assert peer.commands("api uuid_record") == [
            f"api uuid_record {A_LEG} mask /m/call.wav",
            f"api uuid_record {A_LEG} unmask /m/call.wav",
        ]
        sent = peer.commands("sendevent")
        assert len(sent) == 2 and all(
            s.startswith("sendevent CUSTOM\nEvent-Subclass: pbxrec::mask") for s in sent
        )
        assert not any(c.startswith("event plain") for c in peer.received)  # a short connection: no events
        body = (
            b"Event-Name: CUSTOM\n" + sent[0].split("\n", 1)[1].encode() + b"\n\n"
        )  # as FreeSWITCH fires it
        (muted,) = EslNormalizer("pbx1").normalize(parse_event_plain(body), 0.0)
        assert isinstance(muted, E.RecordingMuted) and muted.muted and muted.call_id == CALL
        audit = Catalog(tmp_path / "catalog.db")
        actions = [r["action"] for r in audit.audit_entries() if r["target"] == CALL]
        assert sorted(actions) == ["pause", "resume"]
        audit.close()
    finally:
        await peer.close()
