"""The console in a real headless Chromium against the running stack (API, worker, event stream).

Everything the page shows after sign-in arrives through the public API and the event stream: the test
never reloads the page, and the page never polls. `ISKRA_CONSOLE_SCREENSHOT=1` also writes the README's
screenshot, docs/console.png, from the signed-in page.
"""

from __future__ import annotations

import os
import uuid

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import delete, func, select

from models.tables import Asset, PendingDeletion, Project, User
from tests.browser.stack import running_stack
from tests.browser.uppy import ROOT, launched_chromium
from tests.workers.media.hostile_media import good_jpeg, small_mp4
from web.auth import make_dev_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCREENSHOT = ROOT / "docs" / "console.png"
# Thumbnails take a worker's turn; generous, and never a measure of speed.
SLOW = 60_000


@pytest.fixture(scope="module")
def stack(settings, engine, tmp_path_factory):
    with engine.connect() as connection:
        outbox_before = connection.scalar(select(func.coalesce(func.max(PendingDeletion.id), 0)))
    # Project thumbnails render soon after a save, so the list shows one.
    quick = settings.model_copy(update={"project_thumbnail_debounce_seconds": 0.5})
    logs = tmp_path_factory.mktemp("console-stack")
    with running_stack(quick, logs, events=True, queues="images,videos,renders") as running:
        yield running
    with engine.begin() as connection:
        for table in (Project, Asset, User):
            connection.execute(delete(table).where(table.user_id.like("user_console_%")))
        # What the deletes and re-rendered thumbnails queued for removal: this stack runs no maintenance
        # worker, and the suite's other tests expect an empty outbox.
        connection.execute(delete(PendingDeletion).where(PendingDeletion.id > outbox_before))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    directory = tmp_path_factory.mktemp("console-media")
    files = {
        "fox.jpg": good_jpeg(1200, 800),
        "tower.jpg": good_jpeg(600, 900),
        "clip.mp4": small_mp4(directory, 2.0, "320x240").read_bytes(),
        "notes.txt": b"not a picture\n",
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


@pytest.fixture(scope="module")
def chromium():
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def open_page(chromium, request):
    """New pages of a fresh browser context; each is screenshotted into .artifacts/ if the test fails."""
    contexts = []

    def opened(width: int = 1280, height: int = 900):
        context = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        # A CSP violation, a failed load or an uncaught error shows up here.
        page.complaints = []
        page.on("console", lambda m: page.complaints.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: page.complaints.append(str(error)))
        page.set_default_timeout(SLOW)
        expect.set_options(timeout=SLOW)
        request.node.browser_pages = [*getattr(request.node, "browser_pages", []), page]
        return page

    yield opened
    for context in contexts:
        context.close()


def user_id() -> str:
    return f"user_console_{uuid.uuid4().hex[:10]}"


def used_bytes(page) -> int:
    return int(page.get_attribute("#storage-bar", "data-used-bytes") or 0)


def test_a_person_signs_in_uploads_watches_thumbnails_arrive_deletes_and_opens_a_project(
    stack, media, open_page
):
    page = open_page()
    page.goto(f"{stack.api}/console/")
    person = user_id()

    # Development mode: the button asks the dev-only endpoint for a token.
    page.fill("#dev-user", person)
    page.click("#dev-sign-in")
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_selector("#live-state[data-state=live]")
    assert page.inner_text("#who-name") == person
    assert used_bytes(page) == 0
    page.evaluate("() => { window.sameDocument = true; }")  # gone if anything reloads the page

    page.set_input_files("#file-input", [media / "fox.jpg", media / "tower.jpg", media / "clip.mp4"])

    page.wait_for_function("() => document.querySelectorAll('.upload[data-state=done]').length === 3")
    ready = ".asset[data-status=ready] img.thumbnail.loaded"
    page.wait_for_function(f"() => document.querySelectorAll('{ready}').length === 3")
    sizes = sum((media / name).stat().st_size for name in ("fox.jpg", "tower.jpg", "clip.mp4"))
    page.wait_for_function(f"() => document.querySelector('#storage-bar').dataset.usedBytes === '{sizes}'")
    assert page.evaluate("() => window.sameDocument") is True
    video = page.locator(".asset[data-type=video]")
    assert video.locator(".badge").inner_text() == "▶ 0:02"
    shown = page.eval_on_selector_all(".asset", "cards => cards.map(c => c.dataset.assetId)")
    created = {asset["id"]: asset["createdAt"] for asset in api_get(stack, person, "/v1/assets")["items"]}
    assert sorted(shown) == sorted(created)
    assert [created[i] for i in shown] == sorted(created.values(), reverse=True)  # newest first

    # A refusal is shown from the problem+json body, the other uploads untouched.
    page.set_input_files("#file-input", [media / "notes.txt"])
    refused = page.locator(".upload[data-state=refused] .upload-status")
    expect(refused).to_contain_text("Unsupported type: text/plain is not accepted")

    # Delete one: its card goes, and the usage bar follows through the event stream.
    tower_size = (media / "tower.jpg").stat().st_size
    tower = page.locator(".asset", has_text="600\N{MULTIPLICATION SIGN}900")
    tower.get_by_role("button", name="Delete").click()
    page.wait_for_function(
        f"() => document.querySelector('#storage-bar').dataset.usedBytes === '{sizes - tower_size}'"
    )
    assert page.locator(".asset").count() == 2

    # A project saved elsewhere (through the API) appears live, then opens laid out from its thumbnails.
    kept = page.eval_on_selector_all(".asset", "cards => cards.map(c => [c.dataset.assetId, c.dataset.type])")
    project_id = save_project(stack, person, kept)
    card = page.locator(f".project[data-project-id='{project_id}']")
    card.wait_for()
    expect(card).to_contain_text("1 image · 1 video")  # once the save's event has re-read the list
    card.locator("img.thumbnail").wait_for()  # rendered after the save, announced by the stream
    card.get_by_role("button", name="Open").click()
    page.locator("#project-view").wait_for(state="visible")
    expect(page.locator("#project-view-title")).to_have_text("Storyboard")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#project-canvas .element img')]"
        ".filter(i => i.complete && i.naturalWidth).length === 2"
    )
    page.keyboard.press("Escape")
    page.locator("#project-view").wait_for(state="hidden")
    # The refused upload is the one failed request; nothing else failed, was blocked or threw.
    assert [c for c in page.complaints if "415" not in c] == [], page.complaints
    if os.environ.get("ISKRA_CONSOLE_SCREENSHOT"):
        page.screenshot(path=str(SCREENSHOT))


