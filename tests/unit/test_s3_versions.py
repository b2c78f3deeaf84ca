"""hidden_version: a delete marker over real versions vs a key that is really gone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pbx_recorder.errors import StorageError, TierUnavailable
from storage.s3_versions import hidden_version


def at(minute: int) -> datetime:
    return datetime(2027, 1, 1, 12, minute, tzinfo=UTC)


def version(vid: str, minute: int, latest: bool = False) -> dict[str, Any]:
    return {"Key": "k", "VersionId": vid, "ETag": '"e"', "Size": 3, "LastModified": at(minute),
            "IsLatest": latest}


def marker(vid: str, minute: int, latest: bool = True) -> dict[str, Any]:
    return {"Key": "k", "VersionId": vid, "LastModified": at(minute), "IsLatest": latest}


class Tier:
    name, bucket = "s3", "b"

    def __init__(self, entries: list[dict[str, Any]] | Exception) -> None:
        self.entries = entries

    def versions(self, key: str) -> list[dict[str, Any]]:
        if isinstance(self.entries, Exception):
            raise self.entries
        return self.entries


@pytest.mark.parametrize(("entries", "recorded", "want"), [
    ([], "", ""),  # nothing at all: really gone
    ([version("v1", 1, latest=True)], "v1", ""),  # the newest is real: not hidden
    ([marker("m1", 2)], "", ""),  # only a marker: deleted, nothing to read
    ([version("v1", 1), marker("m1", 2)], "", "v1"),  # the transition case
    ([version("v1", 1), version("v2", 3), marker("m1", 4)], "v1", "v1"),  # the recorded one wins
    ([version("v1", 1), version("v2", 3), marker("m1", 4)], "gone", "v2"),  # else the newest real one
    ([version("v1", 1), {**marker("m1", 2), "IsLatest": None}], "", "v1"),  # no IsLatest: by time
])
def test_hidden_version(entries: list[dict[str, Any]], recorded: str, want: str) -> None:
    assert hidden_version(Tier(entries), "k", recorded) == want


def test_no_versioning_api_means_nothing_hidden_but_an_outage_is_not_hidden() -> None:
    assert hidden_version(Tier(StorageError("MethodNotAllowed")), "k") == ""
    with pytest.raises(TierUnavailable):
        hidden_version(Tier(TierUnavailable("down")), "k")
