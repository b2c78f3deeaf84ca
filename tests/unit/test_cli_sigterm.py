"""``calls pause``'s SIGTERM: while its action runs, SIGTERM cancels the action (so a pause in
flight can undo its mute, cli/cmd_calls_control.py); before and after it, the handler the CLI's
entry point set (SIGTERM unwinds the command) is in place again, not the default that kills."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from pbx_recorder.cli.cmd_calls_control import cancelled_on_sigterm


def test_sigterm_cancels_the_action_and_the_entry_points_handler_comes_back() -> None:
    seen: list[Any] = []

    def entry_point_handler(signum: int, frame: object) -> None:
        seen.append(signum)

    async def action() -> str:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "cancelled"
        return "not cancelled"

    before = signal.signal(signal.SIGTERM, entry_point_handler)
    try:
        assert asyncio.run(cancelled_on_sigterm(action())) == "cancelled"
        assert signal.getsignal(signal.SIGTERM) is entry_point_handler and seen == []
        os.kill(os.getpid(), signal.SIGTERM)  # after the action: the entry point's handler runs
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)
