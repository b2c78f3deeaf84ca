"""``pbx-recorder calls pause CALL`` / ``calls resume CALL``: PCI pause over AMI.

Opens its own AMI connection, finds the call's channels in the catalog's ``live_calls``
snapshot (the channels of its active recordings, else its live legs) and sends
``MixMonitorMute`` (State 1 / 0, Direction both).  The daemon sees the resulting
``MixMonitorMute`` events and records the pause interval; this command does not touch the
core's state.  Needs ``calls.pause`` (agents, supervisors, admins); written to the audit
log with the actor and role.  A pause stopped (Ctrl-C, SIGTERM) after its mute went out and
before the recorder confirmed it unmutes the channel again and is refused (``aborted``): a
stopped command leaves no mute behind (a SIGKILL still can; the daemon flags a mute in doubt).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import click

from pbx_recorder.cli.authz import authorize
from pbx_recorder.cli.live_calls import call_on_channel
from pbx_recorder.cli.pause_confirm import CONFIRMED, MISSED, UNCONFIRMED, MuteMark, await_verdict
from pbx_recorder.core import access_policy
from pbx_recorder.core.masking import mask_channel
from pbx_recorder.core.mixmonitor_order import NO_EVENTS, PBX_OWN, UNKNOWN, pause_doubt, short_version
from pbx_recorder.errors import NotFound, PauseRefused, PbxDisconnected

log = logging.getLogger(__name__)
T = TypeVar("T")


def channels_of(snapshot: dict[str, Any]) -> list[str]:
    recording = [
        r.get("channel", "")
        for r in snapshot.get("recordings", [])
        if r.get("state") in ("recording", "paused")
    ]
    legs = snapshot.get("legs", {}) or {}
    live = [legs.get(u, "") for u in snapshot.get("live", [])]
    return [c for c in dict.fromkeys(recording or live) if c]


_DOUBTS = {
    PBX_OWN: "a MixMonitor the recorder did not start (the PBX's own) runs on {channel}",
    UNKNOWN: "the recorder did not see every MixMonitor of {channel} start (a restart, a lost AMI "
             "link, or a start not reported yet)",
    NO_EVENTS: "this Asterisk reports no MixMonitor events (before 16.17 / 18.3)",
}


def refuse_doubtful(version: str, snapshot: dict[str, Any], channels: list[str], call_id: str,
                    muted: bool) -> None:
    """On an Asterisk whose ``MixMonitorMute`` mutes only a channel's first MixMonitor, a channel
    where that may not be the recorder's (core/mixmonitor_order.py ``pause_doubt``) is not
    paused: refused before any action, so the operator knows the card number would be recorded.
    A resume is never refused (an unmute cannot record a card number; the daemon records what it
    did).  The reason is in the exception's ``reason``."""
    if not muted:
        return
    for channel in channels:
        doubt = pause_doubt(version, snapshot, channel)
        if doubt is not None:
            raise PauseRefused(
                f"pause refused: {_DOUBTS[doubt].format(channel=mask_channel(channel))}, and Asterisk "
                f"{short_version(version)} mutes only a channel's first MixMonitor, which may not be the "
                "recorder's: the recording would go on (take no card data on this call; Asterisk 18.18, "
                "20.3 or later mutes every MixMonitor)", reason=doubt, call_id=call_id)


#: the call's live snapshot read again (None: the call is over); see cli/pause_confirm.py
Reread = Callable[[], "dict[str, Any] | None"]


@dataclass(frozen=True)
class PauseDone:
    """What a pause or resume did: the channels (or FreeSWITCH legs) done, and whether the daemon
    recorded the PBX's mute event as asked (``confirmed``) or had not within
    ``pbx.pause_confirm_s`` (``unconfirmed``)."""

    channels: list[str]
    status: str
    resumes_after_s: float | None = None  # a pause: when the recorder ends it itself (pbx.pause_max_s)


def pause_time_left(config: Any, snapshot: dict[str, Any], call_id: str) -> float | None:
    """Seconds of pause the call has left (``pbx.pause_max_s`` is for all of its pauses
    together, core/call_book_recording.py); None: no limit.  None left: refused before any
    action, so the operator knows a card number would be recorded (the recorder would end the
    pause at once)."""
    limit = float(config.pbx.pause_max_s)
    if limit <= 0:
        return None
    try:
        spent = float(snapshot.get("pause_spent") or 0.0)
    except (TypeError, ValueError):
        spent = 0.0
    left = limit - spent
    if left < 1.0:
        raise PauseRefused(f"this call has used its pause time ({limit:g} s, pbx.pause_max_s): take no "
                           "card data on it", reason="pause_time_spent", call_id=call_id)
    return left


