"""``/admin/users`` in a real browser: the page's script runs under the page CSP, its forms post
with the page's CSRF token, a refusal is shown as text, a non-admin is refused."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.browser import admin_support
from tests.browser.admin_support import api_login
from tests.browser.driving import wait
from tests.peers.service_support import PASSWORD

pytestmark = pytest.mark.browser
admin_console = admin_support.admin_console  # the module's fixtures
admin_browser = admin_support.admin_browser


def test_an_admin_adds_a_user_and_is_refused_demoting_the_last_admin(admin_console, admin_browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = admin_console
    driver = admin_browser
    assert api_login(driver, base, "root-admin", PASSWORD) == 200
    driver.get(f"{base}/admin/users")
    wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-user="alice"]')))
    assert "on the host" in driver.find_element(By.CSS_SELECTOR, "p.approvers-on-host").text
    form = driver.find_element(By.CSS_SELECTOR, 'form.js-admin-new[data-url="/api/users"]')
    form.find_element(By.NAME, "name").send_keys("newlead")
    form.find_element(By.NAME, "role").send_keys("supervisor")
    form.find_element(By.NAME, "password").send_keys("a long enough password")
    form.find_element(By.NAME, "teams").send_keys("red, blue")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    row = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-user="newlead"]')))
    assert row.find_element(By.NAME, "teams").get_attribute("value") == "blue, red"
    # the last admin cannot be demoted: the refusal is shown as text
    admin_row = driver.find_element(By.CSS_SELECTOR, 'tr[data-user="root-admin"]')
    role_form = admin_row.find_element(By.CSS_SELECTOR, 'form[data-action="role"]')
    role_form.find_element(By.NAME, "role").send_keys("legal")
    role_form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.text_to_be_present_in_element((By.ID, "admin-status"), "last enabled admin"))
    # an approver's role is given on the host: the page says so
    alice_row = driver.find_element(By.CSS_SELECTOR, 'tr[data-user="alice"]')
    alice_role = alice_row.find_element(By.CSS_SELECTOR, 'form[data-action="role"]')
    alice_role.find_element(By.NAME, "role").send_keys("auditor")
    alice_role.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.text_to_be_present_in_element((By.ID, "admin-status"), "on the host"))


def test_a_non_admin_gets_no_page(admin_console, admin_browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = admin_console
    driver = admin_browser
    assert api_login(driver, base, "alice", PASSWORD) == 200
    driver.get(f"{base}/admin/users")
    assert "data-user" not in driver.page_source and "role does not allow this" in driver.page_source
