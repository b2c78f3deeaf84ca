"""The login page's second step in chromium: a user with TOTP types the code after the password;
a role that requires TOTP and has none enrols on the page (secret shown once) and confirms with
the first code; a wrong code is refused on the page and the session stays pending."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.browser.driving import screenshot, serve, wait
from tests.peers.authx_support import code, enrol, service_with_totp
from tests.peers.service_support import PASSWORD, Service

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def totp_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    from pbx_recorder.service.app import build_app

    svc = service_with_totp(tmp_path_factory.mktemp("totp"), totp_required_roles=("auditor",))
    with serve(build_app(svc.ctx)) as base:
        yield svc, base
    svc.ctx.catalog.close()


def _password(driver: Any, base: str, name: str) -> None:
    driver.get(f"{base}/login")
    driver.delete_all_cookies()
    driver.get(f"{base}/calls")
    wait(driver).until(EC.presence_of_element_located((By.ID, "login-form")))
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver).until(EC.visibility_of_element_located((By.ID, "totp-form")))


def _code(driver: Any, value: str) -> None:
    field = driver.find_element(By.ID, "totp-code")
    field.clear()
    field.send_keys(value)
    driver.find_element(By.ID, "totp-submit").click()


def test_an_enrolled_user_types_the_code_after_the_password(totp_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = totp_console
    _, _, secret = enrol(svc, "lead-red")
    svc.clock.now += 120  # the enrolment's code is spent: the next step's code is due
    _password(browser, base, "lead-red")
    _code(browser, "000000" if code(secret, svc.clock.now) != "000000" else "111111")
    wait(browser).until(EC.visibility_of_element_located((By.ID, "totp-error")))
    assert not browser.find_elements(By.ID, "who-name")  # still logged out
    assert svc.client().get("/api/calls").status_code == 401
    _code(browser, code(secret, svc.clock.now))
    wait(browser).until(EC.presence_of_element_located((By.ID, "who-name")))
    assert browser.find_element(By.ID, "who-name").text == "lead-red"
    assert "/calls" in browser.current_url
    rows = svc.audit_rows("lead-red")
    assert any(r["action"] == "login.failed" and '"totp"' in r["detail"] for r in rows)
    assert any(r["action"] == "login" and '"factor":"totp"' in r["detail"] for r in rows)


def test_a_role_that_requires_totp_enrols_on_the_login_page(totp_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = totp_console
    auditor = "comp"  # tests/peers/service_support.py's auditor
    _password(browser, base, auditor)
    wait(browser).until(EC.visibility_of_element_located((By.ID, "enrol")))
    secret = browser.find_element(By.ID, "enrol-secret").text
    assert len(secret) >= 16 and browser.find_element(By.ID, "enrol-uri").text.startswith("otpauth://")
    screenshot(browser, "login-totp-enrol")
    _code(browser, code(secret, svc.clock.now))
    wait(browser).until(EC.presence_of_element_located((By.ID, "who-name")))
    assert browser.find_element(By.ID, "who-name").text == auditor
    assert any(r["action"] == "totp.enrol" for r in svc.audit_rows(auditor))



def test_a_user_sets_up_the_optional_factor_on_my_account(totp_console, browser) -> None:  # type: ignore[no-untyped-def]
    from tests.browser.driving import login

    svc, base = totp_console
    login(browser, base, "qa1", PASSWORD, "/me")
    assert browser.find_element(By.ID, "totp").get_attribute("data-state") == "none"
    browser.find_element(By.ID, "totp-start").click()
    wait(browser).until(EC.visibility_of_element_located((By.ID, "totp-setup")))
    secret = browser.find_element(By.ID, "enrol-secret").text
    browser.find_element(By.ID, "totp-code").send_keys(code(secret, svc.clock.now))
    browser.find_element(By.ID, "totp-submit").click()
    wait(browser).until(EC.visibility_of_element_located((By.ID, "totp-done")))
    screenshot(browser, "account-totp")
    assert any(r["action"] == "totp.enrol" for r in svc.audit_rows("qa1"))
    svc.clock.now += 60
    _password(browser, base, "qa1")  # from now on the login asks for the code
    _code(browser, code(secret, svc.clock.now))
    wait(browser).until(EC.presence_of_element_located((By.ID, "who-name")))
