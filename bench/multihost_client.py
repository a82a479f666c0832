"""The upload client of bench/multihost.py, run on the API host: uploads, waits, checks what it got."""

from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
import requests
from PIL import Image

from core.settings import Settings
from web.auth import make_dev_token

API = "http://127.0.0.1:8000"
EVENTS = "http://127.0.0.1:8001"
TIMEOUT_SECONDS = 600


def photo(seed: int) -> bytes:
    """A 2400 x 1800 photo-like JPEG (smooth field and grain): a few hundred ms of thumbnail work."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:1800, 0:2400]
    base = np.stack([(x / 10 + seed) % 256, (y / 8) % 256, ((x + y) / 16) % 256], axis=2)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def database(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(
        settings.database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )


class Streams:
    """One event stream per user, held from before the first upload: the assets each heard become ready."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.ready: set[str] = set()
        self.opened = threading.Barrier(len(tokens) + 1, timeout=60)
        self._lock = threading.Lock()
        for token in tokens.values():
            threading.Thread(target=self._hold, args=(token,), daemon=True).start()
        self.opened.wait()

    def _hold(self, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with requests.get(f"{EVENTS}/v1/events", headers=headers, stream=True, timeout=(10, 600)) as stream:
            stream.raise_for_status()
            self.opened.wait()
            kind = ""
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "asset":
                    asset = json.loads(line[5:])
                    if asset.get("status") == "ready":
                        with self._lock:
                            self.ready.add(asset["id"])

    def heard(self, ids: list[str]) -> int:
        with self._lock:
            return len(self.ready.intersection(ids))


def run_client(uploads: int, users: int) -> int:
    settings = Settings()
    tokens = {f"user_mh_{n}": make_dev_token(settings, f"user_mh_{n}") for n in range(users)}
    originals = [photo(seed) for seed in range(8)]
    owners = list(tokens)
    readyz = requests.get(f"{API}/readyz", timeout=30)  # database, Redis, broker and S3, seen from here
    print(f"api /readyz: {readyz.status_code} {readyz.text.strip()}", flush=True)
    streams = Streams(tokens)

    def upload(number: int) -> str:
        user = owners[number % users]
        files = {"file": (f"photo-{number}.jpg", originals[number % len(originals)], "image/jpeg")}
        response = requests.post(f"{API}/v1/assets", files=files,
                                 headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=60)  # fmt: skip
        response.raise_for_status()
        return response.json()["id"]

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(upload, range(uploads)))
    print(f"uploaded {len(ids)} images in {time.monotonic() - started:.1f} s", flush=True)

    with database(settings) as connection:
        while time.monotonic() - started < TIMEOUT_SECONDS:
            counts = dict.fromkeys(("pending", "processing", "ready", "failed"), 0)
            counts.update(
                dict(connection.execute("SELECT status, count(*) FROM assets GROUP BY status").fetchall())
            )
            print("progress " + " ".join(f"{status}={count}" for status, count in counts.items()), flush=True)
            if counts["ready"] + counts["failed"] >= uploads:
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        attempts = dict(
            connection.execute("SELECT attempts, count(*) FROM assets GROUP BY attempts").fetchall()
        )
        charges = connection.execute(
            "SELECT u.user_id, u.storage_used_bytes, coalesce(sum(a.size_bytes), 0) FROM users u"
            " LEFT JOIN assets a ON a.user_id = u.user_id GROUP BY u.user_id, u.storage_used_bytes"
        ).fetchall()

    heard_by = time.monotonic() + 10  # the last events are a relay, an XADD and an XREAD away
    while streams.heard(ids) < uploads and time.monotonic() < heard_by:
        time.sleep(0.2)
    statuses, thumbnails = {}, 0
    for number, asset_id in enumerate(ids):
        headers = {"Authorization": f"Bearer {tokens[owners[number % users]]}"}
        body = requests.get(f"{API}/v1/assets/{asset_id}", headers=headers, timeout=30).json()
        statuses[body["status"]] = statuses.get(body["status"], 0) + 1
        if body["status"] == "ready":
            picture = requests.get(body["urls"]["thumbnail"], timeout=30)
            if picture.ok and Image.open(io.BytesIO(picture.content)).format == "WEBP":
                thumbnails += 1
    wrong_charges = [user for user, charged, stored in charges if charged != stored]
    summary = {
        "api_readyz": readyz.status_code,
        "uploads": uploads,
        "statuses_via_api": statuses,
        "thumbnails_downloaded_from_s3": thumbnails,
        "ready_events_heard_on_the_streams": streams.heard(ids),
        "assets_by_attempts": {str(key): value for key, value in sorted(attempts.items())},
        "users_whose_charge_differs_from_their_assets": wrong_charges,
        "seconds_from_first_upload_to_all_finished": round(elapsed, 1),
    }
    print("summary " + json.dumps(summary), flush=True)
    ok = statuses == {"ready": uploads} and thumbnails == uploads and not wrong_charges
    ok = ok and streams.heard(ids) == uploads and readyz.status_code == 200
    print("RESULT " + ("PASS" if ok else "FAIL"), flush=True)
    return 0 if ok else 1
