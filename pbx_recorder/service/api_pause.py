"""PCI pause from the console: ``POST /api/calls/{call_id}/pause`` and ``.../resume`` (CSRF).

Verb ``calls.pause`` (admin, supervisor, agent).  The call must be live (the daemon's
``live_calls`` snapshot) and inside the actor's row scope, read from the live snapshot itself
(:func:`may_pause`): an agent's own calls (the snapshot's ``agent`` is their account name, or
one of the call's channels is on their endpoint ``TECH/<account name>``), a supervisor's team
agents, admin any.  Anything else answers 404 exactly like a call that is not live, audited as
``denied:calls.pause``.  The service mutes the recording itself with the recorder's configured
AMI account (or event socket), through the same code as ``pbx-recorder calls pause``
(:func:`pbx_recorder.cli.cmd_calls_control.mute_live_call`); the client never sees the secret.
Audited as ``pause`` / ``resume`` like the CLI.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.catalog.scopes import Scope
from pbx_recorder.cli.live_calls import LiveCall
from pbx_recorder.core.masking import mask_channel
from pbx_recorder.errors import NotFound, PauseRefused, PbxError
from pbx_recorder.service.auth import ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.roles import may

log = logging.getLogger(__name__)
VERB = "calls.pause"


def endpoint_of(channel: str) -> str:
    """``PJSIP/alice-0000002a`` -> ``alice``: the endpoint part of a channel name."""
    rest = channel.split("/", 1)[1] if "/" in channel else channel
    return rest.rsplit("-", 1)[0] if "-" in rest else rest


def may_pause(scope: Scope, call: LiveCall) -> bool:
    """True when the live ``call`` is in ``scope`` by its agent or one of its endpoints (pure)."""
    if scope.kind == "all":
        return True
    if scope.kind != "agents":
        return False
    if call.agent and call.agent in scope.agents:
        return True
    return any(endpoint_of(ch) in scope.agents for ch in call.channels)


def _control(request: Request, muted: bool) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)  # CSRF checked here
    call_id = request.path_params["call_id"]
    require(ctx, actor, VERB, call_id)
    snapshot = ctx.catalog.load_live_calls().get(call_id)
    call = LiveCall.from_snapshot(call_id, snapshot) if isinstance(snapshot, dict) else None
    if call is None or not may_pause(actor.scope, call):
        reason = "not_live" if call is None else "out_of_scope"
        audit(ctx, actor.user.name, actor.user.role, f"denied:{VERB}", call_id,
              {"client": actor.client, "reason": reason, "muted": muted})
        raise ApiError(404, "no such live call")
    if ctx.config is None:
        raise ApiError(503, "the service has no PBX connection configured")
    assert isinstance(snapshot, dict)
    from pbx_recorder.cli.cmd_calls_control import mute_live_call

    try:
        result = asyncio.run(mute_live_call(ctx.config, call_id, snapshot, muted,
                                            partial(ctx.catalog.load_live_call, call_id)))
    except NotFound as exc:
        raise ApiError(409, str(exc)) from exc
    except PauseRefused as exc:  # the PBX might mute another MixMonitor, not the recorder's
        audit(ctx, actor.user.name, actor.user.role, f"denied:{VERB}", call_id,
              {"client": actor.client, "reason": exc.reason, "muted": muted})
        raise ApiError(409, str(exc)) from exc
    except PbxError as exc:
        log.warning("call %s: %s failed: %s", call_id, "pause" if muted else "resume", exc)
        raise ApiError(502, "the PBX did not carry out the action") from exc
    done = result.channels
    audit(ctx, actor.user.name, actor.user.role, "pause" if muted else "resume", call_id,
          {"client": actor.client, "channels": done, "recorder": result.status})
    shown = done if may(actor.user.role, "calls.unmask") else [mask_channel(c) for c in done]
    # "confirmed": the daemon recorded the PBX's mute event as asked; "unconfirmed": not within
    # pbx.pause_confirm_s; "missed" (a resume only): the unmute was flagged pause_missed
    # a pause the recorder ends itself (pbx.pause_max_s, for the call's pauses together; None:
    # never, or a resume): the agent's screen says when
    return JSONResponse({"call_id": call_id, "paused": muted, "channels": shown,
                         "recorder": result.status, "resumes_after_s": result.resumes_after_s})


def pause(request: Request) -> Response:
    return _control(request, True)


def resume(request: Request) -> Response:
    return _control(request, False)


def routes(wrap: Any) -> list[BaseRoute]:
    """The routes, each endpoint passed through ``wrap`` (``app._releasing``)."""
    return [Route("/api/calls/{call_id}/pause", wrap(pause), methods=["POST"]),
            Route("/api/calls/{call_id}/resume", wrap(resume), methods=["POST"])]
