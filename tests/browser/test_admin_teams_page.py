"""``/admin/teams`` in a real browser: every team with its accounts and agents, the row's form
replaces a team's agents and the new-team form names a new team's (both through the users page's
script, under the page CSP, with the page's CSRF token); a refusal is shown as text; a role
without ``users.manage`` gets no page."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.browser import admin_support
from tests.browser.admin_support import api_login
from tests.browser.driving import screenshot, wait
from tests.peers.service_support import PASSWORD

pytestmark = pytest.mark.browser
admin_console = admin_support.admin_console  # the module's fixtures
admin_browser = admin_support.admin_browser


def _agents(driver, team: str):  # type: ignore[no-untyped-def]
    return driver.find_element(By.CSS_SELECTOR, f'tr[data-team="{team}"] input[name="agents"]')


def test_an_admin_sees_and_sets_the_agents_of_teams(admin_console, admin_browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = admin_console
    driver = admin_browser
    assert api_login(driver, base, "root-admin", PASSWORD) == 200
    driver.get(f"{base}/admin/teams")
    wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-team="red"]')))
    red = driver.find_element(By.CSS_SELECTOR, 'tr[data-team="red"]')
    assert "lead-red (supervisor)" in red.find_element(By.CSS_SELECTOR, "td.members").text
    assert _agents(driver, "red").get_attribute("value") == "alice, bob"
    assert _agents(driver, "blue").get_attribute("value") == "carol"
    screenshot(driver, "admin_teams", full=True)
    field = _agents(driver, "red")
    field.clear()
    field.send_keys("alice, bob, dave")
    red.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.staleness_of(red))  # the page reloads once the change is saved
    wait(driver).until(lambda d: _agents(d, "red").get_attribute("value") == "alice, bob, dave")
    # a new team's agents, from the form under the table
    new = driver.find_element(By.XPATH, "//form[not(ancestor::table)][@data-url='/api/teams/{team}/agents']")
    new.find_element(By.NAME, "team").send_keys("green")
    new.find_element(By.NAME, "agents").send_keys("erin")
    new.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.staleness_of(new))
    wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-team="green"]')))
    assert _agents(driver, "green").get_attribute("value") == "erin"
    # a name the service refuses: the reason is shown, nothing is saved
    field = _agents(driver, "green")
    field.clear()
    field.send_keys("bad name/with slash")
    driver.find_element(By.CSS_SELECTOR, 'tr[data-team="green"] button[type=submit]').click()
    wait(driver).until(EC.text_to_be_present_in_element((By.ID, "admin-status"), "agent name"))
    screenshot(driver, "admin_teams_refused")
    driver.get(f"{base}/admin/teams")
    assert _agents(driver, "green").get_attribute("value") == "erin"


def test_a_role_without_users_manage_gets_no_page(admin_console, admin_browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = admin_console
    driver = admin_browser
    assert api_login(driver, base, "lead-red", PASSWORD) == 200
    driver.get(f"{base}/admin/teams")
    assert "data-team" not in driver.page_source and "role does not allow this" in driver.page_source
