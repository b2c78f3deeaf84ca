"""S3 tier (boto3): verified uploads, Object Lock, SSE, archive classes and restore.

Every write streams the source once through a hashing reader (SHA-256 of the whole, and
of every multipart part), uploads with a SHA-256 checksum and then checks what landed:
against the server's stored checksum when it reports one, else by reading back and
hashing.  After a multipart upload the Object Lock retention, legal hold and tags are
read back and re-applied where the server dropped them.  Only S3 error codes steer the
logic; nothing here knows which server answers.  Failures become pbx_recorder.errors.

Storage classes: ``class_transition="direct"`` writes ``storage_class`` with each PUT (AWS);
``"lifecycle"`` never asks for a class (a server may refuse a direct write into a class only
its bucket lifecycle rule reaches) and lets the bucket's rule move the objects; ``stat``
reports where each object really is.  ``archive_classes`` are the classes that need a
restore before a GET (AWS names by default; admins name cloud-tier classes).
A lifecycle transition on a versioned bucket may leave a delete marker over the object:
reads, stats and restores then use the hidden version (``storage.s3_versions``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pbx_recorder.errors import IntegrityError, NotFound, ObjectNotRestored, StorageError
from storage.base import ObjectInfo, PutOptions, StoredObject
from storage.hashing import CHUNK, digests_equal
from storage.s3_errors import NO_LOCK_CONFIG, NOT_FOUND, error_code, translate
from storage.s3_lifecycle import S3LifecycleOps
from storage.s3_objects import (
    DEFAULT_ARCHIVE_CLASSES,
    ChainedReader,
    PartHashingReader,
    b64_to_hex,
    check_key,
    decode_metadata,
    encode_metadata,
    encode_tags,
    read_up_to,
    restore_state,
    tag_set,
)
from storage.s3_probe import ProbeReport, probe_tier
from storage.s3_sse import SseConfig
from storage.s3_versions import hidden_version

log = logging.getLogger(__name__)
MB = 1024 * 1024


def make_client(*, endpoint_url: str | None, region_name: str | None, access_key: str | None,
                secret_key: str | None, session_token: str | None = None, addressing_style: str = "path",
                max_attempts: int = 3, connect_timeout: float = 5, read_timeout: float = 60) -> Any:
    """A boto3 S3 client with the default checksum mode kept (Object Lock PUTs need it)."""
    config = Config(s3={"addressing_style": addressing_style},
                    retries={"max_attempts": max_attempts, "mode": "standard"},
                    connect_timeout=connect_timeout, read_timeout=read_timeout,
                    max_pool_connections=20)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, region_name=region_name or None,
        aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
        aws_session_token=session_token or None, config=config)


class S3Tier(S3LifecycleOps):
    def __init__(self, name: str, *, bucket: str, client: Any = None,
                 client_factory: Callable[[], Any] | None = None, endpoint_url: str | None = None,
                 region_name: str | None = None, prefix: str = "", access_key: str | None = None,
                 secret_key: str | None = None, session_token: str | None = None,
                 addressing_style: str = "path", storage_class: str = "", sse: SseConfig | None = None,
                 object_lock_mode: str = "", object_lock_days: int = 0, multipart_threshold_mb: int = 8,
                 restore_days: int = 7, restore_tier: str = "Standard",
                 allow_governance_bypass: bool = False, verify_readback: bool = True, max_attempts: int = 3,
                 connect_timeout: float = 5, read_timeout: float = 60,
                 archive_classes: Iterable[str] = DEFAULT_ARCHIVE_CLASSES,
                 class_transition: str = "direct") -> None:
        self.name = name
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if client is None:
            client = client_factory() if client_factory else make_client(
                endpoint_url=endpoint_url, region_name=region_name, access_key=access_key,
                secret_key=secret_key, session_token=session_token, addressing_style=addressing_style,
                max_attempts=max_attempts, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.client = client
        self.storage_class = storage_class
        self.sse = sse or SseConfig()
        self.object_lock_mode = object_lock_mode.upper()
        self.object_lock_days = object_lock_days
        self.part_size = max(5, multipart_threshold_mb) * MB
        self.transfer = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size)
        self.restore_days = restore_days
        self.restore_tier = restore_tier
        self.allow_governance_bypass = allow_governance_bypass
        self.verify_readback = verify_readback  # when the server reports no usable checksum
        self._lock_enabled: bool | None = None
        self.archive_classes = frozenset(c.upper() for c in archive_classes)
        if class_transition not in ("direct", "lifecycle"):
            raise ValueError(f"class_transition must be direct or lifecycle, not {class_transition!r}")
        self.class_transition = class_transition

    # -- helpers -------------------------------------------------------------------------------
    def full_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, op: str, what: str, fn: Callable[..., Any], *, asked: str = "", **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, op, what, self.name, asked=asked) from exc

    def _head(self, key: str, version_id: str = "", **extra: Any) -> dict[str, Any]:
        """HEAD of the object; when a delete marker hides it, of the hidden version
        (``version_id``, the one recorded at store time, when it is still there, else the newest)."""
        try:
            return dict(self._call("head", key, self.client.head_object, Bucket=self.bucket,
                                   Key=self.full_key(key), **self.sse.read_args(), **extra))
        except NotFound:
            hidden = hidden_version(self, key, version_id)
            if not hidden:
                raise
            return dict(self._call("head", key, self.client.head_object, Bucket=self.bucket,
                                   Key=self.full_key(key), VersionId=hidden, **self.sse.read_args(), **extra))

    def probe(self) -> ProbeReport:
        """Check that the configured encryption, class and lock modes work on the bucket."""
        return probe_tier(self)

    def is_archive_class(self, storage_class: str) -> bool:
        """True for a class that needs a restore before a GET (configurable, AWS names by default)."""
        return (storage_class or "STANDARD").upper() in self.archive_classes

    def describe_write(self, extra: dict[str, Any]) -> str:
        """What a PUT asked for (quoted when the server refuses it for good)."""
        parts = [f"{k}={extra[k]}" for k in ("ServerSideEncryption", "SSECustomerAlgorithm", "StorageClass",
                                             "ObjectLockMode", "ObjectLockLegalHoldStatus") if extra.get(k)]
        return ", ".join(parts) or "no encryption, class or lock options"

    def bucket_has_object_lock(self) -> bool:
        if self._lock_enabled is None:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if error_code(exc) not in NO_LOCK_CONFIG and "ObjectLock" not in error_code(exc):
                    raise translate(exc, "get_object_lock_configuration", self.bucket, self.name) from exc
                enabled = False
            except BotoCoreError as exc:
                raise translate(exc, "get_object_lock_configuration", self.bucket, self.name) from exc
            self._lock_enabled = enabled
        return self._lock_enabled

    def _lock_args(self, opts: PutOptions) -> dict[str, Any]:
        retain = opts.retain_until
        if retain is None and self.object_lock_days > 0:
            retain = datetime.now(UTC) + timedelta(days=self.object_lock_days)
        args: dict[str, Any] = {}
        per_object = opts.retain_until is not None or opts.legal_hold
        if per_object and not self.object_lock_mode and not self.bucket_has_object_lock():
            # e.g. a held recording moving to a cold bucket without Object Lock: the server would
            # refuse the headers; the catalog keeps the hold (and the retention) instead.
            log.warning("bucket %s of tier %s has no Object Lock: legal hold / retention of this object "
                        "are kept by the catalog only", self.bucket, self.name)
            return {}
        if retain is not None:
            args["ObjectLockMode"] = self.object_lock_mode or "GOVERNANCE"
            args["ObjectLockRetainUntilDate"] = retain
        if opts.legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    # -- put -----------------------------------------------------------------------------------
    def put(self, key: str, source: Path | BinaryIO, *, sha256: str | None = None,
            options: PutOptions | None = None) -> StoredObject:
        opts = options or PutOptions()
        full = self.full_key(key)
        meta = dict(opts.metadata)
        if sha256:
            meta.setdefault("sha256", sha256.removeprefix("sha256:"))
        extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256", "Metadata": encode_metadata(meta),
                                 **self.sse.write_args(), **self._lock_args(opts)}
        if opts.tags:
            extra["Tagging"] = encode_tags(opts.tags)
        wanted_class = opts.storage_class or self.storage_class
        if wanted_class and self.class_transition == "direct":
            extra["StorageClass"] = wanted_class
        elif wanted_class:
            log.debug("%s: class %s is reached by the bucket's lifecycle rule, not written", key,
                      wanted_class)
        if isinstance(source, str | Path):
            with open(source, "rb") as raw:
                return self._put_stream(key, full, raw, sha256, opts, extra)
        return self._put_stream(key, full, source, sha256, opts, extra)

    def _put_stream(self, key: str, full: str, raw: BinaryIO, sha256: str | None, opts: PutOptions,
                    extra: dict[str, Any]) -> StoredObject:
        first = read_up_to(raw, self.part_size)
        if len(first) < self.part_size:
            return self._put_single(key, full, first, sha256, extra)
        reader = PartHashingReader(ChainedReader(first, raw), self.part_size)
        self._call("upload", key, self.client.upload_fileobj, asked=self.describe_write(extra),
                   Fileobj=reader, Bucket=self.bucket, Key=full, ExtraArgs=extra, Config=self.transfer)
        digest = reader.hexdigest()
        self._check_expected(key, full, digest, sha256, uploaded=True)
        self._reapply_after_multipart(key, full, opts, extra)
        head = self._head(key, ChecksumMode="ENABLED")
        self._check_landed(key, head, reader)
        log.info("stored %s on %s (%d bytes, sha256 %s, multipart)", key, self.name, reader.size, digest)
        return StoredObject(tier=self.name, key=key, size=reader.size, sha256=digest,
                            storage_class=head.get("StorageClass") or extra.get("StorageClass", "STANDARD"),
                            version_id=head.get("VersionId") or "")

    def _put_single(self, key: str, full: str, body: bytes, sha256: str | None,
                    extra: dict[str, Any]) -> StoredObject:
        """One PUT carrying our SHA-256 (the server must refuse a mismatch with BadDigest)."""
        raw_digest = hashlib.sha256(body).digest()
        digest, b64 = raw_digest.hex(), base64.b64encode(raw_digest).decode()
        self._check_expected(key, full, digest, sha256, uploaded=False)
        resp = self._call("upload", key, self.client.put_object, asked=self.describe_write(extra),
                          Bucket=self.bucket, Key=full, Body=body, ChecksumSHA256=b64, **extra)
        version = str(resp.get("VersionId") or "")
        if resp.get("ChecksumSHA256") != b64:  # the server did not confirm our checksum: look again
            head = self._head(key, ChecksumMode="ENABLED")
            version = str(head.get("VersionId") or version)
            ok = int(head.get("ContentLength", -1)) == len(body) and (
                head.get("ChecksumSHA256") == b64 or not self.verify_readback or self.verify(key, digest))
            if not ok:
                raise IntegrityError(f"S3 tier {self.name!r}: {key}: the stored object does not hash to "
                                     f"sha256:{digest}")
        log.info("stored %s on %s (%d bytes, sha256 %s)", key, self.name, len(body), digest)
        return StoredObject(tier=self.name, key=key, size=len(body), sha256=digest,
                            storage_class=extra.get("StorageClass", "STANDARD"), version_id=version)

    def _check_expected(self, key: str, full: str, digest: str, sha256: str | None, *,
                        uploaded: bool) -> None:
        if sha256 and not digests_equal(digest, sha256):
            if uploaded:
                self._discard(full, "source bytes do not match the expected hash")
            raise IntegrityError(f"S3 tier {self.name!r}: {key}: source hashed to sha256:{digest}, "
                                 f"expected {sha256}")

    def _check_landed(self, key: str, head: dict[str, Any], reader: PartHashingReader) -> None:
        if int(head.get("ContentLength", -1)) != reader.size:
            raise IntegrityError(f"S3 tier {self.name!r}: {key}: stored size {head.get('ContentLength')} "
                                 f"!= {reader.size} bytes sent")
        stored = str(head.get("ChecksumSHA256") or "")
        ok = stored == reader.composite_b64() if "-" in stored else (
            bool(stored) and digests_equal(b64_to_hex(stored), reader.hexdigest()))
        if not ok and not stored and not self.verify_readback:
            ok = True  # every part carried a SHA-256 the server checked on receipt
        if not ok:  # no usable server checksum (or a layout we did not predict): read back and hash
            log.debug("%s: server checksum %r not usable; verifying by read-back", key, stored)
            ok = self.verify(key, reader.hexdigest())
        if not ok:
            raise IntegrityError(f"S3 tier {self.name!r}: {key}: the stored object does not hash to "
                                 f"sha256:{reader.hexdigest()}")

    def _reapply_after_multipart(self, key: str, full: str, opts: PutOptions, extra: dict[str, Any]) -> None:
        """Some servers drop lock and tagging headers on multipart uploads: read back, re-apply."""
        if opts.tags:
            got = self._safe_get(self.client.get_object_tagging, full).get("TagSet", [])
            if {t["Key"]: t["Value"] for t in got} != {str(k): str(v) for k, v in opts.tags.items()}:
                log.warning("tags of %s missing after multipart upload; re-applying", key)
                self._call("put_object_tagging", key, self.client.put_object_tagging, Bucket=self.bucket,
                           Key=full, Tagging={"TagSet": tag_set(opts.tags)})
        if "ObjectLockLegalHoldStatus" in extra:
            got = self._safe_get(self.client.get_object_legal_hold, full).get("LegalHold", {})
            if got.get("Status") != "ON":
                log.warning("legal hold of %s missing after multipart upload; re-applying", key)
                self._call("put_object_legal_hold", key, self.client.put_object_legal_hold,
                           Bucket=self.bucket, Key=full, LegalHold={"Status": "ON"})
        if "ObjectLockRetainUntilDate" in extra:
            got = self._safe_get(self.client.get_object_retention, full).get("Retention", {})
            want: datetime = extra["ObjectLockRetainUntilDate"]
            have = got.get("RetainUntilDate")
            if got.get("Mode") != extra["ObjectLockMode"] or not have or have < want - timedelta(seconds=1):
                log.warning("retention of %s missing after multipart upload; re-applying", key)
                self._call("put_object_retention", key, self.client.put_object_retention, Bucket=self.bucket,
                           Key=full, Retention={"Mode": extra["ObjectLockMode"], "RetainUntilDate": want})

    def _safe_get(self, fn: Callable[..., Any], full: str) -> dict[str, Any]:
        """Read-back that treats 'not set' (and a server unable to report it) as empty."""
        try:
            return dict(fn(Bucket=self.bucket, Key=full))
        except ClientError as exc:
            log.debug("read-back %s of %s: %s", getattr(fn, "__name__", "?"), full, error_code(exc))
            return {}
        except BotoCoreError as exc:
            raise translate(exc, "read-back", full, self.name) from exc

    def _discard(self, full: str, why: str) -> None:
        """Remove the version a failed put just wrote (on a versioned bucket a plain delete
        would only add a delete marker over it)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=full, **self.sse.read_args())
            vid = head.get("VersionId")
            self.client.delete_object(Bucket=self.bucket, Key=full,
                                      **({"VersionId": vid} if vid and vid != "null" else {}))
        except (ClientError, BotoCoreError) as exc:
            log.error("could not remove %s after failed put (%s): %s", full, why, exc)

    # -- read ----------------------------------------------------------------------------------
    def open(self, key: str, version_id: str = "") -> BinaryIO:
        """Stream the object; when a delete marker hides it, the hidden version (``version_id``,
        the one recorded at store time, when it is still there, else the newest)."""
        full = self.full_key(key)
        try:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=full, **self.sse.read_args())
            except ClientError as exc:
                hidden = hidden_version(self, key, version_id) if error_code(exc) in NOT_FOUND else ""
                if not hidden:
                    raise
                resp = self.client.get_object(Bucket=self.bucket, Key=full, VersionId=hidden,
                                              **self.sse.read_args())
        except ClientError as exc:
            if error_code(exc) == "InvalidObjectState":
                raise self._not_restored(key, version_id) from exc
            raise translate(exc, "open", key, self.name) from exc
        except BotoCoreError as exc:
            raise translate(exc, "open", key, self.name) from exc
        body: BinaryIO = resp["Body"]
        return body

    def _not_restored(self, key: str, version_id: str = "") -> ObjectNotRestored:
        try:
            head = self._head(key, version_id)
        except StorageError:
            head = {}
        meta = decode_metadata(head.get("Metadata", {}))
        rid = meta.get("recording-id") or key
        cls = head.get("StorageClass") or "an archive class"
        state = restore_state(head.get("Restore"))
        hint = ("a restore is in progress; try again later" if state == "in_progress"
                else f"run `pbx-recorder recordings restore {rid}`")
        return ObjectNotRestored(f"recording {rid} is in {cls}; {hint}", call_id=meta.get("call-id"))

    def stat(self, key: str, version_id: str = "") -> ObjectInfo | None:
        try:
            head = self._head(key, version_id, ChecksumMode="ENABLED")
        except NotFound:
            return None
        meta = decode_metadata(head.get("Metadata", {}))
        server = str(head.get("ChecksumSHA256") or "")  # computed by the server: a re-put cannot copy it
        return ObjectInfo(tier=self.name, key=key, size=int(head.get("ContentLength", 0)),
                          sha256=meta.get("sha256", ""), storage_class=head.get("StorageClass") or "STANDARD",
                          restore_state=restore_state(head.get("Restore")),
                          legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
                          retain_until=head.get("ObjectLockRetainUntilDate"),
                          version_id=str(head.get("VersionId") or ""),
                          server_sha256=b64_to_hex(server) if server and "-" not in server else "")

    def verify(self, key: str, sha256: str, version_id: str = "") -> bool:
        h = hashlib.sha256()
        body = self.open(key, version_id)
        try:
            for block in iter(lambda: body.read(CHUNK), b""):
                h.update(block)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "verify", key, self.name) from exc
        finally:
            body.close()
        return digests_equal(h.hexdigest(), sha256)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=self.prefix + prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(tier=self.name, key=obj["Key"][len(self.prefix):], size=int(obj["Size"]),
                                     storage_class=obj.get("StorageClass") or "STANDARD")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "list", prefix or "/", self.name) from exc

    def usage(self) -> tuple[int, int] | None:
        return None
