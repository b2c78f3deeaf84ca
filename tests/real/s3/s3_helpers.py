"""Helpers shared by the S3 tests (clients, buckets, random files)."""

from __future__ import annotations

import os
import secrets
import sys
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
