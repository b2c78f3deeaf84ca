"""Fixtures for the S3 tier / claims tests: session servers from tests/real/s3_servers.py
and tier builders over a fresh bucket per call."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/real, for s3_servers

from s3_helpers import client_for, new_bucket  # noqa: E402
from s3_servers import S3Server, moto_s3, redis_srv, rgw_s3, seaweedfs  # noqa: E402,F401 - fixtures

from storage.s3 import S3Tier  # noqa: E402

TierFactory = Callable[..., S3Tier]


def _factory(server: S3Server) -> TierFactory:
    client = client_for(server)

    def build(*, lock: bool = True, bucket: str | None = None, **kw: Any) -> S3Tier:
        return S3Tier("s3", bucket=bucket or new_bucket(client, lock=lock), client=client,
                      prefix=kw.pop("prefix", "rec"), **kw)

    return build


@pytest.fixture
def weed_tier(seaweedfs: S3Server) -> Iterator[TierFactory]:  # noqa: F811
    yield _factory(seaweedfs)


@pytest.fixture
def moto_tier(moto_s3: S3Server) -> Iterator[TierFactory]:  # noqa: F811
    yield _factory(moto_s3)


@pytest.fixture
def rgw_tier(rgw_s3: S3Server) -> Iterator[TierFactory]:  # noqa: F811
    yield _factory(rgw_s3)
