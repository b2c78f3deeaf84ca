import hashlib
import io
import stat

import pytest

from pbx_recorder.errors import IntegrityError, NotFound, StorageError, TierUnavailable
from storage.base import Tier
from storage.factory import build_tiers
from storage.local import LocalTier, check_key

DATA = b"RIFF-fake-audio" * 100
HEX = hashlib.sha256(DATA).hexdigest()
KEY = "eu/2026/11/21/n1_1.1_101010_n1_1.1_call001.wav"


@pytest.fixture
def tier(tmp_path):
    return LocalTier("hot", tmp_path / "hot")


def test_is_a_tier(tier):
    assert isinstance(tier, Tier)


def test_put_verify_open_stat_list_delete(tier, tmp_path):
    src = tmp_path / "src.wav"
    src.write_bytes(DATA)
    obj = tier.put(KEY, src, sha256=HEX)
    assert (obj.size, obj.sha256, obj.key, obj.tier) == (len(DATA), HEX, KEY, "hot")
    assert tier.verify(KEY, HEX)
    assert tier.verify(KEY, "sha256:" + HEX)
    assert not tier.verify(KEY, "0" * 64)
    with tier.open(KEY) as f:
        assert f.read() == DATA
    assert tier.stat(KEY).size == len(DATA)
    assert [o.key for o in tier.list("eu/")] == [KEY]
    assert list(tier.list("us/")) == []
    assert tier.delete(KEY) == 1
    assert tier.delete(KEY) == 0
    assert tier.stat(KEY) is None
    with pytest.raises(NotFound):
        tier.open(KEY)


def test_put_from_stream(tier):
    obj = tier.put("a/b.wav", io.BytesIO(DATA))
    assert obj.sha256 == HEX


def test_integrity_failure_leaves_nothing(tier):
    with pytest.raises(IntegrityError):
        tier.put(KEY, io.BytesIO(DATA), sha256="f" * 64)
    assert tier.stat(KEY) is None
    assert list(tier.list()) == []


def test_verify_detects_bitrot(tier):
    tier.put(KEY, io.BytesIO(DATA))
    path = tier.path_for(KEY)
    path.write_bytes(DATA[:-1] + b"X")
    assert not tier.verify(KEY, HEX)


@pytest.mark.parametrize("key", [
    "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "", "a\x00b", "a\\b", "C:/x", "a/\nb",
    "a/.b.tmp-1234", "x" * 2000,
])
def test_hostile_keys_refused(tier, key):
    with pytest.raises(StorageError):
        tier.path_for(key)
    with pytest.raises(StorageError):
        tier.put(key, io.BytesIO(b"x"))


def test_symlink_escape_refused(tier, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tier.root / "link").symlink_to(outside)
    with pytest.raises(StorageError):
        tier.put("link/x.wav", io.BytesIO(b"x"))
    assert list(outside.iterdir()) == []


def test_check_key_accepts_normal():
    assert check_key(KEY) == KEY


def test_read_only_mode_and_legal_hold(tmp_path):
    t = LocalTier("archive", tmp_path / "a", read_only=True)
    t.put("k/x.wav", io.BytesIO(DATA))
    mode = stat.S_IMODE(t.path_for("k/x.wav").stat().st_mode)
    assert mode == 0o400  # owner-only: storage.file_modes.READ_ONLY_FILE_MODE
    t.put("k/x.wav", io.BytesIO(DATA + b"2"))  # our own replace still works
    assert t.stat("k/x.wav").size == len(DATA) + 1
    assert t.set_legal_hold("k/x.wav", True) is False
    used, total = t.usage()
    assert 0 < used <= total


def test_missing_root_is_unavailable(tmp_path):
    t = LocalTier("hot", tmp_path / "gone", create=False)
    with pytest.raises(TierUnavailable):
        t.put("a/b.wav", io.BytesIO(DATA))


def test_build_tiers_mapping_and_errors(tmp_path):
    cold = {"type": "local", "root": str(tmp_path / "c"), "read_only": True}
    tiers = build_tiers({"tiers": {"hot": {"type": "local", "path": str(tmp_path / "h")}, "cold": cold}})
    assert sorted(tiers) == ["cold", "hot"]
    assert isinstance(tiers["hot"], LocalTier) and tiers["cold"].read_only
    from pbx_recorder.errors import ConfigError
    with pytest.raises(ConfigError):
        build_tiers({"x": {"type": "tape", "path": "/x"}})
    with pytest.raises(ConfigError):
        build_tiers({"x": {"type": "local"}})


def test_build_tiers_from_typed_config(tmp_path):
    from pbx_recorder.config.model import LocalTierConfig
    cfg = type("S", (), {"tiers": {"hot": LocalTierConfig(name="hot", path=tmp_path / "h")}})()
    tiers = build_tiers(cfg)
    assert tiers["hot"].root == tmp_path / "h"
