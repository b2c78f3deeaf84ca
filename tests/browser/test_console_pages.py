"""The console in a real browser: every role sees exactly its rows, masking, hostile text shown
as text, the language switch, saved searches, deep paging, and the login page's redirect."""

from __future__ import annotations

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import HOSTILE
from tests.browser.driving import gone, login, row_ids, screenshot, wait
from tests.peers.service_support import PASSWORD

pytestmark = pytest.mark.browser

#: who sees which of the seeded queue "sales" calls (tests/peers/service_support.py)
SCOPES = {
    "root-admin": {"c-red-1", "c-red-2", "c-blue-1", "c-blue-2"},
    "lead-red": {"c-red-1", "c-red-2"},
    "qa1": {"c-blue-1"},
    "alice": {"c-red-1"},
    "comp": {"c-red-1", "c-red-2", "c-blue-1", "c-blue-2"},
    "counsel": {"c-red-1", "c-red-2", "c-blue-1", "c-blue-2"},
}


def _no_alert(browser) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


@pytest.mark.parametrize("user", [*SCOPES, "ops"])
def test_each_role_sees_exactly_its_scope(browser, console, user) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, user, PASSWORD, "/calls?queue=sales")
    if user == "ops":  # IT: no call content at all; the search sends them to the health page
        assert browser.current_url.endswith("/health") and row_ids(browser) == []
        browser.get(f"{console.base}/calls/c-red-1")
        assert browser.find_elements(By.ID, "error-403") and "c-red-1" not in browser.page_source
        return
    assert set(row_ids(browser)) == SCOPES[user]
    assert len(row_ids(browser)) == len(SCOPES[user])
    if user in ("alice", "qa1"):  # another team's call is the same 404 page as an absent one
        browser.get(f"{console.base}/calls/c-blue-2")
        assert browser.find_elements(By.ID, "error-404")
        assert "c-blue-2" not in browser.page_source


def test_agent_sees_masked_numbers_and_cannot_unmask(browser, console) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "alice", PASSWORD, "/calls?queue=sales")
    shown = browser.find_element(By.CSS_SELECTOR, "tr.call-row td.number").text
    assert "*" in shown and "12345678" not in shown
    assert not browser.find_elements(By.ID, "f-unmask")
    browser.get(f"{console.base}/calls/c-red-1?unmask=1")
    assert browser.find_elements(By.ID, "error-403")
    assert "12345678" not in browser.page_source


def test_admin_unmasks_on_request(browser, console) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "root-admin", PASSWORD, "/calls/c-red-1")
    assert "*" in browser.find_element(By.ID, "caller-num").text
    browser.find_element(By.ID, "unmask-link").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "caller-num"), "+8613812345678"))


def test_hostile_caller_name_is_shown_as_text(browser, console) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "root-admin", PASSWORD, "/calls/c-hostile")
    assert browser.find_element(By.ID, "caller-name").text == HOSTILE[1]
    assert browser.find_elements(By.CSS_SELECTOR, "#caller-name *") == []
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert browser.title != "pwned"
    _no_alert(browser)
    browser.get(f"{console.base}/calls/c-red-1")
    assert browser.find_element(By.ID, "caller-name").text == "<script>alert(1)</script>"
    assert browser.execute_script("return document.querySelectorAll('main script').length") == 0
    _no_alert(browser)


def test_language_switch_to_chinese(browser, console) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "counsel", PASSWORD, "/calls?queue=sales")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Find calls"
    heading = browser.find_element(By.TAG_NAME, "h1")
    Select(browser.find_element(By.ID, "lang-switch")).select_by_value("zh")
    wait(browser).until(gone(heading))  # saved, and the page reloaded
    wait(browser).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "查找通话"))
    screenshot(browser, "search-zh")
    browser.get(f"{console.base}/calls/c-red-1")  # kept for the user: every page in Chinese
    assert browser.find_element(By.CSS_SELECTOR, "#cdr h2").text == "通话详情"
    Select(browser.find_element(By.ID, "lang-switch")).select_by_value("en")
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#cdr h2"), "Call details"))


def test_saved_search_round_trip(browser, console) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "lead-red", PASSWORD, "/calls?queue=sales&status=answered")
    expected = row_ids(browser)
    browser.find_element(By.ID, "saved-name").send_keys("red answered")
    listed = browser.find_element(By.ID, "saved-list")
    browser.find_element(By.ID, "saved-save").click()
    wait(browser).until(gone(listed))
    opened = wait(browser).until(EC.element_to_be_clickable((By.LINK_TEXT, "red answered")))
    browser.get(f"{console.base}/calls")
    wait(browser).until(EC.element_to_be_clickable((By.LINK_TEXT, "red answered"))).click()
    wait(browser).until(EC.url_contains("queue=sales"))
    assert "status=answered" in browser.current_url and row_ids(browser) == expected
    listed = browser.find_element(By.ID, "saved-list")
    browser.find_element(By.CSS_SELECTOR, '.saved-delete[data-name="red answered"]').click()
    wait(browser).until(gone(listed))  # deleted, and the page reloaded
    wait(browser).until(EC.presence_of_element_located((By.ID, "saved-list")))
    assert not browser.find_elements(By.LINK_TEXT, "red answered")
    assert opened is not None


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_deep_paging_with_the_keyset_cursor(browser, console, order) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "root-admin", PASSWORD, f"/calls?queue=bulk&limit=10&sort={order}")
    seen: list[str] = []
    pages = 0
    while True:
        page = row_ids(browser)
        assert 0 < len(page) <= 10
        seen += page
        pages += 1
        following = browser.find_elements(By.ID, "page-next")
        if not following:
            break
        following[0].click()
        wait(browser).until(gone(following[0]))
    assert seen == (console.bulk if order == "newest" else console.bulk[::-1])  # every call once, in order
    assert pages == -(-len(console.bulk) // 10)
    assert "after=" in browser.current_url and "queue=bulk" in browser.current_url


def test_login_goes_to_a_local_next_only(browser, console) -> None:  # type: ignore[no-untyped-def]
    browser.get(f"{console.base}/login")
    browser.delete_all_cookies()
    browser.get(f"{console.base}/login?next=//evil.example/steal")
    screenshot(browser, "login")
    browser.find_element(By.ID, "login-name").send_keys("comp")
    browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "who-name")))
    assert browser.current_url == f"{console.base}/"


def test_screenshots_of_search_and_call_pages(browser, console) -> None:  # type: ignore[no-untyped-def]
    login(browser, console.base, "root-admin", PASSWORD, "/calls?queue=sales")
    assert len(row_ids(browser)) == 4
    assert screenshot(browser, "search").stat().st_size > 10_000
    browser.find_element(By.LINK_TEXT, "c-red-1").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "recordings")))
    assert browser.find_elements(By.CSS_SELECTOR, "tr.recording a.play")
    assert screenshot(browser, "call", full=True).stat().st_size > 10_000