async def mute_channels(config: Any, call_id: str, channels: list[str], muted: bool,
                        snapshot: dict[str, Any] | None = None, reread: Reread | None = None) -> PauseDone:
    import asyncio  # here, not at the top: ``calls search`` imports this module too (cli/lazy_group.py)

    from ami.client import AmiClient
    from ami.normalize import Normalizer
    from pbx_recorder.core.commands import MuteRecording

    ami_cfg = config.pbx.ami
    client = AmiClient(
        host=ami_cfg.host,
        port=ami_cfg.port,
        username=ami_cfg.username,
        secret=ami_cfg.secret.reveal() if ami_cfg.secret else "",
        normalizer=Normalizer(config.node),
        backoff_min=ami_cfg.reconnect_min_s,
        backoff_max=ami_cfg.reconnect_max_s,
        action_timeout=ami_cfg.action_timeout_s,
        connect_timeout=ami_cfg.connect_timeout,
        resync_variables=(),
    )
    task = asyncio.create_task(client.run())
    try:
        if not await client.wait_ready(ami_cfg.connect_timeout + 10):
            raise PbxDisconnected(f"AMI {ami_cfg.host}:{ami_cfg.port} not reachable", call_id=call_id)
        current = _fresh(reread, call_id) or snapshot or {}  # the snapshot may be seconds old
        refuse_doubtful(client.asterisk_version, current, channels, call_id, muted)
        mark = MuteMark.of(current)
        done: list[str] = []
        try:
            for channel in channels:
                done.append(channel)  # (before: a mute stopped in flight may have gone out)
                await client.execute(MuteRecording(call_id=call_id, channel=channel, muted=muted))
            status, doubt = await _verdict(config, reread, mark, muted)
        except asyncio.CancelledError:
            if not (muted and done):
                raise
            # stopped (Ctrl-C, SIGTERM) before the recorder confirmed the pause: the operator is
            # told nothing, so no mute is left behind, on whichever MixMonitor it reached
            await _unmute_again(client, call_id, done)
            raise PauseRefused("pause aborted before the recorder confirmed it; the channel was unmuted "
                               "again: take no card data on this call", reason="aborted",
                               call_id=call_id) from None
        if status == MISSED and muted:  # the mute reached another MixMonitor: give it back its sound
            await _unmute_again(client, call_id, done)
            raise PauseRefused(
                f"pause not carried out: the recorder could not be sure the mute reached its recording "
                f"({_DOUBTS.get(doubt, doubt).format(channel='the channel')}); the channel was unmuted "
                "again: take no card data on this call", reason=f"{doubt or 'unknown'}_after_mute",
                call_id=call_id)
        return PauseDone(done, status)
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)


def _fresh(reread: Reread | None, call_id: str) -> dict[str, Any] | None:
    if reread is None:
        return None
    found = reread()
    if found is None:
        raise NotFound(f"no live call {call_id!r} (it is over)", call_id=call_id)
    return found


async def _verdict(config: Any, reread: Reread | None, mark: MuteMark, muted: bool) -> tuple[str, str]:
    timeout = float(config.pbx.pause_confirm_s)
    if reread is None or timeout <= 0:
        return UNCONFIRMED, ""
    return await await_verdict(reread, mark, muted, timeout)


async def _unmute_again(client: Any, call_id: str, channels: list[str]) -> None:
    from pbx_recorder.core.commands import MuteRecording
    from pbx_recorder.errors import PbxError

    for channel in channels:
        try:
            await client.execute(MuteRecording(call_id=call_id, channel=channel, muted=False))
        except PbxError as exc:
            log.error("ALERT: call=%s: the unmute after a pause in doubt failed on %s: %s", call_id,
                      mask_channel(channel), exc)


async def mute_live_call(config: Any, call_id: str, snapshot: dict[str, Any], muted: bool,
                         reread: Reread | None = None) -> PauseDone:
    """Mute (or unmute) the live call's recording with the recorder's own PBX account, then wait
    for the daemon's verdict (cli/pause_confirm.py; ``reread`` reads the call's snapshot again).
    Shared by this command and the console (``service/api_pause.py``)."""
    left = pause_time_left(config, _fresh(reread, call_id) or snapshot, call_id) if muted else None
    done = await _mute_live_call(config, call_id, snapshot, muted, reread)
    return PauseDone(done.channels, done.status, left)


