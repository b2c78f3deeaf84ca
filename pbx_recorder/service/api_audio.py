"""``GET /api/recordings/{recording_id}/audio``: the recording's audio, decrypted on the server,
with HTTP range requests (206 Partial Content), so a player seeks without fetching the file.

``calls.play`` plays (``Content-Disposition: inline``); ``?download=1`` needs ``calls.download``
(an agent may play their own calls but never download) and names the file
``<call id>_<start time>.<ext>``.  The recording's call must lie in the actor's row scope: a
recording of another scope answers 404 like an absent one.  Every play and download (and every
refusal) is audited with the client address and the range asked for, before the first byte.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from pbx_recorder import audio_access
from pbx_recorder.errors import ObjectNotRestored, RecorderError
from pbx_recorder.service import api_replay
from pbx_recorder.service.auth import ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.ranges import RangeNotSatisfiable, parse_range

log = logging.getLogger(__name__)

READABLE_STATES = ("stored", "verified", "migrated")
CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg", "ogg": "audio/ogg",
                 "flac": "audio/flac", "gsm": "audio/gsm"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def download_name(call_id: str, started_at: float | None, fmt: str) -> str:
    """``<call id>_<start time>.<ext>``, only characters safe in any file system and header."""
    when = datetime.fromtimestamp(started_at, UTC).strftime("%Y%m%dT%H%M%SZ") if started_at else "unknown"
    ext = _UNSAFE.sub("", fmt)[:8] or "bin"
    return f"{_UNSAFE.sub('_', call_id)[:120]}_{when}.{ext}"


def audio(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    rid = request.path_params["recording_id"]
    download = request.query_params.get("download") in ("1", "true")
    verb = "calls.download" if download else "calls.play"
    range_header = request.headers.get("range")
    detail = {"client": actor.client, "range": (range_header or "")[:64]}
    require(ctx, actor, verb, rid, detail)
    rec = ctx.catalog.get_recording(rid)
    call = ctx.catalog.get_call(str(rec["call_id"]), scope=actor.scope) if rec else None
    if rec is None or call is None:
        reason = "absent" if rec is None else "out_of_scope"
        audit(ctx, actor.user.name, actor.user.role, f"denied:{verb}" if rec else f"{verb}.absent", rid,
              {**detail, "reason": reason})
        raise ApiError(404, "no such recording")
    api_replay.check_recording(ctx, actor, rec, verb, rid, detail)  # the row is the call's it names
    api_replay.check(ctx, actor, call, verb, rid, detail)  # four-eyes: a sensitive call needs a grant
    tier = ctx.tiers.get(str(rec["tier"]))
    if tier is None or rec["state"] not in READABLE_STATES:
        raise ApiError(409, f"recording is {rec['state']} and cannot be played yet")
    try:
        size = audio_access.plaintext_size(rec, tier)
    except ObjectNotRestored as exc:
        raise ApiError(409, "recording is in cold storage: restore it first") from exc
    except RecorderError as exc:
        log.error("recording %s: cannot read its size: %s", rid, exc)
        raise ApiError(500, "recording unreadable") from exc
    try:
        wanted = parse_range(range_header, size)
    except RangeNotSatisfiable as exc:
        raise ApiError(416, "range not satisfiable", headers={"Content-Range": f"bytes */{size}"}) from exc
    start, stop = (wanted.start, wanted.stop) if wanted else (0, size)
    audit(ctx, actor.user.name, actor.user.role, verb, rid,
          {**detail, "call_id": rec["call_id"], "first_byte": start, "last_byte": stop - 1})
    # the byte positions as integers: the audit's number scrubber masks digit runs in text (a
    # seek offset of 7+ digits in "bytes=1234576-" reads like a phone number), never an int
    fmt = str(rec.get("format") or "wav")
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(stop - start), "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff",
               "Content-Disposition": ("attachment" if download else "inline")
               + f'; filename="{download_name(str(rec["call_id"]), call.get("started_at"), fmt)}"'}
    if wanted:
        headers["Content-Range"] = wanted.content_range(size)
    body = _guarded(audio_access.plaintext_range(rec, tier, ctx.keyring, start, stop), rid)
    return StreamingResponse(body, status_code=206 if wanted else 200, headers=headers,
                             media_type=CONTENT_TYPES.get(fmt, "application/octet-stream"))


def _guarded(blocks: Iterator[bytes], rid: str) -> Iterator[bytes]:
    """The body; a failure after the headers went out (tampered segment, hash mismatch) is logged
    and ends the response short, which the client sees as a broken transfer, never as audio."""
    try:
        yield from blocks
    except RecorderError as exc:
        log.error("recording %s: streaming stopped: %s", rid, exc)
        raise
