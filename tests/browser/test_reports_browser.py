"""Reports and the storage page in chromium: the overall week with its SVG charts drawn (a tag
carrying markup shown as text), the XLSX downloaded by the browser and opened (its figures match
the page, a native chart inside); a lead sees only their team and saves a schedule through the
form; the storage page with its months and the plan forecast.  No CSP violation anywhere."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from tests.browser.driving import WAIT_S, login, screenshot, wait
from tests.browser.reports_support import HOSTILE_TAG, WEEK, reports_console_fixture  # noqa: F401
from tests.peers.service_support import PASSWORD

pytestmark = pytest.mark.browser


def _drain_logs(driver) -> None:  # type: ignore[no-untyped-def]
    """The session's chromium keeps the log of earlier tests (another module's expected 403s and
    404s) until it is read: read it away before this test's pages load."""
    driver.get_log("browser")


def _no_severe_logs(driver) -> None:  # type: ignore[no-untyped-def]
    errors = [e for e in driver.get_log("browser")  # a CSP violation would be one of them
              if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]]
    assert errors == [], errors


def _download(driver, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(tmp_path)})
    driver.find_element(By.ID, "report-download").click()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        done = [p for p in tmp_path.glob("*.xlsx")]
        if done and not list(tmp_path.glob("*.crdownload")):
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no download in {tmp_path}: {list(tmp_path.iterdir())}")


def test_overall_week_charts_and_xlsx(reports_console, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc, base = reports_console
    _drain_logs(browser)
    login(browser, base, "root-admin", PASSWORD, next_path=f"/reports?period={WEEK}&team=")
    wait(browser).until(EC.visibility_of_element_located((By.ID, "chart-calls")))
    calls = browser.find_element(By.CSS_SELECTOR, '#report-summary td[data-key="calls"]').text
    assert calls == "7"  # the four seeded calls and three more, all in the week
    for chart in ("chart-calls", "chart-consent", "chart-tiers", "chart-tags", "chart-qa"):
        bars = browser.find_elements(By.CSS_SELECTOR, f"#{chart} rect")
        assert bars and max(float(b.get_attribute("width")) for b in bars) > 100, chart
    tags = browser.find_element(By.ID, "chart-tags")
    assert HOSTILE_TAG in tags.text and not tags.find_elements(By.TAG_NAME, "b")  # drawn as text
    qa = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#report-qa tbody tr")]
    assert qa[0].startswith("1 alice 92.5")
    pdf_link = browser.find_element(By.ID, "report-pdf").get_attribute("href")
    assert pdf_link.endswith(f"/reports/download.pdf?period={WEEK}&team=")
    screenshot(browser, "reports-week", full=True)

    path = _download(browser, tmp_path)
    from openpyxl import load_workbook

    book = load_workbook(path)
    assert book["Summary"]["B1"].value == WEEK and book["Summary"]["B3"].value == 7
    assert [c.value for c in book["QA"]["B"]][:2] == ["Agent", "alice"]
    with zipfile.ZipFile(path) as archive:  # the native Excel charts (openpyxl does not load them)
        assert any(name.startswith("xl/charts/chart") for name in archive.namelist())
    actions = [r["action"] for r in svc.audit_rows("root-admin")]
    assert "reports.view" in actions and "reports.download" in actions
    _no_severe_logs(browser)


def test_a_lead_sees_their_team_only_and_saves_a_schedule(reports_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = reports_console
    _drain_logs(browser)
    login(browser, base, "lead-red", PASSWORD, next_path=f"/reports?period={WEEK}")
    wait(browser).until(EC.visibility_of_element_located((By.ID, "chart-calls")))
    teams = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "report-team")).options]
    assert teams == ["red"]
    assert browser.find_element(By.CSS_SELECTOR, '#report-summary td[data-key="calls"]').text == "4"
    browser.find_element(By.ID, "schedule-name").send_keys("red weekly <i>")
    Select(browser.find_element(By.ID, "schedule-period")).select_by_value("month")
    browser.find_element(By.ID, "schedule-mail").send_keys("lead@example.com")
    browser.find_element(By.CSS_SELECTOR, "#schedule-form button[type=submit]").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "schedule-list")))
    row = browser.find_element(By.CSS_SELECTOR, "#schedule-list tbody tr")
    assert "red weekly <i>" in row.text and "lead@example.com" in row.text
    screenshot(browser, "reports-schedule", full=True)
    _no_severe_logs(browser)
    browser.get(f"{base}/reports?period={WEEK}&team=")  # the overall report: refused
    assert "403" in browser.title or "403" in browser.page_source
    assert "denied:reports.read" in [r["action"] for r in svc.audit_rows("lead-red")]
    browser.get_log("browser")  # drained: that expected 403 is not the next test's error


def _stored_bytes(svc) -> int:  # type: ignore[no-untyped-def]
    from pbx_recorder.lifecycle.journal import open_catalog

    conn = open_catalog(svc.seeded.db)
    try:
        return int(conn.execute("SELECT SUM(size) FROM recordings").fetchone()[0])
    finally:
        conn.close()


def test_storage_page(reports_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = reports_console
    _drain_logs(browser)
    login(browser, base, "ops", PASSWORD, next_path="/storage")
    wait(browser).until(EC.visibility_of_element_located((By.ID, "chart-storage")))
    months = browser.find_elements(By.CSS_SELECTOR, "#storage-months tbody tr")
    assert len(months) == 12
    totals = [int(r.find_element(By.CSS_SELECTOR, "td[data-bytes]").get_attribute("data-bytes"))
              for r in months]
    # December holds the cold recordings made 40 days before (2026-12-06), January the seeded ones
    assert totals[-3] == 0 < totals[-2] < totals[-1] == _stored_bytes(svc)
    forecast = browser.find_elements(By.CSS_SELECTOR, "#storage-forecast td[data-bytes]")
    assert len(forecast) == 12 and int(forecast[-1].get_attribute("data-bytes")) > 0
    inputs = browser.find_element(By.ID, "storage-inputs").text  # 4 recorded calls in 30 days, 3 min each
    assert "0.1 recorded calls/day, 3.0 min/call, wav" in inputs
    assert "c-red-1" not in browser.page_source and "+86" not in browser.page_source
    screenshot(browser, "storage", full=True)
    assert "storage.view" in [r["action"] for r in svc.audit_rows("ops")]
    _no_severe_logs(browser)
