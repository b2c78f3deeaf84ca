"""The audit log and health pages in chromium: the auditor filters the log by action and sees the
chain status; IT sees the health page and no call content; screenshots of both."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.browser.driving import login, screenshot
from tests.peers.service_support import PASSWORD

pytestmark = pytest.mark.browser


def test_the_auditor_filters_the_audit_log(browser, console) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "lead-red", PASSWORD, "/calls/c-red-1")  # a call view to find
    login(browser, console.base, "comp", PASSWORD, "/audit?action=calls.view&actor=lead-red")
    chain = browser.find_element(By.ID, "audit-chain")
    assert "ok" in (chain.get_attribute("class") or "").split()
    rows = browser.find_elements(By.CSS_SELECTOR, "table.audit-entries tbody tr")
    assert rows and all("lead-red" in r.text and "calls.view" in r.text for r in rows)
    assert any("c-red-1" in r.text for r in rows)
    screenshot(browser, "audit", full=True)


def test_it_sees_health_and_no_call(browser, console) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "ops", PASSWORD, "/health")
    assert browser.find_elements(By.ID, "health-daemons") and browser.find_elements(By.ID, "health-tiers")
    text = browser.page_source
    assert "c-red-1" not in text and "+86" not in text and "alice" not in text
    screenshot(browser, "health", full=True)
    browser.get(f"{console.base}/audit")
    assert browser.find_elements(By.ID, "error-403")