def bearer(stack, person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_dev_token(stack.settings, person)}"}


def api_get(stack, person: str, path: str) -> dict:
    answer = requests.get(f"{stack.api}{path}", headers=bearer(stack, person), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def save_project(stack, person: str, assets: list[list[str]]) -> str:
    auth = bearer(stack, person)
    created = requests.post(f"{stack.api}/v1/projects", json={"name": "Storyboard"}, headers=auth, timeout=10)
    assert created.status_code == 201, created.text
    elements = [
        {"id": f"e{index}", "type": kind, "assetId": asset_id, "assetType": kind, "zIndex": index,
         "width": 400, "height": 300,
         "transform": {"x": index * 420, "y": index * 60, "scale": 1, "rotation": 0}}
        for index, (asset_id, kind) in enumerate(assets)
    ]  # fmt: skip
    state = {"lastModified": 1_700_000_000_000, "elements": elements}
    saved = requests.put(
        f"{stack.api}/v1/projects/{created.json()['id']}/state", json=state, headers=auth, timeout=10
    )
    assert saved.status_code == 200, saved.text
    return created.json()["id"]


def test_a_token_in_the_address_signs_in_and_leaves_the_address_bar_at_phone_width(stack, open_page):
    page = open_page(width=390, height=844)
    token = make_dev_token(stack.settings, user_id())

    page.goto(f"{stack.api}/console/#token={token}")

    page.wait_for_selector("#app:not([hidden])")
    assert page.url == f"{stack.api}/console/"
    assert token not in page.evaluate("() => location.href + JSON.stringify(history.state)")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing sideways on a phone
    page.locator("#project-list .project").first.wait_for()  # every user starts with `Project 01`


def test_a_pasted_token_signs_in_and_a_bad_one_is_refused_with_the_reason(stack, open_page):
    page = open_page()
    # Playwright turns file-chooser interception on with its first listener, without waiting for it:
    # one added now is in place long before the key press that opens the chooser.
    page.on("filechooser", lambda _chooser: None)
    page.goto(f"{stack.api}/console/")

    page.fill("#token-input", "not-a-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#sign-in-error")).to_contain_text("well-formed")

    # By keyboard: from the token field, Tab reaches the button and Enter presses it.
    page.fill("#token-input", make_dev_token(stack.settings, user_id()))
    page.focus("#token-input")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#app:not([hidden])")
    assert page.evaluate("() => document.activeElement.id") == "choose-files"  # where work starts
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()
    assert page.complaints == [
        "Failed to load resource: the server responded with a status of 401 (UNAUTHORIZED)"
    ]
