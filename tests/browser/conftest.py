"""Browser tests keep a screenshot of the page when they fail: `.artifacts/browser/<test>.png`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser.uppy import ROOT

ARTIFACTS = ROOT / ".artifacts" / "browser"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if report.when == "call" and report.failed:
        for number, page in enumerate(getattr(item, "browser_pages", []), 1):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', item.name)}-{number}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                report.sections.append(("browser screenshot", f"saved to {path}"))
            except Exception as error:  # a crashed page has nothing to show; the failure itself is kept
                report.sections.append(("browser screenshot", f"none: {error}"))
    return report
