"""Run by test_s3_faults: a slow multipart put that the test SIGKILLs midway.

argv: endpoint bucket prefix key source_path; credentials in the environment."""

from __future__ import annotations

import os
import sys
import time
from typing import BinaryIO

from storage.s3 import S3Tier, make_client


class SlowReader:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        block = self.raw.read(n)
        print(f"read {len(block)}", flush=True)
        time.sleep(0.5)
        return block


def main() -> None:
    endpoint, bucket, prefix, key, source = sys.argv[1:6]
    client = make_client(endpoint_url=endpoint, region_name="us-east-1", access_key=os.environ["VICTIM_AK"],
                         secret_key=os.environ["VICTIM_SK"])
    tier = S3Tier("s3", bucket=bucket, client=client, prefix=prefix, multipart_threshold_mb=5)
    with open(source, "rb") as raw:
        tier.put(key, SlowReader(raw))  # type: ignore[arg-type]
    print("finished", flush=True)


if __name__ == "__main__":
    main()
