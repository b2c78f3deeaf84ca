"""pbx_recorder.vip (file + Redis set) and consent.dialogue_runner over a scripted channel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from consent.dialogue_runner import ChannelGone, DigitAnswer, run_dialogue, safe_prompt_path
from pbx_recorder.core.consent_policy import ConsentDialog, Decision
from pbx_recorder.vip import VipDirectory


class FakeRedis:
    def __init__(self, members: set[str], fail: bool = False) -> None:
        self.members, self.fail, self.asked = members, fail, []

    def sismember(self, key: str, value: str) -> bool:
        self.asked.append((key, value))
        if self.fail:
            raise ConnectionError("redis down")
        return value in self.members


def test_vip_file_is_normalized_and_reloaded(tmp_path: Path) -> None:
    f = tmp_path / "vip.txt"
    f.write_text("# board\n+49 (151) 1234-5678  # CEO\n\n201\n")
    vip = VipDirectory(file=f)
    assert vip.is_vip("+4915112345678") and vip.is_vip("201")
    assert not vip.is_vip("202") and not vip.is_vip("")
    f.write_text("202\n")
    os.utime(f, (1, 2))
    assert vip.is_vip("202") and not vip.is_vip("201")


def test_vip_redis_set_and_fallback_to_file(tmp_path: Path) -> None:
    f = tmp_path / "vip.txt"
    f.write_text("301\n")
    redis = FakeRedis({"+4915112345678"})
    vip = VipDirectory(file=f, redis_key="k", redis_client=redis)
    assert vip.is_vip("+49 151 12345678") and not vip.is_vip("301")
    assert redis.asked[0] == ("k", "+4915112345678")
    vip_down = VipDirectory(file=f, redis_client=FakeRedis(set(), fail=True))
    assert vip_down.is_vip("301")


class Script:
    def __init__(self, answers: list[str]) -> None:
        self.answers, self.played, self.asked = list(answers), [], []

    async def play(self, path: str) -> None:
        self.played.append(path)

    async def ask(self, path: str, timeout_ms: int) -> DigitAnswer:
        self.asked.append((path, timeout_ms))
        answer = self.answers.pop(0)
        if answer == "H":
            raise ChannelGone("hangup")
        return DigitAnswer(answer)


def dialog(policy: str = "explicit") -> ConsentDialog:
    return ConsentDialog(
        policy, "consent-question", "v1", "en", 3.0, 3, "1", "2", 0.0, retry_prompt_id="consent-retry"
    )


@pytest.mark.parametrize(
    ("answers", "outcome", "retries"),
    [
        (["1"], Decision.GRANTED, 0),
        (["2"], Decision.REFUSED, 0),
        (["", "", ""], Decision.TIMEOUT, 2),
        (["9", "", "1"], Decision.GRANTED, 2),
        (["9", "9", "9"], Decision.INVALID, 2),
        (["", "H"], Decision.HANGUP, 1),
    ],
)
async def test_explicit_dialogue_outcomes(answers: list[str], outcome: Decision, retries: int) -> None:
    channel = Script(answers)
    ticks = iter(range(100))
    done = await run_dialogue(dialog(), channel, lambda pid: f"/p/en/{pid}", lambda: float(next(ticks)), "c1")
    assert done.outcome == outcome
    assert channel.played == ["/p/en/consent-retry"] * retries
    assert channel.asked[0] == ("/p/en/consent-question", 3000)


async def test_notify_plays_the_notice_once() -> None:
    channel = Script([])
    done = await run_dialogue(dialog("notify"), channel, lambda pid: f"/p/{pid}", lambda: 1.0)
    assert done.outcome == Decision.NOTIFIED and channel.played == ["/p/consent-question"]


@pytest.mark.parametrize("path", ["/p/a b", "/p/x;rm", "/p/$(id)", "", "/p/\nSET VARIABLE"])
def test_unsafe_prompt_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        safe_prompt_path(path)
