"""S3 tier operations beyond put/read: delete every version, legal hold, restore from an
archive class, storage-class change, and cleanup of orphan multipart uploads.
A mixin of :class:`storage.s3.S3Tier` (kept apart to keep files small)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pbx_recorder.errors import ObjectNotRestored, PolicyRefusal, StorageError
from storage.s3_errors import NO_LOCK_CONFIG, error_code, error_message, http_status, translate
from storage.s3_objects import decode_metadata, restore_state
from storage.s3_sse import SseConfig

log = logging.getLogger(__name__)
NOT_SUPPORTED = {"NotImplemented", "MethodNotAllowed", "501", "405"}


class S3LifecycleOps:
    name: str
    bucket: str
    prefix: str
    client: Any
    sse: SseConfig
    allow_governance_bypass: bool
    restore_days: int
    restore_tier: str
    full_key: Callable[[str], str]
    _call: Callable[..., Any]
    _head: Callable[..., dict[str, Any]]
    bucket_has_object_lock: Callable[[], bool]
    is_archive_class: Callable[[str], bool]
    class_transition: str

    # -- delete --------------------------------------------------------------------------------
    def versions(self, key: str) -> list[dict[str, Any]]:
        """Every version and delete marker of exactly ``key`` (not of keys sharing the prefix)."""
        full = self.full_key(key)
        found: list[dict[str, Any]] = []
        pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=full)
        try:
            for page in pages:
                for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    if entry["Key"] == full:
                        found.append(entry)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "list versions of", key, self.name) from exc
        return found

    def lock_reason(self, key: str, version_id: str | None) -> str:
        """Why Object Lock forbids deleting this version ("" when nothing does)."""
        if not self.bucket_has_object_lock():
            return ""
        full, vid = self.full_key(key), ({"VersionId": version_id} if version_id else {})
        hold = self._lock_read(self.client.get_object_legal_hold, full, vid).get("LegalHold", {})
        if hold.get("Status") == "ON":
            return "a legal hold is on"
        ret = self._lock_read(self.client.get_object_retention, full, vid).get("Retention", {})
        until = ret.get("RetainUntilDate")
        if until and until > datetime.now(UTC):
            if ret.get("Mode") == "COMPLIANCE":
                return f"COMPLIANCE retention until {until.isoformat()}"
            if not self.allow_governance_bypass:
                return f"GOVERNANCE retention until {until.isoformat()} (bypass not allowed)"
        return ""

    def _lock_read(self, fn: Callable[..., Any], full: str, vid: dict[str, str]) -> dict[str, Any]:
        try:
            return dict(fn(Bucket=self.bucket, Key=full, **vid))
        except ClientError as exc:
            if error_code(exc) in NO_LOCK_CONFIG or http_status(exc) in (400, 404, 405, 501) \
                    or "ObjectLock" in error_code(exc) or "NoSuch" in error_code(exc):
                return {}
            raise translate(exc, "read lock of", full, self.name) from exc
        except BotoCoreError as exc:
            raise translate(exc, "read lock of", full, self.name) from exc

    def delete(self, key: str) -> int:
        """Delete every version; PolicyRefusal (saying why) before removing anything if a
        hold or retention protects any version."""
        entries = self.versions(key)
        for entry in entries:
            reason = self.lock_reason(key, entry.get("VersionId")) if "ETag" in entry else ""
            if reason:
                raise PolicyRefusal(f"S3 tier {self.name!r}: cannot delete {key}: {reason}")
        removed = 0
        for entry in entries:
            args: dict[str, Any] = {"Bucket": self.bucket, "Key": entry["Key"]}
            if entry.get("VersionId"):
                args["VersionId"] = entry["VersionId"]
            if self.allow_governance_bypass:
                args["BypassGovernanceRetention"] = True
            try:
                self.client.delete_object(**args)
            except ClientError as exc:
                if error_code(exc) in ("AccessDenied", "ObjectLocked") or http_status(exc) == 403:
                    raise PolicyRefusal(f"S3 tier {self.name!r}: cannot delete {key}: the server refused "
                                        f"under Object Lock ({error_message(exc)})") from exc
                raise translate(exc, "delete", key, self.name) from exc
            except BotoCoreError as exc:
                raise translate(exc, "delete", key, self.name) from exc
            removed += 1
        log.info("deleted %s from %s (%d versions)", key, self.name, removed)
        return removed

    # -- legal hold ----------------------------------------------------------------------------
    def set_legal_hold(self, key: str, on: bool) -> bool:
        """True when the bucket enforces it (Object Lock), False when only the catalog can."""
        if not self.bucket_has_object_lock():
            self._head(key)  # still NotFound for a missing object
            return False
        self._call("set legal hold on", key, self.client.put_object_legal_hold, Bucket=self.bucket,
                   Key=self.full_key(key), LegalHold={"Status": "ON" if on else "OFF"})
        log.info("legal hold %s for %s on %s", "ON" if on else "OFF", key, self.name)
        return True

    # -- archive classes -----------------------------------------------------------------------
    def restore(self, key: str, days: int = 0, version_id: str = "") -> str:
        """Start / inspect a restore; "" when the object's own class (from HEAD) needs none.
        ``version_id``: the version recorded at store time (used when a delete marker hides it)."""
        head = self._head(key, version_id)
        version_id = str(head.get("VersionId") or version_id or "")  # the hidden one, if a marker hides it
        version_id = "" if version_id == "null" else version_id
        state = restore_state(head.get("Restore"))
        cls = head.get("StorageClass") or "STANDARD"
        if state or not self.is_archive_class(cls):
            if not state:
                log.info("restore of %s on %s not needed: the object is in %s (readable)", key, self.name,
                         cls)
            return state
        request = {"Days": days or self.restore_days, "GlacierJobParameters": {"Tier": self.restore_tier}}
        vid = {"VersionId": version_id} if version_id else {}
        try:
            self.client.restore_object(Bucket=self.bucket, Key=self.full_key(key), RestoreRequest=request,
                                       **vid)
        except ClientError as exc:
            code = error_code(exc)
            if code == "RestoreAlreadyInProgress":
                return "in_progress"
            if code in NOT_SUPPORTED or http_status(exc) in (405, 501):
                return self._readable_without_restore(key, exc, vid)
            if code == "InvalidObjectState":  # the server says this class takes no restore
                return self._refused_restore(key, cls, exc, vid)
            raise translate(exc, "restore", key, self.name) from exc
        except BotoCoreError as exc:
            raise translate(exc, "restore", key, self.name) from exc
        meta = decode_metadata(head.get("Metadata", {}))
        log.info("restore of %s (recording %s) requested on %s for %d days", key,
                 meta.get("recording-id", "?"), self.name, request["Days"])
        return restore_state(self._head(key, version_id).get("Restore")) or "in_progress"

    def _refused_restore(self, key: str, cls: str, exc: ClientError, vid: dict[str, str]) -> str:
        """A restore refused with InvalidObjectState: "" when a GET works (the class is
        readable after all), else ObjectNotRestored naming the object's own class."""
        try:
            self.client.get_object(Bucket=self.bucket, Key=self.full_key(key), Range="bytes=0-0",
                                   **self.sse.read_args(), **vid)["Body"].close()
        except (ClientError, BotoCoreError) as read_exc:
            raise ObjectNotRestored(f"S3 tier {self.name!r}: {key}: the object is in class {cls}; the server "
                                    f"refused to restore it ({error_message(exc)}) and it is not "
                                    "readable") from read_exc
        log.info("restore of %s on %s not needed: class %s is readable here (%s)", key, self.name, cls,
                 error_message(exc))
        return ""

    def _readable_without_restore(self, key: str, exc: ClientError, vid: dict[str, str]) -> str:
        """The server has no restore: the class is only a label if a GET works."""
        try:
            self.client.get_object(Bucket=self.bucket, Key=self.full_key(key), Range="bytes=0-0",
                                   **self.sse.read_args(), **vid)["Body"].close()
        except (ClientError, BotoCoreError) as read_exc:
            raise StorageError(f"S3 tier {self.name!r}: {key}: restore is not supported by the endpoint "
                               f"({error_message(exc)}) and the object is not readable") from read_exc
        return "done"

    def change_storage_class(self, key: str, storage_class: str) -> str:
        """Rewrite the object in place into ``storage_class``, keeping metadata, content type,
        tags and lock settings; returns the new version id ("" when unversioned)."""
        full = self.full_key(key)
        head = self._head(key)
        args: dict[str, Any] = {
            "Bucket": self.bucket, "Key": full, "CopySource": {"Bucket": self.bucket, "Key": full},
            "StorageClass": storage_class, "MetadataDirective": "REPLACE",
            "Metadata": head.get("Metadata", {}), "TaggingDirective": "COPY",
            **self.sse.write_args(), **self.sse.copy_source_args()}
        if head.get("ContentType"):
            args["ContentType"] = head["ContentType"]
        if head.get("ObjectLockMode") and head.get("ObjectLockRetainUntilDate"):
            args["ObjectLockMode"] = head["ObjectLockMode"]
            args["ObjectLockRetainUntilDate"] = head["ObjectLockRetainUntilDate"]
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            args["ObjectLockLegalHoldStatus"] = "ON"
        resp = self._call("change storage class of", key, self.client.copy_object, **args)
        log.info("storage class of %s on %s: %s -> %s", key, self.name,
                 head.get("StorageClass") or "STANDARD", storage_class)
        return str(resp.get("VersionId") or "")

    # -- orphan uploads ------------------------------------------------------------------------
    def abort_stale_uploads(self, older_than_s: float = 3600, now: float | None = None) -> int:
        """Abort multipart uploads under our prefix started more than ``older_than_s`` ago
        (a shipper killed mid-upload leaves them); returns how many were aborted."""
        cutoff = (time.time() if now is None else now) - older_than_s
        aborted = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                 Prefix=self.prefix)
            for page in pages:
                for up in page.get("Uploads", []):
                    if up["Initiated"].timestamp() > cutoff:
                        continue
                    try:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"],
                                                           UploadId=up["UploadId"])
                        aborted += 1
                    except ClientError as exc:
                        if error_code(exc) != "NoSuchUpload":
                            raise
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "abort stale uploads under", self.prefix or "/", self.name) from exc
        if aborted:
            log.warning("aborted %d stale multipart uploads under %s/%s", aborted, self.bucket, self.prefix)
        return aborted

