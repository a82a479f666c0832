"""Stock @uppy/aws-s3 6 and 5 in a real headless Chromium, on a page of another origin, against the stack.

Uppy 6 is given only the session's `companionEndpoint`; Uppy 5 the Bearer endpoint and its `headers`.
Nothing in the page wraps Uppy's requests: what passes here is what a browser does with the stock clients.
"""

from __future__ import annotations

import re
import shutil
import uuid

import pytest
import requests
from sqlalchemy import delete

from models.storage.s3 import S3Storage
from models.tables import Asset, User
from tests.browser.stack import running_stack, serving_page
from tests.browser.uppy import VERSIONS, bundle, launched_chromium
from tests.processes import wait_until
from tests.workers.media.hostile_media import good_jpeg, small_mp4
from web.auth import make_dev_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
MIB = 1024 * 1024

UPLOAD = """async ({kit, options, files, stall}) => {
  const {Uppy, AwsS3} = window[kit];
  const uppy = new Uppy({autoProceed: false}).use(AwsS3, {...options, shouldUseMultipart: true});
  window.uppy = uppy;
  for (const f of files) {
    const data = await (await fetch(f.path)).blob();
    uppy.addFile({name: f.name, type: f.type, data, meta: {size: data.size, prompt: 'from ' + kit}});
  }
  const result = await uppy.upload();
  return summary(result);
}"""
RETRY = "async (fileId) => summary(await window.uppy.retryUpload(fileId))"
SUMMARY = """() => { window.summary = (result) => ({
  successful: result.successful.map(f => ({name: f.name, location: f.response.uploadURL})),
  failed: result.failed.map(f => ({id: f.id, name: f.name, error: String(f.error)})),
}) }"""


def padded_jpeg(size: int) -> bytes:
    """A real 1600x1200 JPEG followed by zeros to `size` bytes (decoders stop at its end marker)."""
    head = good_jpeg(1600, 1200)
    return head + bytes(size - len(head))


def padded_mp4(directory, size: int) -> bytes:
    """A real two-second MP4 with a top-level `free` box that brings it to `size` bytes."""
    clip = small_mp4(directory, 2.0, "640x360").read_bytes()
    padding = size - len(clip)
    return clip + padding.to_bytes(4, "big") + b"free" + bytes(padding - 8)


@pytest.fixture(scope="module")
def page_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("uppy-page")
    for version in VERSIONS:
        shutil.copyfile(bundle(version), directory / f"{version}.js")
    (directory / "photo.jpg").write_bytes(padded_jpeg(6 * MIB))
    (directory / "clip.mp4").write_bytes(padded_mp4(directory, 12 * MIB))
    return directory


@pytest.fixture(params=["local", "s3"])
def stack_settings(request, settings):
    return request.getfixturevalue("s3_settings") if request.param == "s3" else settings


@pytest.fixture
def browser():
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def stack(page_dir, stack_settings, tmp_path, engine):
    with serving_page(page_dir) as origin:
        chosen = stack_settings.model_copy(update={"cors_allowed_origins": (origin,)})
        if chosen.storage_backend == "s3":
            S3Storage.from_settings(chosen).ensure_bucket((origin,))
        with running_stack(chosen, tmp_path) as running:
            yield running, origin
    with engine.begin() as connection:
        connection.execute(delete(Asset).where(Asset.user_id.like("user_uppy_%")))
        connection.execute(delete(User).where(User.user_id.like("user_uppy_%")))


def finished(stack, token: str, location: str):
    body = requests.get(location, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    return body if body["status"] in ("ready", "failed") else None


def open_page(browser, origin: str):
    page = browser.new_page()
    page.goto(f"{origin}/index.html")
    page.evaluate(SUMMARY)
    return page


def options_for(kit: str, api: str, token: str) -> dict:
    if kit == "Uppy6":
        opened = requests.post(
            f"{api}/v1/uploads/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert opened.status_code == 201, opened.text
        return {"companionEndpoint": opened.json()["companionEndpoint"]}
    return {"endpoint": f"{api}/v1/uploads", "headers": {"Authorization": f"Bearer {token}"}}


FILES = [
    {"path": "/photo.jpg", "name": "photo.jpg", "type": "image/jpeg"},
    {"path": "/clip.mp4", "name": "clip.mp4", "type": "video/mp4"},
]


@pytest.mark.parametrize("kit", ["Uppy6", "Uppy5"])
def test_stock_uppy_uploads_an_image_and_a_video_straight_to_storage_and_both_become_ready(
    browser, stack, kit
):
    running, origin = stack
    token = make_dev_token(running.settings, f"user_uppy_{uuid.uuid4().hex[:8]}")
    page = open_page(browser, origin)
    puts = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)

    result = page.evaluate(
        UPLOAD, {"kit": kit, "options": options_for(kit, running.api, token), "files": FILES}
    )

    assert result["failed"] == [] and len(result["successful"]) == 2, result
    assert len(puts) == 2 + 3  # 6 MiB in two parts, 12 MiB in three
    for uploaded in result["successful"]:
        assert uploaded["location"].startswith(f"{running.api}/v1/assets/")
    assets = [
        wait_until(lambda u=u: finished(running, token, u["location"]), timeout=120)
        for u in result["successful"]
    ]
    assert [(a["type"], a["status"], a["error"]) for a in assets] == [
        ("image", "ready", None),
        ("video", "ready", None),
    ]
    assert (assets[0]["sizeBytes"], assets[1]["sizeBytes"]) == (6 * MIB, 12 * MIB)
    assert (assets[0]["width"], assets[1]["width"]) == (1600, 640)
    assert assets[0]["metadata"]["prompt"] == f"from {kit}"


def test_a_stalled_uppy_6_upload_resumes_from_its_listed_parts(browser, stack):
    running, origin = stack
    token = make_dev_token(running.settings, f"user_uppy_{uuid.uuid4().hex[:8]}")
    page = open_page(browser, origin)
    seen = []
    page.on("request", lambda r: seen.append((r.method, r.url)))
    # The connection drops whenever part 2 is asked for: the upload stalls after its first part.
    stall = re.compile(r"/s3/multipart/[^/?]+/2\?")
    page.route(stall, lambda route: route.abort("connectionreset"))
    video = [FILES[1]]

    stalled = page.evaluate(UPLOAD, {"kit": "Uppy6", "options": options_for("Uppy6", running.api, token),
                                     "files": video})  # fmt: skip
    assert stalled["successful"] == [] and len(stalled["failed"]) == 1, stalled
    page.unroute(stall)
    resumed = page.evaluate(RETRY, stalled["failed"][0]["id"])

    assert resumed["failed"] == [] and len(resumed["successful"]) == 1, resumed
    signed = [
        url for method, url in seen if method == "GET" and re.search(r"/s3/multipart/[^/?]+/\d+\?", url)
    ]
    listed = [url for method, url in seen if method == "GET" and re.search(r"/s3/multipart/[^/?]+\?", url)]
    assert len(listed) == 1  # the resume asked which parts were there ...
    assert sum("/1?" in url for url in signed) == 1  # ... and did not send the first one again
    asset = wait_until(lambda: finished(running, token, resumed["successful"][0]["location"]), timeout=120)
    assert (asset["status"], asset["sizeBytes"]) == ("ready", 12 * MIB)
