"""Translate boto3/botocore failures into pbx_recorder.errors at the S3 edge.

Nothing from botocore leaks past :func:`translate`; callers ``raise translate(...) from exc``.
The mapping is by S3 error code / HTTP status only, never by which server answered.
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
    TierUnavailable,
)

NOT_FOUND = {"NoSuchKey", "NotFound", "404", "NoSuchVersion", "NoSuchUpload"}
UNAVAILABLE = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "503", "500",
               "ThrottlingException", "RequestTimeTooSkewed"}
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
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '') or 'no message'}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def translate(exc: BaseException, op: str, what: str, tier: str) -> RecorderError:
    """The RecorderError to raise for ``exc`` raised by ``op`` on ``what`` (a key or bucket)."""
    if isinstance(exc, RecorderError):
        return exc
    where = f"S3 tier {tier!r}: {op} {what}"
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        if code in NOT_FOUND or (status == 404 and code != "NoSuchBucket"):
            return NotFound(f"{where}: no such object")
        if code == "NoSuchBucket":
            return StorageError(f"{where}: the bucket does not exist")
        if code == "InvalidObjectState":
            return ObjectNotRestored(f"{where}: object is in an archive class and not restored")
        if code in INTEGRITY:
            return IntegrityError(f"{where}: checksum rejected by the server ({error_message(exc)})")
        if code in LOCKED:
            return PolicyRefusal(f"{where}: refused by Object Lock ({error_message(exc)})")
        if code in UNAVAILABLE or status >= 500:
            return TierUnavailable(f"{where}: server error, retry later ({error_message(exc)})")
        return StorageError(f"{where}: {error_message(exc)}")
    if isinstance(exc, BotoCoreError | OSError):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError ...
        return TierUnavailable(f"{where}: endpoint unreachable ({error_message(exc)})")
    return StorageError(f"{where}: {error_message(exc)}")
