"""The player in a real browser (Debian's headless chromium, Selenium): a team lead opens a
10-minute stereo recording, plays it at 1.5x (the clock moves), seeks (the browser asks for a byte
range: the audit rows of the audio say which), uses the keyboard, adds a mark whose label is
markup and sees it, as text, after a reload.  Screenshot: test-artifacts/screenshots/player.png."""

from __future__ import annotations

import json

import pytest

from tests.browser.player_support import SCREENSHOTS, audio_ranges, chromium, log_in, player_console

pytestmark = pytest.mark.browser
__all__ = ["chromium", "player_console"]  # fixtures of player_support, used below

HOSTILE = '<img src=x onerror="document.title=1">refund'


def _wait(driver, script: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def _audio(driver, prop: str):  # type: ignore[no-untyped-def]
    return driver.execute_script(f"return document.getElementById('audio').{prop}")


@pytest.mark.timeout(300)
def test_play_seek_keys_and_marks_in_chromium(player_console, chromium) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver, console = chromium, player_console
    csrf = log_in(driver, console, "lead-red")
    driver.get(console.base + "/recordings/r-long/play")
    # the page carries the session's CSRF token (derived from the session token, as at login)
    assert driver.execute_script("return document.querySelector('meta[name=csrf-token]').content") == csrf
    _wait(driver, "return !document.getElementById('customer').hidden")  # stereo peaks drawn
    _wait(driver, "return document.getElementById('audio').readyState >= 1")

    Select(driver.find_element(By.ID, "speed")).select_by_value("1.5")
    driver.find_element(By.ID, "play").click()
    assert _audio(driver, "playbackRate") == 1.5
    _wait(driver, "return document.getElementById('audio').currentTime > 0.3")
    first = _audio(driver, "currentTime")
    _wait(driver, f"return document.getElementById('audio').currentTime > {first + 0.5}")

    driver.execute_script("document.getElementById('audio').currentTime = 480")  # 8 of 10 minutes
    _wait(driver, "const a = document.getElementById('audio'); return a.currentTime > 480.3 && !a.seeking")
    ranges = audio_ranges(console, "r-long")
    assert ranges and all(r.startswith("bytes=") for r in ranges), ranges
    starts = [int(r.removeprefix("bytes=").split("-")[0]) for r in ranges]
    assert starts[0] == 0 and max(starts) >= 470 * 32000, ranges  # fetched from near the seek target
    plays = [json.loads(r["detail"]) for r in console.service.audit_rows("lead-red")
             if r["action"] == "calls.play" and r["target"] == "r-long"]
    assert sum(p.get("range", "").startswith("bytes=") for p in plays) >= 2  # each range audited

    body = driver.find_element(By.TAG_NAME, "body")
    driver.execute_script("document.activeElement.blur()")
    body.send_keys("+")
    assert _audio(driver, "playbackRate") == 1.75
    before = _audio(driver, "currentTime")
    body.send_keys(Keys.ARROW_LEFT)
    assert _audio(driver, "currentTime") < before - 8
    body.send_keys(Keys.SPACE)
    _wait(driver, "return document.getElementById('audio').paused")

    at = _audio(driver, "currentTime")
    driver.find_element(By.ID, "mark-label").send_keys(HOSTILE)
    driver.find_element(By.ID, "mark-note").send_keys("asked for a refund\n<b>twice</b>")
    driver.find_element(By.ID, "mark-add").click()
    _wait(driver, "return document.querySelectorAll('#marks li.mark').length === 1")
    driver.refresh()
    _wait(driver, "return document.querySelectorAll('#marks li.mark').length === 1")
    item = driver.find_element(By.CSS_SELECTOR, "#marks li.mark")
    assert item.find_element(By.CSS_SELECTOR, ".label").text == HOSTILE
    assert "<b>twice</b>" in item.find_element(By.CSS_SELECTOR, ".note").text
    assert item.find_elements(By.TAG_NAME, "img") == [] and item.find_elements(By.TAG_NAME, "b") == []
    assert driver.title != "1"
    assert _audio(driver, "currentTime") < 1
    item.find_element(By.CSS_SELECTOR, "button.seek").click()  # a mark seeks to its position
    _wait(driver, f"return Math.abs(document.getElementById('audio').currentTime - {at}) < 0.1")
    assert any(r["action"] == "marks.add" for r in console.service.audit_rows("lead-red"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "player.png"))
    errors = [e for e in driver.get_log("browser")  # a CSP violation would be one of them
              if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]]
    assert errors == [], errors


def _open(driver, console, rid: str) -> None:  # type: ignore[no-untyped-def]
    driver.get(f"{console.base}/recordings/{rid}/play")
    _wait(driver, "return document.getElementById('audio').readyState >= 1")
    _wait(driver, "return document.getElementById('clock').textContent.endsWith('/ " +
          ("10:00" if rid == "r-long" else "1:00") + "')")


@pytest.mark.timeout(300)
def test_customer_skip_loop_and_skip_silence(player_console, chromium) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    driver, console = chromium, player_console
    log_in(driver, console, "lead-red")
    _open(driver, console, "r-long")
    _wait(driver, "return !document.getElementById('customer').hidden")
    driver.find_element(By.ID, "customer").click()  # the caller (channel 1) starts at 20 s
    _wait(driver, "const t = document.getElementById('audio').currentTime; return t >= 19.9 && t <= 20.2")

    driver.execute_script("document.getElementById('audio').currentTime = 30")
    _wait(driver, "return !document.getElementById('audio').seeking")
    driver.find_element(By.ID, "loop-a").click()
    driver.find_element(By.ID, "play").click()
    _wait(driver, "return document.getElementById('audio').currentTime > 31")
    driver.find_element(By.ID, "loop-b").click()
    assert driver.find_element(By.ID, "loop").text.startswith("A 0:30 – B 0:3")
    driver.execute_script("window.wrapped = false; const a = document.getElementById('audio');"
                          "a.addEventListener('seeked', () => {"
                          " if (a.currentTime < 30.5) window.wrapped = true; });")
    _wait(driver, "return window.wrapped")  # back to A after B
    driver.find_element(By.ID, "loop-clear").click()
    driver.find_element(By.ID, "play").click()

    _open(driver, console, "r-gaps")
    _wait(driver, "return document.getElementById('waveform').dataset.ready === '1'")
    driver.find_element(By.ID, "skip-silence").click()
    driver.find_element(By.ID, "play").click()  # from 0: silent until 15 s
    _wait(driver, "return document.getElementById('audio').currentTime >= 14.9")
    assert driver.find_element(By.ID, "customer").get_attribute("hidden") is not None  # mono: no skip
