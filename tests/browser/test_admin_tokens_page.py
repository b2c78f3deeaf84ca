"""``/admin/tokens`` in a real browser: the page's script runs under the page CSP, a new token is
shown once (from the API's answer, never in a page), listed after the reload without its value,
revoked through the confirm dialog; a refusal is shown as text; a role without
``tokens.manage`` gets no page."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from pbx_recorder.service.api_token_store import PREFIX
from tests.browser import admin_support
from tests.browser.admin_support import api_login
from tests.browser.driving import screenshot, wait
from tests.peers.service_support import PASSWORD

pytestmark = pytest.mark.browser
admin_console = admin_support.admin_console  # the module's fixtures
admin_browser = admin_support.admin_browser


def _new_token(driver, user: str, role: str, label: str) -> None:  # type: ignore[no-untyped-def]
    form = driver.find_element(By.CSS_SELECTOR, "form.js-token-new")
    form.find_element(By.NAME, "user").send_keys(user)
    form.find_element(By.NAME, "role").send_keys(role)
    days = form.find_element(By.NAME, "days")
    days.clear()
    days.send_keys("7")
    form.find_element(By.NAME, "label").send_keys(label)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def test_an_admin_creates_sees_once_and_revokes_a_token(admin_console, admin_browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = admin_console
    driver = admin_browser
    assert api_login(driver, base, "root-admin", PASSWORD) == 200
    driver.get(f"{base}/admin/tokens")
    wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "form.js-token-new")))
    # a role wider than the owner's: refused, the reason shown as text
    _new_token(driver, "alice", "supervisor", "too wide")
    wait(driver).until(EC.text_to_be_present_in_element((By.ID, "admin-status"), "wider than alice"))
    assert not driver.find_element(By.ID, "new-token-box").is_displayed()
    driver.get(f"{base}/admin/tokens")
    _new_token(driver, "alice", "agent", "wallboard")
    shown = wait(driver).until(EC.visibility_of_element_located((By.ID, "new-token")))
    wait(driver).until(lambda d: d.find_element(By.ID, "new-token").text.startswith(PREFIX))
    token = shown.text
    screenshot(driver, "admin_tokens_new_token_shown_once", full=True)
    driver.find_element(By.ID, "new-token-done").click()
    row = wait(driver).until(EC.presence_of_element_located((By.XPATH, "//tr[td[text()='wallboard']]")))
    assert token not in driver.page_source and not driver.find_element(By.ID, "new-token-box").is_displayed()
    token_id = row.get_attribute("data-token")
    assert token_id and len(token_id) == 16
    row.find_element(By.CSS_SELECTOR, "form.js-revoke button").click()
    alert = wait(driver).until(EC.alert_is_present())
    assert token_id in alert.text
    alert.accept()
    wait(driver).until(lambda d: "revoked" in d.find_element(
        By.CSS_SELECTOR, f'tr[data-token="{token_id}"] td.state').text)
    assert not driver.find_elements(By.CSS_SELECTOR, f'tr[data-token="{token_id}"] form.js-revoke')


def test_a_role_without_tokens_manage_gets_no_page(admin_console, admin_browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = admin_console
    driver = admin_browser
    assert api_login(driver, base, "alice", PASSWORD) == 200
    driver.get(f"{base}/admin/tokens")
    assert "data-token" not in driver.page_source and "role does not allow this" in driver.page_source
