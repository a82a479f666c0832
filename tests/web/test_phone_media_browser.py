"""Phone media in a real headless Chromium: an iPhone-style HEIC and an AVIF become `ready` through the API,
and the browser renders each one's `urls.display` at the size the asset reports."""

from __future__ import annotations

import uuid

import pytest
import requests
from PIL import Image
from sqlalchemy import delete

from models.tables import Asset, User
from tests.browser.stack import running_stack
from tests.browser.uppy import chromium_path
from tests.processes import wait_until
from tests.workers.media.phone_media import avif, iphone_heic
from web.auth import make_dev_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
USER_PREFIX = "user_phone_browser_"
# Renders the display URL as a browser page would show it in an <img>, and reports what it decoded.
RENDER = """async (src) => {
  const img = new Image();
  img.src = src;
  await img.decode();
  return {width: img.naturalWidth, height: img.naturalHeight};
}"""


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def stack(settings, tmp_path, engine):
    with running_stack(settings, tmp_path) as running:
        yield running
    with engine.begin() as connection:
        connection.execute(delete(Asset).where(Asset.user_id.like(f"{USER_PREFIX}%")))
        connection.execute(delete(User).where(User.user_id.like(f"{USER_PREFIX}%")))


def ready(api: str, token: str, asset_id: str) -> dict | None:
    body = requests.get(
        f"{api}/v1/assets/{asset_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    found = body.json()
    return found if found["status"] in ("ready", "failed") else None


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.heic", lambda: iphone_heic()),
        ("photo.avif", lambda: avif(Image.new("RGB", (640, 480), (40, 120, 200)))),
    ],
)
def test_a_phone_photo_becomes_ready_and_chromium_renders_its_display_copy(browser, stack, name, data):
    token = make_dev_token(stack.settings, f"{USER_PREFIX}{uuid.uuid4().hex[:8]}")
    uploaded = requests.post(
        f"{stack.api}/v1/assets",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": (name, data())},
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text

    asset = wait_until(lambda: ready(stack.api, token, uploaded.json()["id"]), timeout=120)

    assert asset["status"] == "ready", asset
    assert asset["urls"]["thumbnail"] and asset["urls"]["display"] != asset["urls"]["original"]
    page = browser.new_page()
    page.goto(f"{stack.api}/livez")
    rendered = page.evaluate(RENDER, f"{stack.api}{asset['urls']['display']}")
    assert (rendered["width"], rendered["height"]) == (asset["width"], asset["height"])
