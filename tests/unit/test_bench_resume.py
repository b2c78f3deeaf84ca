"""The catalog bench's kept, resumable fill (``bench_catalog.py --keep``): a stopped 10M-call fill
goes on with the same keys, the same ``now`` and the same calls it would have made in one go."""

from __future__ import annotations

import os
import pickle
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import catalog_resume  # noqa: E402
from bench.catalog_data import CallGenerator  # noqa: E402

NOW = 1_800_000_000.0


def test_a_batch_is_the_same_calls_whatever_ran_before() -> None:
    whole = CallGenerator(3000, NOW)
    first = [g.call for g in whole.calls(0, 1000, batch_seed=True)]
    second = [g.call for g in whole.calls(1000, 1000, batch_seed=True)]
    resumed = CallGenerator(3000, NOW)  # a later run that starts at the second batch
    again = [g.call for g in resumed.calls(1000, 1000, batch_seed=True)]
    assert again == second
    assert again != first and {c["call_id"] for c in again}.isdisjoint({c["call_id"] for c in first})


def test_the_state_keeps_keys_and_now_and_refuses_another_run(tmp_path: Path) -> None:
    made = catalog_resume.open_state(tmp_path, 10_000, 500, NOW)
    assert not made.resumed
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o600  # holds the keys
    later = catalog_resume.open_state(tmp_path, 10_000, 500, NOW + 3600)
    assert later.resumed and later.now == NOW and later.keys == made.keys
    assert later.key.private_bytes_raw() == made.key.private_bytes_raw()
    with pytest.raises(catalog_resume.ResumeError, match="--calls 10000 --batch 500"):
        catalog_resume.open_state(tmp_path, 20_000, 500, NOW)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(catalog_resume.ResumeError, match="not a bench state file"):
        catalog_resume.open_state(tmp_path, 10_000, 500, NOW)


def test_samples_survive_a_record_cut_short_by_a_kill(tmp_path: Path) -> None:
    catalog_resume.append_samples(tmp_path, [1, 2])
    catalog_resume.append_samples(tmp_path, [3])
    whole = pickle.dumps([4, 5])
    with open(tmp_path / "samples.pickle", "ab") as f:
        f.write(whole[: len(whole) // 2])  # the run was killed while writing this batch's samples
    assert catalog_resume.load_samples(tmp_path) == [1, 2, 3]
    assert catalog_resume.load_samples(tmp_path / "none") == []


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant a samples.pickle the resumed run would unpickle
    with pytest.raises(catalog_resume.ResumeError, match="not be writable by others"):
        catalog_resume.open_state(shared, 10_000, 500, NOW)
    made = tmp_path / "new"
    catalog_resume.open_state(made, 10_000, 500, NOW)
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
