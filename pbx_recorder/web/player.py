"""The player page, ``GET /recordings/{recording_id}/play``, and the player's routes.

The page is server-rendered (``templates/player.html``); ``static/player.js`` does the rest
through the API: the audio element streams ``/api/recordings/{id}/audio`` (Range), the waveform
comes from ``/peaks``, marks from ``/api/calls/{call}/marks``.  A recording outside the actor's
scope is the same 404 as an absent one (audited, as for the audio).  No inline script or style:
the page's CSP allows only this origin's files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service import api_marks, api_player
from pbx_recorder.service.api_audio import READABLE_STATES
from pbx_recorder.service.auth import actor_of, audit, ctx_of
from pbx_recorder.service.roles import may
from pbx_recorder.web import replay_page
from pbx_recorder.web.render import page as render_page
from storage.s3_objects import COLD_CLASSES

SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def cold_state(rec: dict[str, Any]) -> str:
    """'' when readable now; else the restore state ('none', 'requested', 'in_progress')."""
    archived = str(rec.get("storage_class") or "").upper() in COLD_CLASSES
    state = str(rec.get("restore_state") or "")
    if not archived or state == "done":
        return ""
    return state or "none"


def page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    rid = request.path_params["recording_id"]
    rec, call = api_player.scoped_recording(ctx, actor, rid, "calls.play",
                                            {"client": actor.client, "what": "player"})
    audit(ctx, actor.user.name, actor.user.role, "calls.view", str(rec["call_id"]),
          {"client": actor.client, "what": "player", "recording_id": rid})
    grant = replay_page.grant_state(ctx, actor, call)
    return render_page(
        request, "player.html", actor, rec=rec, call=call, speeds=SPEEDS, cold=cold_state(rec),
        readable=rec["state"] in READABLE_STATES and not grant, four_eyes=grant,
        may_download=may(actor.user.role, "calls.download"), may_mark=may(actor.user.role, "calls.mark"),
        may_restore=may(actor.user.role, "calls.restore"), is_admin=actor.user.role == "admin")


def routes(sync: Callable[[Any], Any]) -> list[BaseRoute]:
    """The player's routes; ``sync`` wraps a synchronous endpoint (``app._releasing``)."""
    return [
        Route("/recordings/{recording_id}/play", sync(page), methods=["GET"]),
        Route("/api/recordings/{recording_id}/peaks", sync(api_player.peaks), methods=["GET"]),
        Route("/api/recordings/{recording_id}/restore", sync(api_player.restore), methods=["POST"]),
        Route("/api/calls/{call_id}/marks", sync(api_marks.list_marks), methods=["GET"]),
        Route("/api/calls/{call_id}/marks", api_marks.add_mark, methods=["POST"]),
        Route("/api/marks/{mark_id}", sync(api_marks.delete_mark), methods=["DELETE"]),
    ]
