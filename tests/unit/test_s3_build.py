"""build_s3_tier / factory 's3' entry: typed config and mappings, errors name the key."""

from pathlib import Path

import pytest

from pbx_recorder.config.model import ObjectLockConfig, S3TierConfig
from pbx_recorder.config.secret import Secret
from pbx_recorder.errors import ConfigError
from storage.factory import build_tiers
from storage.s3 import S3Tier
from storage.s3_build import build_s3_tier


def test_typed_config_through_factory(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    key_file.write_bytes(bytes(range(32)))
    cfg = S3TierConfig(name="arch", bucket="bkt", endpoint_url="http://127.0.0.1:9", access_key_id="a",
                       secret_access_key=Secret("s"), object_lock=ObjectLockConfig("COMPLIANCE", 30),
                       sse="SSE-C", sse_c_key_file=key_file, prefix="/rec/", multipart_threshold_mb=16)
    tier = build_tiers({"arch": cfg})["arch"]
    assert isinstance(tier, S3Tier)
    assert (tier.object_lock_mode, tier.object_lock_days, tier.prefix) == ("COMPLIANCE", 30, "rec/")
    assert tier.sse.customer_key == bytes(range(32)) and tier.part_size == 16 * 1024 * 1024


def test_mapping_config_and_errors(tmp_path: Path) -> None:
    tier = build_s3_tier("t", {"bucket": "bkt", "endpoint_url": "http://127.0.0.1:9", "sse": "aws:kms",
                               "kms_key_id": "key-1"})
    assert tier.sse.write_args() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "key-1"}
    with pytest.raises(ConfigError, match=r"storage\.tiers\.t\.kms_key_id"):
        build_s3_tier("t", {"bucket": "bkt", "sse": "aws:kms"})
    with pytest.raises(ConfigError, match=r"storage\.tiers\.t\.bucket"):
        build_s3_tier("t", {"endpoint_url": "http://x"})
    bad = tmp_path / "bad"
    bad.write_text("too short")
    with pytest.raises(ConfigError, match="sse_c_key_file"):
        build_s3_tier("t", {"bucket": "bkt", "sse": "SSE-C", "sse_c_key_file": str(bad)})
