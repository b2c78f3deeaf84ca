"""Disposal in chromium: a two-person deletion (the admin asks from the call page, the auditor
approves in a second login), an erasure previewed, executed and its receipt downloaded, a legal
hold placed (its badge on the search results) and released with a reason."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from tests.browser import disposal_support
from tests.browser.driving import WAIT_S, login, screenshot, wait
from tests.peers.service_support import PASSWORD

pytestmark = pytest.mark.browser
disposal_console = disposal_support.disposal_console  # the module's fixture


def _rows(svc, sql: str, params: tuple = ()) -> list[tuple]:  # type: ignore[no-untyped-def]
    from pbx_recorder.lifecycle.journal import open_catalog

    conn = open_catalog(svc.seeded.db)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def test_two_person_deletion(disposal_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = disposal_console
    key = "2027/01/c-red-1/r-c-red-1.wav"
    assert svc.seeded.tier.stat(key) is not None
    login(browser, base, "root-admin", PASSWORD, next_path="/calls/c-red-1")
    browser.find_element(By.ID, "request-deletion").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "deletion-form")))
    assert browser.find_element(By.ID, "deletion-calls").get_attribute("value").strip() == "c-red-1"
    browser.find_element(By.ID, "deletion-reason").send_keys("customer asked <b>#9</b>")
    browser.find_element(By.ID, "deletion-ask").click()
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "tr.deletion-row.state-requested")))
    row = browser.find_element(By.CSS_SELECTOR, "tr.deletion-row")
    assert "customer asked <b>#9</b>" in row.text and not row.find_elements(By.TAG_NAME, "b")
    assert not browser.find_elements(By.CSS_SELECTOR, ".deletion-decide")  # the admin cannot approve
    screenshot(browser, "disposal-deletion-requested")

    login(browser, base, "comp", PASSWORD, next_path="/deletions")
    button = wait(browser).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, '.deletion-decide[data-decision="approve"]')))
    screenshot(browser, "disposal-deletion-to-approve")
    button.click()
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "tr.deletion-row.state-executed")))
    screenshot(browser, "disposal-deletion-executed")
    assert svc.seeded.tier.stat(key) is None
    assert _rows(svc, "SELECT kind, requested_by, approved_by, recording_id FROM destruction_records") == [
        ("deletion", "root-admin", "comp", "r-c-red-1")]


def test_erasure_with_receipt_downloaded(disposal_console, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc, base = disposal_console
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    login(browser, base, "counsel", PASSWORD, next_path="/erasure")
    browser.find_element(By.ID, "erasure-number").send_keys("+8613900001111")  # the caller of c-red-2
    browser.find_element(By.ID, "erasure-preview").click()
    summary = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".erasure-summary")))
    assert summary.text.startswith("Covers: 1 calls, 1 recordings")
    assert "c-red-2" in browser.find_element(By.CSS_SELECTOR, ".erasure-calls").text
    browser.find_element(By.ID, "erasure-open").click()
    wait(browser).until(EC.element_to_be_clickable((By.ID, "erasure-execute")))
    screenshot(browser, "disposal-erasure-preview")
    browser.find_element(By.ID, "erasure-execute").click()
    link = wait(browser).until(EC.presence_of_element_located((By.ID, "erasure-receipt")))
    assert browser.find_element(By.ID, "erasure-number").get_attribute("value") == ""
    screenshot(browser, "disposal-erasure-done")
    link.click()
    deadline = time.monotonic() + WAIT_S
    files: list[Path] = []
    while time.monotonic() < deadline and not files:
        files = [p for p in tmp_path.glob("erasure-receipt-*.json")]
        time.sleep(0.2)
    assert files, "the receipt was not downloaded"
    time.sleep(0.5)  # the download is renamed into place once complete
    receipt = json.loads(files[0].read_text())
    assert receipt["status"] == "done" and receipt["recordings_erased"] == 1
    assert "13900001111" not in files[0].read_text()
    assert svc.seeded.tier.stat("2027/01/c-red-2/r-c-red-2.wav") is None
    browser.get(f"{base}/erasure")
    row = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "tr.erasure-row")))
    assert receipt["request_id"] in row.text and "done" in row.text


def test_protected_recordings_erased_only_by_a_second_person(disposal_console, browser) -> None:  # type: ignore[no-untyped-def]
    """The erasure withholds a protected class's recording; its checkbox opens a deletion request
    that counsel (who ran the erasure) cannot approve and the compliance role can."""
    svc, base = disposal_console
    key = "2027/01/c-blue-2/r-c-blue-2.wav"
    from pbx_recorder.lifecycle.journal import open_catalog

    conn = open_catalog(svc.seeded.db)
    conn.execute("UPDATE recordings SET retention_class='complaints' WHERE recording_id='r-c-blue-2'")
    conn.close()
    login(browser, base, "counsel", PASSWORD, next_path="/erasure")
    browser.find_element(By.ID, "erasure-number").send_keys("+8613812345678")  # c-red-1, c-blue-2
    browser.find_element(By.ID, "erasure-preview").click()
    wait(browser).until(EC.element_to_be_clickable((By.ID, "erasure-open"))).click()
    wait(browser).until(EC.element_to_be_clickable((By.ID, "erasure-execute")))
    browser.find_element(By.ID, "erasure-include-protected").click()
    browser.find_element(By.ID, "erasure-execute").click()
    asked = wait(browser).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#erasure-done .protected-asked")))
    assert "refused_partial" in browser.find_element(By.ID, "erasure-done").text
    screenshot(browser, "disposal-erasure-protected-asked")
    deletion_id = asked.text.rsplit(": ", 1)[1]
    assert svc.seeded.tier.stat(key) is not None  # (counsel may not decide deletions at all)

    login(browser, base, "comp", PASSWORD, next_path="/deletions")
    row = f'tr.deletion-row[data-request="{deletion_id}"]'
    button = wait(browser).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f'{row} .deletion-decide[data-decision="approve"]')))
    button.click()
    wait(browser).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, f'tr.deletion-row.state-executed[data-request="{deletion_id}"]')))
    assert svc.seeded.tier.stat(key) is None
    assert _rows(svc, "SELECT requested_by, approved_by FROM destruction_records WHERE recording_id = ?",
                 ("r-c-blue-2",)) == [("counsel", "comp")]


def test_hold_added_shown_and_released(disposal_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = disposal_console
    login(browser, base, "root-admin", PASSWORD, next_path="/calls/c-blue-1")
    assert not browser.find_elements(By.ID, "held")
    browser.find_element(By.ID, "hold-this-call").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "hold-form")))
    Select(browser.find_element(By.ID, "hold-scope")).select_by_value("call")
    assert browser.find_element(By.ID, "hold-value").get_attribute("value") == "c-blue-1"
    browser.find_element(By.ID, "hold-reason").send_keys("litigation 2027-14")
    browser.find_element(By.ID, "hold-add").click()
    row = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "tr.hold-row")))
    assert "litigation 2027-14" in row.text and "c-blue-1" in row.text
    screenshot(browser, "disposal-hold-added")
    browser.get(f"{base}/calls?queue=sales")
    held = wait(browser).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, 'tr[data-call-id="c-blue-1"] .held-badge')))
    assert held.text == "held"
    assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-call-id="c-blue-2"] .held-badge')
    screenshot(browser, "disposal-hold-badge")
    browser.get(f"{base}/recordings/r-c-blue-1/play")
    wait(browser).until(EC.presence_of_element_located((By.ID, "held")))

    browser.get(f"{base}/holds")
    hold_id = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "tr.hold-row"))) \
        .get_attribute("data-hold")
    browser.find_element(By.CSS_SELECTOR, f'.release-reason[data-hold="{hold_id}"]').send_keys("case closed")
    browser.find_element(By.CSS_SELECTOR, f'.hold-release[data-hold="{hold_id}"]').click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "holds-none")))
    screenshot(browser, "disposal-hold-released")
    assert _rows(svc, "SELECT released_by FROM holds WHERE hold_id = ?", (hold_id,)) == [("root-admin",)]
    assert _rows(svc, "SELECT legal_hold FROM recordings WHERE recording_id = 'r-c-blue-1'") == [(0,)]
