import asyncio

from pbx_recorder.recording.closure import (
    CLOSED_MARKER,
    CLOSED_STABLE,
    FILE_MISSING,
    STILL_CHANGING,
    ClosureTracker,
    FileState,
    marker_path,
    wait_closed,
)


def tracker(**kw):
    return ClosureTracker("/r/x.wav", started=100.0, stable_ms=kw.get("stable_ms", 1000),
                          closure_timeout_s=kw.get("timeout", 10.0))


def test_marker_closes_immediately():
    t = tracker()
    r = t.observe(100.0, FileState(10, 1), marker=True)
    assert r.outcome == CLOSED_MARKER and r.size == 10 and r.usable and r.flag == ""


def test_marker_without_file_is_missing():
    r = tracker().observe(100.0, None, marker=True)
    assert r.outcome == FILE_MISSING and not r.usable and r.flag == "file_missing"


def test_stability_needs_stable_ms_without_change():
    t = tracker()
    assert t.observe(100.0, FileState(10, 1), False) is None
    assert t.observe(100.5, FileState(20, 2), False) is None  # grew: restart the window
    assert t.observe(101.2, FileState(20, 2), False) is None  # 0.7 s stable
    r = t.observe(101.5, FileState(20, 2), False)  # 1.0 s stable
    assert r.outcome == CLOSED_STABLE and r.size == 20 and r.waited_s == 1.5


def test_still_growing_at_bound_is_flagged_but_usable():
    t = tracker(timeout=3.0)
    for i in range(4):
        r = t.observe(100.0 + i, FileState(i, i), False)
    assert r.outcome == STILL_CHANGING and r.usable and r.flag == "closure_timeout"


def test_missing_file_after_bound():
    t = tracker(timeout=2.0)
    assert t.observe(100.0, None, False) is None
    assert t.observe(101.0, None, False) is None
    r = t.observe(102.0, None, False)
    assert r.outcome == FILE_MISSING and r.flag == "file_missing"


def test_file_appearing_late_then_stable():
    t = tracker(timeout=10.0)
    assert t.observe(100.0, None, False) is None
    assert t.observe(101.0, FileState(5, 1), False) is None
    assert t.observe(102.0, FileState(5, 1), False).outcome == CLOSED_STABLE


async def test_wait_closed_with_fake_clock_and_stat():
    now = [0.0]
    states = {"/r/a.wav": FileState(1, 1)}
    sleeps = []

    async def fake_sleep(s):
        sleeps.append(s)
        now[0] += s

    r = await wait_closed("/r/a.wav", stable_ms=500, closure_timeout_s=5, poll_ms=250,
                          clock=lambda: now[0], stat=lambda p: states.get(str(p)), sleep=fake_sleep)
    assert r.outcome == CLOSED_STABLE and sleeps == [0.25, 0.25]


async def test_wait_closed_real_files_marker(tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"abc")

    async def close_later():
        await asyncio.sleep(0.05)
        marker_path(audio).write_text("")

    task = asyncio.create_task(close_later())
    r = await wait_closed(audio, stable_ms=60000, closure_timeout_s=5, poll_ms=10)
    await task
    assert r.outcome == CLOSED_MARKER and r.size == 3
