"""The ESL command builder cannot stop every recording of a channel: ``uuid_record <uuid> stop all``
(or a stop without a path) would stop another recording of the call too (an admin's own, a second
recorder's), so the builder refuses it with ``EslError`` and a stop always names the recording's
files.  The client never asks for it (``EslClient._stop`` sends nothing when no file is known)."""

from __future__ import annotations

import pytest

from esl import commands as esc
from pbx_recorder.core import commands as cmds
from pbx_recorder.errors import EslError, RecorderError
from tests.unit.esl_samples import A_LEG

PATH = "/var/spool/pbx-recorder/monitor/pbx1_x_call001-20251201T152000Z.wav"
CID = "pbx1_x"


@pytest.mark.parametrize("path", ["all", "ALL", " all", "", " "])
@pytest.mark.parametrize("action", ["stop", "mask", "unmask", "start"])
def test_uuid_record_refuses_all_and_empty_paths(action: str, path: str) -> None:
    with pytest.raises(EslError, match="refused ESL command") as caught:
        esc.uuid_record(A_LEG, action, path, call_id=CID)
    assert isinstance(caught.value, RecorderError) and caught.value.call_id == CID


def test_a_stop_recording_without_paths_is_refused_not_widened() -> None:
    stop = cmds.StopRecording(CID, "pbx1_x_call001", A_LEG)
    for paths in ((), None):
        with pytest.raises(EslError, match="without the recording's file paths"):
            esc.api_lines(stop, paths or ())


def test_a_stop_names_each_file_of_the_recording() -> None:
    stop = cmds.StopRecording(CID, "pbx1_x_call001", A_LEG)
    legs = ("/m/a-rx.wav", "/m/a-tx.wav")
    lines = esc.api_lines(stop, (PATH, *legs))
    assert lines == [f"api uuid_record {A_LEG} stop {p}" for p in (PATH, *legs)]
    assert not any(line.rstrip().endswith(" all") for line in lines)