async def _mute_live_call(config: Any, call_id: str, snapshot: dict[str, Any], muted: bool,
                          reread: Reread | None) -> PauseDone:
    if config.pbx.type == "freeswitch":  # uuid_record mask|unmask per file (esl/pause.py)
        from esl.pause import mask_call

        current = _fresh(reread, call_id) or snapshot
        mark = MuteMark.of(current)
        done: list[str] = await mask_call(config, call_id, current, muted)
        if not done:
            raise NotFound("the call has no active recording to mask", call_id=call_id)
        status, _ = await _verdict(config, reread, mark, muted)  # a mask names its file: never missed
        return PauseDone(done, status)
    channels = channels_of(snapshot)
    if not channels:
        raise NotFound("the call has no live channel to mute", call_id=call_id)
    return await mute_channels(config, call_id, channels, muted, snapshot, reread)


async def cancelled_on_sigterm(action: Awaitable[T]) -> T:
    """``action``, cancelled by SIGTERM as asyncio.run cancels it on Ctrl-C (``kill`` or a
    stopping service manager lets a pause in flight undo its mute: :func:`mute_channels`)."""
    import asyncio
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # (signals reach the main one only)
        return await action
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    before = signal.getsignal(signal.SIGTERM)  # (run_main's: SIGTERM unwinds the command)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await action
    finally:
        loop.remove_signal_handler(signal.SIGTERM)  # (which sets SIG_DFL)
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _control(ctx: click.Context, call_id: str | None, channel: str | None, muted: bool) -> None:
    import asyncio

    from pbx_recorder.catalog import Catalog
    from pbx_recorder.config import load_config

    if bool(call_id) == bool(channel):
        raise click.UsageError("name the call: CALL_ID or --channel (e.g. --channel PJSIP/1001)")
    config = load_config(ctx.obj.get("config_path"))
    from pbx_recorder.catalog.number_keys import protection_for

    catalog = Catalog(config.catalog.target, numbers=protection_for(config))
    try:
        who = authorize(config, catalog, "calls.pause", call_id or channel or "")
        live = catalog.load_live_calls()
        if channel:
            call_id = call_on_channel(live, channel)
        assert call_id is not None
        snapshot = live.get(call_id)
        if not isinstance(snapshot, dict):
            raise NotFound(f"no live call {call_id!r} (is it over?)", call_id=call_id)
        try:
            reread = partial(catalog.load_live_call, call_id)
            action = mute_live_call(config, call_id, snapshot, muted, reread)
            result = asyncio.run(cancelled_on_sigterm(action))
        except PauseRefused as exc:
            catalog.audit(who.actor, who.role, "denied:calls.pause", call_id,
                          {"reason": exc.reason, "muted": muted})
            raise
        catalog.audit(
            who.actor,
            who.role,
            "pause" if muted else "resume",
            call_id,
            {"channels": result.channels, "recorder": result.status},
        )
    finally:
        catalog.close()
    # chan_sip names a channel after the peer, often the caller's number: an agent sees it masked
    done = result.channels
    shown = done if access_policy.check(who.role, "calls.unmask") else [mask_channel(c) for c in done]
    click.echo(f"{'paused' if muted else 'resumed'} {call_id}: {', '.join(shown)}")
    if result.resumes_after_s is not None:
        click.echo(f"the recorder resumes the recording by itself after {result.resumes_after_s:.0f} s "
                   "(pbx.pause_max_s, for all of the call's pauses) unless it is resumed before")
    if result.status != CONFIRMED:
        click.echo(STATUS_NOTES[result.status].format(s=config.pbx.pause_confirm_s), err=True)


#: what the operator is told when the daemon did not confirm the pause or resume as asked
STATUS_NOTES = {
    UNCONFIRMED: "warning: sent and accepted by the PBX, but the recorder did not record it within {s:g} s "
                 "(is the daemon running?): check `calls show` before taking card data",
    MISSED: "warning: the recorder could not be sure the unmute reached its recording (flagged "
            "pause_missed): the pause is closed in its record from now on",
}


CHANNEL_HELP = "Instead of CALL_ID: the live call on this channel / endpoint (e.g. PJSIP/1001)."


@click.command("pause")
@click.argument("call_id", required=False)
@click.option("--channel", help=CHANNEL_HELP)
@click.pass_context
def pause_command(ctx: click.Context, call_id: str | None, channel: str | None) -> None:
    """Mute the call's recording (PCI pause): silence is written, the timeline is kept."""
    _control(ctx, call_id, channel, True)


@click.command("resume")
@click.argument("call_id", required=False)
@click.option("--channel", help=CHANNEL_HELP)
@click.pass_context
def resume_command(ctx: click.Context, call_id: str | None, channel: str | None) -> None:
    """Unmute the call's recording."""
    _control(ctx, call_id, channel, False)


def register(group: click.Group) -> None:
    calls = group.commands.get("calls")
    if not isinstance(calls, click.Group):
        calls = click.Group("calls", help="Find and control calls.")
        group.add_command(calls)
    calls.add_command(pause_command)
    calls.add_command(resume_command)
