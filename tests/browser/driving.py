"""Driving the console in a real browser: Debian's chromium through Selenium (headless), the
console served by uvicorn on a free port of 127.0.0.1, logins and screenshots.  Used by
``tests/browser`` (through its conftest) and by the real-Asterisk console test in ``tests/real``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
WAIT_S = 30.0  # generous: the CPU is shared on a developer machine


def make_driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S * 2)
    return driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                          lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)


_BETWEEN_PAGES = ("aborted by navigation", "does not belong to the document")


class _PageWait(WebDriverWait[webdriver.Chrome]):
    """A wait that reads chromedriver's between-pages answers as "not yet".  A page that reloads
    itself (the reports page after saving a schedule, a form's redirect) can make a lookup issued
    meanwhile fail with "aborted by navigation: Inspected target navigated or closed" (seen once
    in CI on chromium 156) instead of finding nothing; Selenium's own wait ignores only
    ``NoSuchElementException``.  Any other error still ends the wait, and a condition that never
    comes true still times out."""

    def until(self, method: Any, message: str = "") -> Any:
        def tolerant(driver: webdriver.Chrome) -> Any:
            try:
                return method(driver)
            except WebDriverException as exc:
                if any(words in str(exc) for words in _BETWEEN_PAGES):
                    return False
                raise

        return super().until(tolerant, message)


def wait(driver: webdriver.Chrome, timeout: float = WAIT_S) -> WebDriverWait[webdriver.Chrome]:
    return _PageWait(driver, timeout)


def gone(element: WebElement) -> Any:
    """A wait condition: ``element``'s page has been replaced.  Selenium's ``staleness_of`` only
    knows ``StaleElementReferenceException``; while the old document is being torn down chromedriver
    can answer "Node with given id does not belong to the document" instead (seen once in CI on
    chromium 156), which means the same thing."""

    def replaced(_driver: Any) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return replaced


def submit_and_wait(driver: webdriver.Chrome, button_id: str, loaded_id: str) -> None:
    """Click a form's submit button and wait for the NEXT page's ``loaded_id``: the old page may
    have the same element, so first wait until the old button is gone (else the test would read
    the old page's elements and find them stale a moment later)."""
    button = driver.find_element(By.ID, button_id)
    button.click()
    wait(driver).until(gone(button))
    wait(driver).until(EC.presence_of_element_located((By.ID, loaded_id)))


_FINISHED_EXPORT = """
const row = document.querySelector("tr[data-state='done']");
const link = row && row.querySelector('.job-download');
const bar = row && row.querySelector('.job-progress');
return link && bar ? [link.href, bar.getAttribute('value') || String(bar.value)] : null;
"""


def finished_export(driver: webdriver.Chrome, timeout: float = 120) -> tuple[str, str]:
    """The first finished export job's download address and progress value, read in one script
    (the jobs table is re-rendered while any job runs, so elements found earlier go stale)."""
    href, progress = WebDriverWait(driver, timeout).until(lambda d: d.execute_script(_FINISHED_EXPORT))
    return str(href), str(progress)


def login(driver: webdriver.Chrome, base: str, name: str, password: str, next_path: str = "/calls") -> None:
    """Log in through the login page (as a user would) and wait for ``next_path`` to load."""
    driver.get(f"{base}/login")
    driver.delete_all_cookies()  # cookies are per host, not per port: forget other consoles' sessions
    driver.get(f"{base}{next_path}")
    wait(driver).until(EC.presence_of_element_located((By.ID, "login-form")))
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver).until(EC.presence_of_element_located((By.ID, "who-name")))


def screenshot(driver: webdriver.Chrome, name: str, full: bool = False) -> Path:
    """``test-artifacts/screenshots/<name>.png``: the window, or (``full``) the whole page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not full:
        driver.save_screenshot(str(path))
        return path
    size = driver.get_window_size()
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(size["width"], min(max(height + 150, size["height"]), 8000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path


def row_ids(driver: webdriver.Chrome) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.call-row")
    return [r.get_attribute("data-call-id") or "" for r in rows]
