"""QA review and tags in chromium: an admin makes a scorecard (a refusal names the field); a QA
reviewer sees only their sample on /qa, fills the scorecard with a comment anchored in the
recording, and gets the error page for a call that is not theirs; the agent reads the review on
their call's page; an admin adds a tag, a lead tags every call of a search (the count confirmed)
and finds them by that tag, its label shown as text."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from tests.browser import qa_support
from tests.browser.driving import login, screenshot, wait
from tests.peers.service_support import PASSWORD

pytestmark = pytest.mark.browser
qa_console = qa_support.qa_console  # the module's console


def _fill(row, key: str, label: str, kind: str, weight: str, top: str = "5") -> None:  # type: ignore[no-untyped-def]
    row.find_element(By.CSS_SELECTOR, ".c-key").send_keys(key)
    row.find_element(By.CSS_SELECTOR, ".c-label").send_keys(label)
    Select(row.find_element(By.CSS_SELECTOR, ".c-kind")).select_by_value(kind)
    for cls, value in ((".c-max", top), (".c-weight", weight)):
        box = row.find_element(By.CSS_SELECTOR, cls)
        box.clear()
        box.send_keys(value)


def test_admin_creates_a_scorecard(qa_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = qa_console
    login(browser, base, "root-admin", PASSWORD, next_path="/admin/scorecards")
    browser.find_element(By.ID, "card-name").send_keys("Call opening")
    _fill(
        browser.find_element(By.CSS_SELECTOR, ".criterion-input"),
        "greeting",
        "Greets <b>by name</b>",
        "yesno",
        "2",
    )
    browser.find_element(By.ID, "card-add-criterion").click()
    second = browser.find_elements(By.CSS_SELECTOR, ".criterion-input")[1]
    _fill(second, "greeting", "Tone", "scale", "1", "4")
    browser.find_element(By.ID, "card-submit").click()
    wait(browser).until(lambda d: "criteria[1].key" in d.find_element(By.ID, "card-error").text)
    key = browser.find_elements(By.CSS_SELECTOR, ".criterion-input")[1].find_element(
        By.CSS_SELECTOR, ".c-key"
    )
    key.clear()
    key.send_keys("tone")
    browser.find_element(By.ID, "card-submit").click()
    wait(browser).until(
        EC.presence_of_element_located((By.XPATH, "//section[@class='scorecard']/h2[.='Call opening']"))
    )
    section = browser.find_element(By.XPATH, "//section[@class='scorecard'][h2='Call opening']")
    assert "Greets <b>by name</b>" in section.text and not section.find_elements(By.TAG_NAME, "b")
    rows = [r.text for r in section.find_elements(By.CSS_SELECTOR, ".criterion")]
    assert len(rows) == 2 and rows[1].startswith("tone Tone")
    screenshot(browser, "qa-scorecard-created")
    assert [r["action"] for r in svc.audit_rows("root-admin")].count("qa.scorecards.add") == 2  # API + page


def test_a_reviewer_reviews_their_sample_only(qa_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = qa_console
    login(browser, base, "qa1", PASSWORD, next_path="/qa")
    todo = browser.find_element(By.ID, "qa-todo-table").text
    assert "c-blue-1" in todo and "c-red-1" not in todo and "c-blue-2" not in todo
    screenshot(browser, "qa-reviewer-sample")
    browser.find_element(By.CSS_SELECTOR, "#qa-todo-table .qa-review-link").click()
    form = wait(browser).until(
        EC.presence_of_element_located(
            (By.XPATH, "//section[@class='review-card'][h2[contains(., 'basic')]]//form")
        )
    )
    Select(form.find_element(By.CSS_SELECTOR, '.answer[data-key="greeting"]')).select_by_value("yes")
    Select(form.find_element(By.CSS_SELECTOR, '.answer[data-key="empathy"]')).select_by_value("3")
    form.find_element(By.CSS_SELECTOR, ".comment-text").send_keys("<i>hold</i> too long")
    Select(form.find_element(By.CSS_SELECTOR, ".comment-anchor")).select_by_value("rec:r-c-blue-1")
    position = form.find_element(By.CSS_SELECTOR, ".comment-position")
    position.clear()
    position.send_keys("4")
    form.find_element(By.CSS_SELECTOR, ".review-submit").click()
    review = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#review-list .qa-review")))
    assert review.find_element(By.CSS_SELECTOR, ".score").text == "87.5"
    assert "<i>hold</i> too long" in review.text and not review.find_elements(By.TAG_NAME, "i")
    assert "QA" in browser.find_element(By.ID, "review-marks").text  # the comment's new mark
    screenshot(browser, "qa-review-filled")
    browser.get(f"{base}/qa")
    assert "c-blue-1" in browser.find_element(By.ID, "qa-done-table").text
    browser.get(f"{base}/calls/c-red-1/review")  # not assigned to qa1: like an absent call
    assert browser.find_elements(By.ID, "error-404")
    screenshot(browser, "qa-review-not-assigned")
    denied = [
        r for r in svc.audit_rows("qa1") if r["action"] == "denied:calls.view" and r["target"] == "c-red-1"
    ]
    assert denied and json.loads(denied[0]["detail"])["reason"] == "out_of_scope"

    login(browser, base, "carol", PASSWORD, next_path="/calls/c-blue-1")  # the agent reads their review
    block = browser.find_element(By.ID, "call-reviews")
    assert "87.5" in block.text and "<i>hold</i> too long" in block.text
    screenshot(browser, "qa-agent-reads-review")


def test_bulk_tag_from_a_search_then_search_by_tag(qa_console, browser) -> None:  # type: ignore[no-untyped-def]
    svc, base = qa_console
    login(browser, base, "root-admin", PASSWORD, next_path="/admin/tags")
    browser.find_element(By.ID, "tag-new").send_keys("pricing")
    Select(browser.find_element(By.ID, "tag-new-kind")).select_by_value("topic")
    browser.find_element(By.ID, "tag-new-en").send_keys("Pricing <script>x</script>")
    browser.find_element(By.ID, "tag-new-zh").send_keys("价格")
    browser.find_element(By.ID, "tag-add-submit").click()
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr.tag-row[data-tag="pricing"]')))
    screenshot(browser, "qa-tag-vocabulary")

    login(browser, base, "lead-red", PASSWORD, next_path="/calls?queue=sales")
    Select(browser.find_element(By.ID, "bulk-tag-add")).select_by_value("pricing")
    browser.find_element(By.ID, "bulk-filter").click()
    browser.find_element(By.ID, "bulk-tag-submit").click()
    alert = wait(browser).until(EC.alert_is_present())
    assert alert.text.endswith(" 2")  # the lead's team: c-red-1 and c-red-2
    alert.accept()
    wait(browser).until(lambda d: d.find_element(By.ID, "bulk-status").text.endswith(" 2"))
    screenshot(browser, "qa-bulk-tagged")
    bulk = [r for r in svc.audit_rows("lead-red") if r["action"] == "tags.bulk"]
    assert bulk and json.loads(bulk[0]["detail"])["count"] == 2

    browser.get(f"{base}/calls")
    offered = browser.find_elements(By.CSS_SELECTOR, '#tag-vocabulary option[value="pricing"]')
    assert offered and offered[0].get_attribute("label") == "Pricing <script>x</script>"
    browser.find_element(By.ID, "f-tag").send_keys("pricing")
    browser.find_element(By.ID, "search-submit").click()
    wait(browser).until(EC.url_contains("tag=pricing"))
    ids = {r.get_attribute("data-call-id") for r in browser.find_elements(By.CSS_SELECTOR, "tr.call-row")}
    assert ids == {"c-red-1", "c-red-2"}
    assert browser.find_element(By.ID, "f-tag-label").text == "Pricing <script>x</script>"
    cell = browser.find_element(By.CSS_SELECTOR, 'tr.call-row .tag[data-tag="pricing"]')
    assert cell.text == "Pricing <script>x</script>"  # the label, as text
    screenshot(browser, "qa-search-by-tag")
