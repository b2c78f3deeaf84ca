"""Start-up probe of an S3 tier: do the configured encryption, class and lock modes work on the bucket?

A server that cannot do what the config asks (SSE-S3 without a KMS, Object Lock headers on a
bucket without Object Lock, a class only a lifecycle rule reaches) refuses every upload
with a 4xx; better to hear it at start-up than from a spool that never drains.  The probe
writes one small object under ``<prefix>_pbx-recorder-probe/`` with exactly the options a
recording gets, reads back what the server applied (HEAD), and deletes it (every version).
On a bucket with Object Lock the probe's own retention lasts about 3 s (overriding any
bucket default retention), so the probe can delete it after.
Only S3 codes are looked at; nothing here knows which server answers.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pbx_recorder.errors import NotFound, StorageError, StorageRefused, TierUnavailable
from storage.s3_errors import error_code, error_message, translate

if TYPE_CHECKING:
    from storage.s3 import S3Tier

log = logging.getLogger(__name__)
PROBE_DIR = "_pbx-recorder-probe"
PROBE_RETAIN_S = 2


@dataclass
class ProbeReport:
    tier: str
    errors: list[str] = field(default_factory=list)  # the tier cannot store recordings as configured
    warnings: list[str] = field(default_factory=list)
    unreachable: bool = False  # transient: nothing could be checked now

    @property
    def ok(self) -> bool:
        return not self.errors


def probe_tier(tier: S3Tier) -> ProbeReport:
    report = ProbeReport(tier.name)
    try:
        _probe(tier, report)
    except TierUnavailable as exc:
        report.unreachable = True
        report.errors.append(f"unreachable, nothing checked: {exc}")
    except StorageError as exc:
        report.errors.append(str(exc))
    for line in report.errors:
        log.error("probe of tier %s: %s", tier.name, line)
    for line in report.warnings:
        log.warning("probe of tier %s: %s", tier.name, line)
    return report


def _probe(tier: S3Tier, report: ProbeReport) -> None:
    try:
        tier._call("check bucket", tier.bucket, tier.client.head_bucket, Bucket=tier.bucket)
    except NotFound:  # HEAD has no body: a missing bucket is a bare 404
        report.errors.append(f"bucket {tier.bucket} does not exist")
        return
    if tier.object_lock_mode and not tier.bucket_has_object_lock():
        report.errors.append(f"object_lock.mode is {tier.object_lock_mode} but bucket {tier.bucket} has no "
                             "Object Lock (it can only be enabled when the bucket is created)")
        return
    key = f"{PROBE_DIR}/{secrets.token_hex(8)}"
    extra: dict[str, Any] = {**tier.sse.write_args()}
    if tier.storage_class and tier.class_transition == "direct":
        extra["StorageClass"] = tier.storage_class
    retain = None
    if tier.object_lock_mode or tier.bucket_has_object_lock():
        # our own short retention also overrides a bucket default retention that would keep
        # the probe object for months
        retain = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=PROBE_RETAIN_S + 1)
        extra.update(ObjectLockMode=tier.object_lock_mode or "GOVERNANCE", ObjectLockRetainUntilDate=retain)
    asked = tier.describe_write(extra)
    try:
        resp = tier._call("probe write", key, tier.client.put_object, asked=asked, Bucket=tier.bucket,
                          Key=tier.full_key(key), Body=b"pbx-recorder probe", ChecksumAlgorithm="SHA256",
                          **extra)
    except StorageRefused as exc:
        report.errors.append(f"a recording would be refused: {exc}")
        return
    try:
        head = tier._head(key, str(resp.get("VersionId") or ""))
        _check_applied(tier, head, report)
    finally:
        _remove(tier, key, retain, report)
    if tier.class_transition == "lifecycle":
        _check_rule(tier, report)


def _check_applied(tier: S3Tier, head: dict[str, Any], report: ProbeReport) -> None:
    """What the server applied, compared with what was asked (a lenient server may ignore headers)."""
    mode = tier.sse.mode
    if mode in ("AES256", "aws:kms") and head.get("ServerSideEncryption") != mode:
        report.errors.append(f"sse {mode} asked, the server reports "
                             f"{head.get('ServerSideEncryption') or 'no encryption'}")
    if mode == "SSE-C" and not head.get("SSECustomerAlgorithm"):
        report.errors.append("sse SSE-C asked, the server reports no customer-key encryption")
    if tier.object_lock_mode and head.get("ObjectLockMode") != tier.object_lock_mode:
        report.errors.append(f"object_lock.mode {tier.object_lock_mode} asked, the server applied "
                             f"{head.get('ObjectLockMode') or 'none'}")
    got_class = head.get("StorageClass") or "STANDARD"
    if tier.storage_class and tier.class_transition == "direct" and got_class != tier.storage_class:
        report.warnings.append(f"storage_class {tier.storage_class} asked, the object is in {got_class}")


def _remove(tier: S3Tier, key: str, retain: datetime | None, report: ProbeReport) -> None:
    if retain is not None:  # the probe's own retention must run out first (COMPLIANCE allows no bypass)
        time.sleep(max(0.0, (retain - datetime.now(UTC)).total_seconds()) + 0.5)
    full = tier.full_key(key)
    try:
        entries = tier.versions(key) or [{"Key": full}]
        for entry in entries:
            vid = {"VersionId": entry["VersionId"]} if entry.get("VersionId") else {}
            tier.client.delete_object(Bucket=tier.bucket, Key=full, **vid)
    except (ClientError, BotoCoreError, StorageError) as exc:
        report.warnings.append(f"probe object {full} left behind: "
                               f"{error_message(exc) if not isinstance(exc, StorageError) else exc}")


def _check_rule(tier: S3Tier, report: ProbeReport) -> None:
    """class_transition: lifecycle needs an enabled rule moving our prefix to storage_class."""
    try:
        conf = tier.client.get_bucket_lifecycle_configuration(Bucket=tier.bucket)
    except ClientError as exc:
        if error_code(exc) == "NoSuchLifecycleConfiguration":
            report.warnings.append(f"class_transition is lifecycle but bucket {tier.bucket} has no lifecycle "
                                   f"rule: objects stay in their first class instead of {tier.storage_class}")
            return
        raise translate(exc, "read lifecycle rules of", tier.bucket, tier.name) from exc
    except BotoCoreError as exc:
        raise translate(exc, "read lifecycle rules of", tier.bucket, tier.name) from exc
    for rule in conf.get("Rules", []):
        prefix = str((rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", "")) or "")
        classes = {t.get("StorageClass") for t in rule.get("Transitions", [])}
        if rule.get("Status") == "Enabled" and tier.storage_class in classes \
                and tier.prefix.startswith(prefix):
            return
    report.warnings.append(f"no enabled lifecycle rule of bucket {tier.bucket} moves {tier.prefix or '/'} "
                           f"to {tier.storage_class}")
