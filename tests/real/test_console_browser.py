"""A call recorded on the real private Asterisk, found and opened in the console by a real
browser: the recorder's own catalog, tiers and keys (``ServiceContext.from_config`` on the
daemon's config), the console served by uvicorn, Debian's chromium logging in, searching by the
call id and opening the call page; then the player: the real recording played
at 1.5x, seeked, a mark added and kept, the download allowed to the admin and refused to the
auditor (who also sees the number masked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from call_helpers import call, linkedid_of, new_caller
from recorder_checks import Recorder, wait_shipped
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from pbx_recorder.config import load_config
from pbx_recorder.service.accounts import Accounts
from pbx_recorder.service.app import build_app
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.testbed import PrivateAsterisk
from pbx_recorder.testbed.ami_probe import AmiProbe
from tests.browser.driving import login, make_driver, row_ids, screenshot, serve, wait
from tests.peers.service_support import CHEAP, PASSWORD

pytestmark = [pytest.mark.real, pytest.mark.browser, pytest.mark.asterisk("16"), pytest.mark.timeout(240)]


def test_console_finds_and_opens_a_real_call(asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder,
                                              tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=12, from_user=caller, dtmf=[(2500, "1")])
    assert result.ok, result.errors
    row, recs = wait_shipped(recorder, linkedid_of(ami, caller, since), count=2)
    call_id = str(row["call_id"])
    ctx = ServiceContext.from_config(load_config(recorder.config_path))
    ctx.hasher = CHEAP
    accounts = Accounts(ctx.catalog.connection(), hasher=CHEAP)
    for name, role in (("desk-admin", "admin"), ("desk-audit", "auditor")):
        accounts.add(name, role, PASSWORD, actor="root", actor_role="host-admin", now=ctx.clock())
    audio_id = next(str(r["recording_id"]) for r in recs if r["kind"] != "consent")
    driver = make_driver()
    try:
        with serve(build_app(ctx)) as base:
            login(driver, base, "desk-admin", PASSWORD, f"/calls?call_id={call_id}")
            assert row_ids(driver) == [call_id]
            number = driver.find_element(By.CSS_SELECTOR, "tr.call-row td.number").text
            assert "*" in number and caller not in number  # masked until asked
            screenshot(driver, "real-search")
            driver.find_element(By.LINK_TEXT, call_id).click()
            wait(driver).until(EC.text_to_be_present_in_element((By.ID, "call-id"), call_id))
            shown = {r.get_attribute("data-recording-id") for r in
                     driver.find_elements(By.CSS_SELECTOR, "tr.recording")}
            assert shown == {str(r["recording_id"]) for r in recs}
            assert driver.find_element(By.ID, "consent-decision").text == "granted"
            assert "cq-2026-01" in driver.find_element(By.ID, "consent-notice").text
            assert driver.find_elements(By.CSS_SELECTOR, "#consent-digits tbody tr")
            screenshot(driver, "real-call", full=True)
            _play_seek_mark(driver, base, audio_id)
            screenshot(driver, "real-player")
            marks = [m for m in ctx.catalog.connection().execute(
                "SELECT label, author FROM marks WHERE call_id = ?", (call_id,)).fetchall()]
            assert [tuple(m) for m in marks] == [("consent checked", "desk-admin")]
            assert _fetch_status(driver, f"/api/recordings/{audio_id}/audio?download=1") == 200

            login(driver, base, "desk-audit", PASSWORD, f"/recordings/{audio_id}/play")
            assert not driver.find_elements(By.ID, "download")
            assert _fetch_status(driver, f"/api/recordings/{audio_id}/audio?download=1") == 403
            driver.get(f"{base}/calls?call_id={call_id}")
            number = driver.find_element(By.CSS_SELECTOR, "tr.call-row td.number").text
            assert "*" in number and caller not in number
        audited = [json.loads(d) for (a, d) in ctx.catalog.connection().execute(
            "SELECT action, detail FROM audit_log WHERE target = ? AND action LIKE 'calls.%'",
            (audio_id,)).fetchall() if a == "calls.play"]
        streamed = [d for d in audited if d.get("what") != "peaks"]  # the waveform is audited as a play too
        assert streamed and all(isinstance(d["first_byte"], int) for d in streamed)
    finally:
        driver.quit()
        ctx.catalog.close()


def _js(driver, expression: str):  # type: ignore[no-untyped-def]
    return driver.execute_script(f"return {expression}")


def _play_seek_mark(driver, base: str, audio_id: str) -> None:  # type: ignore[no-untyped-def]
    driver.get(f"{base}/recordings/{audio_id}/play")
    wait(driver).until(lambda d: _js(d, "document.getElementById('audio').readyState >= 1"))
    assert _js(driver, "document.getElementById('audio').duration") > 5  # the real call's audio
    Select(driver.find_element(By.ID, "speed")).select_by_value("1.5")
    driver.find_element(By.ID, "play").click()
    assert _js(driver, "document.getElementById('audio').playbackRate") == 1.5
    wait(driver).until(lambda d: _js(d, "document.getElementById('audio').currentTime > 1.0"))
    driver.execute_script("document.getElementById('audio').currentTime = 6")
    wait(driver).until(lambda d: _js(d, "(a => a.currentTime >= 6 && !a.seeking)"
                                        "(document.getElementById('audio'))"))
    driver.find_element(By.ID, "play").click()  # pause, then mark the moment
    driver.find_element(By.ID, "mark-label").send_keys("consent checked")
    driver.find_element(By.ID, "mark-add").click()
    wait(driver).until(lambda d: _js(d, "document.querySelectorAll('#marks li.mark').length === 1"))


def _fetch_status(driver, path: str) -> int:  # type: ignore[no-untyped-def]
    """The status of a same-origin request made by the page (the session's cookie goes with it)."""
    return int(driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch({json.dumps(path)}, {{credentials: 'same-origin'}}).then(r => done(r.status));"))
