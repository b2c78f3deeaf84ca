"""Calls ticked on the search page, in chromium: a lead ticks one call and exports the recordings
of that call only (the archive holds its recording and a manifest naming it, nothing of the other
calls of the page); an admin ticks two calls and lands on the deletion request form with them
filled in; a click with nothing ticked says so and goes nowhere."""

from __future__ import annotations

import json
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.browser.driving import finished_export, login, screenshot, submit_and_wait, wait
from tests.browser.exports_support import export_console  # noqa: F401  (the module's fixture)
from tests.peers.exports_support import PASSWORD, unzip
from tests.peers.service_support import PASSWORD as LOGIN_PASSWORD

pytestmark = pytest.mark.browser


def _search_agent(browser, agent: str) -> None:  # type: ignore[no-untyped-def]
    field = browser.find_element(By.ID, "f-agent")
    field.clear()
    field.send_keys(agent)
    submit_and_wait(browser, "search-submit", "selection")


def _tick(browser, *call_ids: str) -> None:  # type: ignore[no-untyped-def]
    for call_id in call_ids:
        browser.find_element(By.CSS_SELECTOR, f'.bulk-call[value="{call_id}"]').click()


def test_the_recordings_of_the_ticked_calls_only(export_console, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    svc, base = export_console
    login(browser, base, "lead-red", LOGIN_PASSWORD)
    _search_agent(browser, "alice")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".bulk-call")) > 1  # other calls on the page
    assert not browser.find_elements(By.ID, "selection-delete")  # a lead may not ask for deletions
    browser.find_element(By.ID, "selection-export").click()  # nothing ticked: said, no move
    assert browser.find_element(By.ID, "selection-status").text
    assert "/calls" in browser.current_url
    _tick(browser, "c-red-1")
    browser.find_element(By.ID, "selection-export").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "export-selected")))
    shown = [li.get_attribute("data-call-id")
             for li in browser.find_elements(By.CSS_SELECTOR, ".export-call")]
    assert shown == ["c-red-1"]
    assert [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#export-kind option")] \
        == ["audio"]
    browser.find_element(By.ID, "export-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "export-password2").send_keys(PASSWORD)
    browser.find_element(By.ID, "export-submit").click()
    href, _ = finished_export(browser)
    screenshot(browser, "selection-export-done", full=True)
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    request = urllib.request.Request(href, headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (the test's own server)
        files = unzip(answer.read())
    manifest = json.loads(files.pop("manifest.json"))
    assert [name.split("_")[0] for name in files] == ["c-red-1"]
    assert [entry["call_id"] for entry in manifest["files"]] == ["c-red-1"]
    exported = [r for r in svc.audit_rows("lead-red") if r["action"] == "calls.export"]
    assert exported, "the export is audited"


def test_ticked_calls_fill_the_deletion_request(export_console, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _, base = export_console
    login(browser, base, "root-admin", LOGIN_PASSWORD)
    _search_agent(browser, "alice")
    other = next(b.get_attribute("value") for b in browser.find_elements(By.CSS_SELECTOR, ".bulk-call")
                 if b.get_attribute("value") != "c-red-1")
    _tick(browser, "c-red-1", other)
    browser.find_element(By.ID, "selection-delete").click()
    area = wait(browser).until(EC.presence_of_element_located((By.ID, "deletion-calls")))
    assert sorted(area.get_attribute("value").split()) == sorted(["c-red-1", other])
    screenshot(browser, "selection-deletion-form", full=True)
