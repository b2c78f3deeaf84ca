"""Four-eyes replay in chromium: a lead opens the player of a VIP call and gets the request form
instead of the audio, asks with a reason; the auditor grants it on /replay-requests (no button for
the requester's own request); the lead's player then has the audio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from pbx_recorder.config.model import FourEyesConfig
from tests.browser.driving import login, screenshot, serve, wait
from tests.peers.service_support import PASSWORD, Service, make_service

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def vip_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    from pbx_recorder.service.app import build_app

    svc = make_service(tmp_path_factory.mktemp("four-eyes"), four_eyes=FourEyesConfig(tags=("vip",)))
    with serve(build_app(svc.ctx)) as base:
        yield svc, base
    svc.ctx.catalog.close()


def test_request_grant_then_play(vip_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = vip_console
    player = "/recordings/r-c-red-1/play"  # c-red-1 carries the tag vip in the seeded catalog
    login(browser, base, "lead-red", PASSWORD, next_path=player)
    wait(browser).until(EC.presence_of_element_located((By.ID, "replay-form")))
    assert not browser.find_elements(By.ID, "audio")
    browser.find_element(By.ID, "replay-reason").send_keys("customer complaint <b>#42</b>")
    browser.find_element(By.ID, "replay-ask").click()
    wait(browser).until(EC.visibility_of_element_located((By.ID, "replay-sent")))
    screenshot(browser, "four-eyes-request")

    login(browser, base, "comp", PASSWORD, next_path="/replay-requests")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".replay-decide")))
    row = browser.find_element(By.ID, "replay-requests")
    assert "customer complaint <b>#42</b>" in row.text and not row.find_elements(By.TAG_NAME, "b")
    screenshot(browser, "four-eyes-approve")
    browser.find_element(By.CSS_SELECTOR, '.replay-decide[data-decision="grant"]').click()
    wait(browser).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, ".replay-decide")))

    login(browser, base, "lead-red", PASSWORD, next_path=player)
    wait(browser).until(EC.presence_of_element_located((By.ID, "audio")))
    assert not browser.find_elements(By.ID, "replay-form")
    actions = [r["action"] for r in svc.audit_rows()]
    assert "replay.request" in actions and "replay.grant" in actions
