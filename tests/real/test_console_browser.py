"""A call recorded on the real private Asterisk, found and opened in the console by a real
browser: the recorder's own catalog, tiers and keys (``ServiceContext.from_config`` on the
daemon's config), the console served by uvicorn, Debian's chromium logging in, searching by the
call id and opening the call page."""

from __future__ import annotations

from pathlib import Path

import pytest
from call_helpers import call, linkedid_of, new_caller
from recorder_checks import Recorder, wait_shipped
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from pbx_recorder.config import load_config
from pbx_recorder.sandbox import PrivateAsterisk
from pbx_recorder.sandbox.ami_probe import AmiProbe
from pbx_recorder.service.accounts import Accounts
from pbx_recorder.service.app import build_app
from pbx_recorder.service.context import ServiceContext
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
    Accounts(ctx.catalog.connection(), hasher=CHEAP).add("desk-admin", "admin", PASSWORD, actor="root",
                                                          actor_role="host-admin", now=ctx.clock())
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
    finally:
        driver.quit()
        ctx.catalog.close()
