"""Translate boto3/botocore failures into pbx_recorder.errors at the S3 edge.

Nothing from botocore leaks past :func:`translate`; callers ``raise translate(...) from exc``.
The mapping is by S3 error code / HTTP status only, never by which server answered.

Transient (``TierUnavailable``: retry with back-off): 5xx, throttling, request timeouts,
clock skew, an unreachable endpoint.  Permanent (``StorageRefused``: retrying cannot help):
every other 4xx (InvalidArgument, InvalidRequest, AccessDenied, InvalidStorageClass, a
missing bucket ...).  The message always carries the server's code, HTTP status and text
(or says the server sent none, with what the request asked for when the caller knows).
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from pbx_recorder.errors import (
    IntegrityError,
    NotFound,
    ObjectNotRestored,
    PolicyRefusal,
    RecorderError,
    StorageError,
    StorageRefused,
    TierUnavailable,
)

NOT_FOUND = {"NoSuchKey", "NotFound", "404", "NoSuchVersion", "NoSuchUpload"}
UNAVAILABLE = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "503", "500",
               "ThrottlingException", "Throttling", "TooManyRequests", "RequestTimeTooSkewed",
               "RequestLimitExceeded", "OperationAborted", "ExpiredToken", "TokenRefreshRequired"}
TRANSIENT_STATUS = {408, 429}
INTEGRITY = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
LOCKED = {"ObjectLocked", "InvalidRetentionPeriod"}
NO_LOCK_CONFIG = {"ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration",
                  "InvalidRequest", "MethodNotAllowed", "NotImplemented", "501", "405"}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "")
        if not code:
            code = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return code
    return ""


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def error_message(exc: BaseException) -> str:
    """``Code (HTTP n): server text``; says so when the server sent no text."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = http_status(exc)
        code = str(err.get("Code") or "") or (f"HTTP {status}" if status else "?")
        text = str(err.get("Message") or "")
        if not text:
            extra = {k: v for k, v in err.items() if k not in ("Code", "Message") and v}
            text = ("the server sent no message" + (f" ({', '.join(f'{k}={v}' for k, v in extra.items())})"
                                                      if extra else ""))
        return f"{code}{f' (HTTP {status})' if status and not code.startswith('HTTP') else ''}: {text}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same request later may succeed."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        return code in UNAVAILABLE or status >= 500 or status in TRANSIENT_STATUS
    return isinstance(exc, BotoCoreError | OSError)


def translate(exc: BaseException, op: str, what: str, tier: str, *, asked: str = "") -> RecorderError:
    """The RecorderError to raise for ``exc`` raised by ``op`` on ``what`` (a key or bucket).
    ``asked`` names the options the request carried (sse, storage class, lock), quoted on a
    permanent refusal so an operator sees what the server refused."""
    if isinstance(exc, RecorderError):
        return exc
    where = f"S3 tier {tier!r}: {op} {what}"
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        if code in NOT_FOUND or (status == 404 and code != "NoSuchBucket"):
            return NotFound(f"{where}: no such object")
        if code == "NoSuchBucket":
            return StorageRefused(f"{where}: the bucket does not exist")
        if code == "InvalidObjectState":
            return ObjectNotRestored(f"{where}: object is in an archive class and not restored")
        if code in INTEGRITY:
            return IntegrityError(f"{where}: checksum rejected by the server ({error_message(exc)})")
        if code in LOCKED:
            return PolicyRefusal(f"{where}: refused by Object Lock ({error_message(exc)})")
        if is_transient(exc):
            return TierUnavailable(f"{where}: server error, retry later ({error_message(exc)})")
        if 400 <= status < 500:
            sent = f"; the request asked for {asked}" if asked else ""
            return StorageRefused(f"{where}: refused by the server, not retried ({error_message(exc)}){sent}")
        return StorageError(f"{where}: {error_message(exc)}")
    if isinstance(exc, BotoCoreError | OSError):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError ...
        return TierUnavailable(f"{where}: endpoint unreachable ({error_message(exc)})")
    return StorageError(f"{where}: {error_message(exc)}")
