"""Debian's headless Chromium through selenium, for the tests that check a page in a browser.

``make test`` installs ``chromium`` and ``chromium-driver`` (as root, ``make system-deps``)
and selenium (the ``test`` extra). Missing, the test fails under ``CI=true`` and skips
elsewhere, saying what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require_browser() -> None:
    """Fail under CI=true (``make test`` installs them), skip elsewhere, with the reason."""
    missing = [
        f"{path} (Debian package {package})"
        for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver"))
        if not path.exists()
    ]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        reason = f"the browser test needs {', '.join(missing)}; `make test` installs them as root"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def headless_chromium() -> Iterator[WebDriver]:
    """A headless Chromium session (``require_browser`` first), quit at the end."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
