"""An export end to end in chromium: a lead searches, follows "Export this result", types a
password, watches the job to done, downloads the file through the page's link (fetched here with
the browser's session cookie), opens it with the password: numbers masked, formulas neutralised."""

from __future__ import annotations

import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.browser.driving import finished_export, login, screenshot, submit_and_wait, wait
from tests.browser.exports_support import export_console  # noqa: F401  (the module's fixture)
from tests.peers.exports_support import HOSTILE_NAMES, PASSWORD, csv_rows, unzip
from tests.peers.service_support import PASSWORD as LOGIN_PASSWORD

pytestmark = pytest.mark.browser


def test_export_a_search_with_a_password(export_console, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    svc, base = export_console
    login(browser, base, "lead-red", LOGIN_PASSWORD)
    field = browser.find_element(By.ID, "f-agent")
    field.clear()
    field.send_keys("alice")
    submit_and_wait(browser, "search-submit", "export-result")
    browser.find_element(By.ID, "export-result").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "export-form")))
    assert "agent=alice" in browser.find_element(By.ID, "export-filter").text
    for name in ("caller_name", "caller_num"):
        box = browser.find_element(By.CSS_SELECTOR, f'.export-field[value="{name}"]')
        if not box.is_selected():
            box.click()
    browser.find_element(By.ID, "export-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "export-password2").send_keys(PASSWORD)
    browser.find_element(By.ID, "export-submit").click()
    href, progress = finished_export(browser)
    assert progress == "1"
    assert browser.find_element(By.ID, "export-password").get_attribute("value") == ""
    screenshot(browser, "exports-done", full=True)

    cookies = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    request = urllib.request.Request(href, headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (the test's own server)
        assert answer.headers["Content-Disposition"].startswith("attachment")
        files = unzip(answer.read())
    rows = csv_rows(files["calls.csv"])
    header = rows[0]
    body = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    assert {r["agent"] for r in body} == {"alice"}
    hostile = {r["caller_name"] for r in body if r["call_id"].startswith("bulk-")}
    assert hostile == {"'" + n for n in HOSTILE_NAMES}
    assert all("*" in r["caller_num"] for r in body)  # masked as on the search page
    assert "+8613812345678" not in files["calls.csv"].decode("utf-8-sig")
    actions = [r["action"] for r in svc.audit_rows("lead-red")]
    assert "calls.export" in actions and "calls.export.download" in actions
