"""Helpers shared by the S3 tests (clients, buckets, random files)."""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/real, for s3_servers

from s3_servers import S3Server  # noqa: E402

from storage.s3 import make_client  # noqa: E402


def client_for(server: S3Server, **kw: Any) -> Any:
    return make_client(endpoint_url=server.endpoint_url, region_name=server.region,
                       access_key=server.access_key, secret_key=server.secret_key, **kw)


def new_bucket(client: Any, *, lock: bool) -> str:
    name = f"rec-{secrets.token_hex(6)}"
    if lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=name)
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def overwrite(client: Any, bucket: str, key: str, wait_s: float = 20.0, **put: Any) -> dict[str, Any]:
    """Put ``key`` over what is there (a hostile overwrite) and wait until the server serves it.

    A versioned SeaweedFS bucket once went on serving the older version to the GET that followed
    the overwrite's reply (CI, under load; never seen idle): the overwrite had not landed yet, and
    a test asserting that ``verify`` sees it would fail for the server's reason, not ours.  So the
    tamper is only done once a HEAD names the new version; never served: a failure saying so."""
    reply: dict[str, Any] = client.put_object(Bucket=bucket, Key=key, **put)
    version = reply.get("VersionId")
    if not version or version == "null":
        return reply  # unversioned: an overwrite is what the next read gets
    deadline = time.monotonic() + wait_s
    while (served := client.head_object(Bucket=bucket, Key=key).get("VersionId")) != version:
        assert time.monotonic() < deadline, f"{key}: version {version} never served ({served} is)"
        time.sleep(0.2)
    return reply
