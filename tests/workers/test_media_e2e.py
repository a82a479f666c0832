"""End to end: API uploads become ready in a real worker, renditions downloadable by signed URL."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import pytest
import requests
from PIL import Image

from tests.processes import running, settings_env, wait_until, worker_command
from tests.web.uploading import upload
from tests.workers.media.hostile_media import alpha_png, good_jpeg, small_mp4
from tests.workers.media.phone_media import avif, iphone_heic

pytestmark = pytest.mark.e2e


def download(client, url: str) -> Image.Image:
    """A signed URL fetched as a browser would: S3 presigned over HTTP, local through the API's /files/."""
    if url.startswith("/"):
        with client.get(url) as response:
            status, body = response.status_code, response.get_data()
    else:
        response = requests.get(url, timeout=10)
        status, body = response.status_code, response.content
    assert status == 200
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def uploaded_until_finished(client, headers, files: dict, created: Callable[[dict], bool]) -> dict[str, dict]:
    """Upload each (content, filename, type) through the API, checking its 201 body with `created`; each
    asset's body once `ready` or `failed`."""
    ids = {}
    for name, (content, filename, file_type) in files.items():
        response = upload(client, headers, content, filename=filename, file_type=file_type)
        assert response.status_code == 201, response.json
        assert created(response.json), response.json
        ids[name] = response.json["id"]

    def finished(asset_id: str):
        body = client.get(f"/v1/assets/{asset_id}", headers=headers).json
        return body if body["status"] in ("ready", "failed") else None

    return {name: wait_until(lambda i=asset_id: finished(i), timeout=60) for name, asset_id in ids.items()}


def test_uploaded_jpeg_png_and_mp4_become_ready_with_downloadable_webp_renditions(
    broker_app, auth_header, broker_settings, tmp_path
):
    headers = auth_header(f"user_e2e_{uuid.uuid4().hex[:8]}")
    client = broker_app.test_client()
    files = {
        "jpeg": (good_jpeg(2000, 1500), "photo.jpg", "image/jpeg"),
        "png": (alpha_png(800, 600), "alpha.png", "image/png"),
        "mp4": (small_mp4(tmp_path, 2.0, "640x360").read_bytes(), "clip.mp4", "video/mp4"),
    }

    with running(worker_command("images,videos"), settings_env(broker_settings), tmp_path / "worker.log"):
        assets = uploaded_until_finished(
            client, headers, files, created=lambda body: body["status"] in ("pending", "processing")
        )

    assert {name: (body["status"], body["error"]) for name, body in assets.items()} == dict.fromkeys(
        files, ("ready", None)
    )
    jpeg, png, mp4 = assets["jpeg"], assets["png"], assets["mp4"]
    assert (jpeg["width"], jpeg["height"], png["width"], png["height"]) == (2000, 1500, 800, 600)
    assert (mp4["width"], mp4["height"]) == (640, 360)
    assert mp4["duration"] == pytest.approx(2.0, abs=0.2)
    assert (mp4["codec"], mp4["frameRate"]) == ("h264", pytest.approx(10.0))
    assert jpeg["codec"] is None
    assert all(body["placeholder"] for body in assets.values())

    thumbnails = {name: download(client, body["urls"]["thumbnail"]) for name, body in assets.items()}
    assert {name: (image.format, max(image.size)) for name, image in thumbnails.items()} == dict.fromkeys(
        files, ("WEBP", 400)
    )
    assert thumbnails["png"].mode == "RGBA" and thumbnails["png"].getpixel((390, 150))[3] == 0
    assert thumbnails["jpeg"].mode == "RGB"
    preview = download(client, jpeg["urls"]["preview"])
    assert (preview.format, preview.size) == ("WEBP", (1600, 1200))
    assert png["urls"]["preview"] is None
    poster = download(client, mp4["urls"]["poster"])
    assert (poster.format, poster.size) == ("WEBP", (400, 225))


def test_uploaded_iphone_heic_and_avif_become_ready_with_a_downloadable_display_copy(
    broker_app, auth_header, broker_settings, tmp_path
):
    headers = auth_header(f"user_e2e_{uuid.uuid4().hex[:8]}")
    client = broker_app.test_client()
    files = {
        "heic": (iphone_heic(), "IMG_0001.HEIC", "image/heic"),
        "avif": (avif(Image.new("RGB", (2000, 1500), (30, 160, 60))), "render.avif", "image/avif"),
    }

    with running(worker_command("images"), settings_env(broker_settings), tmp_path / "worker.log"):
        assets = uploaded_until_finished(
            client, headers, files, created=lambda body: body["urls"]["display"] is None
        )

    assert {name: (body["status"], body["error"]) for name, body in assets.items()} == dict.fromkeys(
        files, ("ready", None)
    )
    heic, avif_asset = assets["heic"], assets["avif"]
    assert (heic["mimeType"], heic["width"], heic["height"]) == ("image/heic", 1512, 2016)
    assert (avif_asset["mimeType"], avif_asset["width"], avif_asset["height"]) == ("image/avif", 2000, 1500)
    for body in assets.values():
        display = download(client, body["urls"]["display"])
        assert (display.format, display.size) == ("WEBP", (body["width"], body["height"]))
        assert download(client, body["urls"]["thumbnail"]).format == "WEBP"
        assert download(client, body["urls"]["preview"]).format == "WEBP"
        assert body["urls"]["display"] != body["urls"]["original"]
