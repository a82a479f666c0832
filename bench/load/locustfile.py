"""The canvas's traffic, for locust: one simulated user is one open canvas.

Started by `bench/load/run.py` (which starts the stack, mints the tokens and reads the results); it reads
its settings from the environment:

  LOAD_TOKENS        JSON file: a list of dev tokens, one per simulated user (user i takes token i)
  LOAD_EVENTS_URL    the events app (`http://127.0.0.1:PORT`); the API is locust's --host
  LOAD_IMAGES        directory of JPEGs to upload
  LOAD_OUT           where to write the samples and the steps' windows (JSON) at the end
  LOAD_STEP_USERS, LOAD_STEP_SECONDS, LOAD_SETTLE_SECONDS, LOAD_MAX_USERS, LOAD_P99_MS: the ramp

Each user, as the canvas does:
  - on start: lists its projects, opens the first (GET, ETag), trades its token for a ticket on the
    events app and holds the event stream (`GET /v1/events?ticket=`), uploads a first image and saves a
    40-element canvas referencing it with a full `PUT .../state` (If-Match);
  - every second: the incremental autosave, `PATCH /v1/projects/{id}/state` with `If-Match` chained from
    the last `ETag` (an RFC 6902 patch moving one element, as fast-json-patch's `compare` makes it); after
    an upload, that patch also adds the new image to the canvas (an `add`, checked for ownership);
  - every 30 s: uploads an image (`POST /v1/assets`, 1024 x 1024 JPEG) and reads `GET /v1/me/usage`; the
    time from sending the upload to its `asset` event with status `ready` on the stream is the
    time-to-thumbnail;
  - every 60 s: lists its projects, reserves one image generation and gives it back (the generation
    "failed": `POST /v1/me/generations/reserve`, then `/refund`), so quotas never run out.
Phases are spread at random per user so the cluster does not beat in time.

The ramp (`StepRamp`) adds LOAD_STEP_USERS users every LOAD_STEP_SECONDS; each step is measured over its
last (step - settle) seconds. A step whose API p99 passes LOAD_P99_MS or that had an error is measured
once more with the same users (other work on a shared machine comes in bursts); if that one is not held
either, or at LOAD_MAX_USERS, the test stops.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from pathlib import Path

import gevent
from gevent import socket
from locust import LoadTestShape, constant_pacing, events, task
from locust.contrib.fasthttp import FastHttpUser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.load.report import (
    EVENTS_PREFIX,
    TIME_TO_THUMBNAIL,
    Sample,
    Window,
    held,
    summarise_step,
)

ENV = os.environ
TOKENS: list[str] = json.loads(Path(ENV["LOAD_TOKENS"]).read_text()) if "LOAD_TOKENS" in ENV else []
EVENTS_URL = ENV.get("LOAD_EVENTS_URL", "http://127.0.0.1:8001")
IMAGES = sorted(Path(ENV["LOAD_IMAGES"]).glob("*.jpg")) if "LOAD_IMAGES" in ENV else []
STEP_USERS = int(ENV.get("LOAD_STEP_USERS", "10"))
STEP_SECONDS = float(ENV.get("LOAD_STEP_SECONDS", "30"))
SETTLE_SECONDS = float(ENV.get("LOAD_SETTLE_SECONDS", "10"))
MAX_USERS = int(ENV.get("LOAD_MAX_USERS", "200"))
P99_MS = float(ENV.get("LOAD_P99_MS", "250"))
ELEMENTS = 40

SAMPLES: list[Sample] = []
WINDOWS: list[Window] = []
_numbers = itertools.count()
_pictures: list[bytes] = []


@events.request.add_listener
def _record(name, response_time, exception, **_kwargs):
    SAMPLES.append(Sample(time.time(), name, float(response_time), exception is None))


@events.quitting.add_listener
def _write(**_kwargs):
    if "LOAD_OUT" in ENV:
        Path(ENV["LOAD_OUT"]).write_text(
            json.dumps(
                {
                    "samples": [[s.at, s.name, s.ms, s.ok] for s in SAMPLES],
                    "windows": [[w.users, w.start, w.end] for w in WINDOWS],
                }
            )
        )


def element(number: int, asset_id: str) -> dict:
    return {
        "id": f"element-{number:04d}", "type": "image", "zIndex": number, "width": 512, "height": 512,
        "transform": {"x": (number % 8) * 530.0, "y": (number // 8) * 530.0, "scale": 0.5, "rotation": 0},
        "assetId": asset_id, "assetType": "image", "assetSyncedAt": 1_732_000_000_000,
    }  # fmt: skip


class Canvas(FastHttpUser):
    wait_time = constant_pacing(1)

    def on_start(self) -> None:
        self.number = next(_numbers)
        self.auth = {"Authorization": f"Bearer {TOKENS[self.number % len(TOKENS)]}"}
        self.tick = random.randrange(60)  # this user's phase in the 30 s / 60 s cycles
        self.uploaded: dict[str, float] = {}  # asset id -> when its upload was sent
        self.to_add: list[str] = []
        self.elements = ELEMENTS
        self.project = self.open_project()
        self.stream = gevent.spawn(self.hold_stream)
        first = self.upload()
        state = {
            "lastModified": int(time.time() * 1000), "backgroundColor": "#f4f4f5",
            "viewport": {"x": 0, "y": 0, "scale": 1},
            "elements": [element(n, first) for n in range(ELEMENTS)] if first else [],
        }  # fmt: skip
        self.elements = len(state["elements"])
        headers = {**self.auth, "If-Match": self.etag}
        with self.client.put(f"/v1/projects/{self.project}/state", json=state, headers=headers,
                             name="PUT /v1/projects/{id}/state", catch_response=True) as answer:  # fmt: skip
            if answer.status_code == 200:
                self.etag = answer.headers["ETag"]
            else:
                answer.failure(f"{answer.status_code}")

    def on_stop(self) -> None:
        self.stream.kill(block=False)

    def open_project(self) -> str:
        listing = self.client.get("/v1/projects", headers=self.auth, name="GET /v1/projects").json()
        project = listing["items"][0]["id"]
        answer = self.client.get(f"/v1/projects/{project}", headers=self.auth, name="GET /v1/projects/{id}")
        self.etag = answer.headers["ETag"]  # a read's tag counts as its revision in If-Match
        return project

    @task
    def second(self) -> None:
        self.tick += 1
        if self.tick % 30 == 0:
            asset = self.upload()
            if asset:
                self.to_add.append(asset)
            self.client.get("/v1/me/usage", headers=self.auth, name="GET /v1/me/usage")
        if self.tick % 60 == 15:
            self.client.get("/v1/projects?limit=20", headers=self.auth, name="GET /v1/projects")
            self.reserve_and_refund()
        self.autosave()

    def autosave(self) -> None:
        moved = self.tick % max(1, self.elements)
        patch = [
            {"op": "replace", "path": f"/elements/{moved}/transform/x", "value": 10.0 + self.tick % 97},
            {"op": "replace", "path": "/lastModified", "value": int(time.time() * 1000)},
        ]
        for asset in self.to_add:
            patch.append({"op": "add", "path": "/elements/-", "value": element(self.elements, asset)})
            self.elements += 1
        self.to_add = []
        headers = {**self.auth, "If-Match": self.etag, "Content-Type": "application/json-patch+json"}
        with self.client.patch(
            f"/v1/projects/{self.project}/state", data=json.dumps(patch), headers=headers,
            name="PATCH /v1/projects/{id}/state", catch_response=True,
        ) as answer:  # fmt: skip
            if answer.status_code == 200:
                self.etag = answer.headers["ETag"]
            else:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")

    def upload(self) -> str | None:
        picture = IMAGES[self.number % len(IMAGES)] if IMAGES else None
        if picture is None:
            return None
        if not _pictures:
            _pictures.extend(path.read_bytes() for path in IMAGES)
        body = _pictures[self.number % len(_pictures)]
        sent = time.time()
        files = {"file": (picture.name, body, "image/jpeg")}
        with self.client.post(
            "/v1/assets", files=files, headers=self.auth, name="POST /v1/assets", catch_response=True
        ) as answer:
            if answer.status_code != 201:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                return None
            asset = answer.json()["id"]
        self.uploaded[asset] = sent
        return asset

    def reserve_and_refund(self) -> None:
        with self.client.post("/v1/me/generations/reserve", json={"type": "image", "count": 1},
                              headers=self.auth, name="POST /v1/me/generations/reserve",
                              catch_response=True) as answer:  # fmt: skip
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                return
            reservation = answer.json()["reservationId"]
        self.client.post("/v1/me/generations/refund", json={"reservationId": reservation},
                         headers=self.auth, name="POST /v1/me/generations/refund")  # fmt: skip

    def hold_stream(self) -> None:
        """The event stream, held for the whole run on a plain socket (gevent's): ticket, then SSE."""
        started = time.time()
        try:
            name = f"{EVENTS_PREFIX}POST /v1/events/ticket"
            answer = self.client.post(f"{EVENTS_URL}/v1/events/ticket", headers=self.auth, name=name)
            ticket = answer.json()["ticket"]
            host, port = EVENTS_URL.rsplit("/", 1)[1].split(":")
            connection = socket.create_connection((host, int(port)))
            connection.sendall(f"GET /v1/events?ticket={ticket} HTTP/1.1\r\nHost: {host}\r\n"
                               "Accept: text/event-stream\r\n\r\n".encode())  # fmt: skip
            reader = connection.makefile("rb")
            status = reader.readline()
            if b" 200 " not in status:
                raise ConnectionError(status.decode(errors="replace").strip())
            self._fire(f"{EVENTS_PREFIX}GET /v1/events (opened)", 1000 * (time.time() - started), None)
            kind = ""
            for raw in reader:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "asset":
                    self.heard_asset(json.loads(line[5:]))
        except (OSError, ValueError, KeyError) as error:
            self._fire(f"{EVENTS_PREFIX}GET /v1/events (opened)", 1000 * (time.time() - started), error)

    def heard_asset(self, asset: dict) -> None:
        if asset.get("status") == "ready" and asset.get("id") in self.uploaded:
            sent = self.uploaded.pop(asset["id"])
            self._fire(TIME_TO_THUMBNAIL, 1000 * (time.time() - sent), None)

    def _fire(self, name: str, ms: float, exception: Exception | None) -> None:
        events.request.fire(request_type="EVENT", name=name, response_time=ms, response_length=0,
                            exception=exception, context={})  # fmt: skip


class StepRamp(LoadTestShape):
    """STEP_USERS more users every STEP_SECONDS, until a step is not held or MAX_USERS is reached."""

    def __init__(self) -> None:
        super().__init__()
        self.step = 0
        self.step_started = 0.0
        self.again = False  # the step now running repeats one that was not held
        self.done = False

    def tick(self):
        if self.done:
            return None
        now = self.get_run_time()
        if self.step == 0 or now - self.step_started >= STEP_SECONDS:
            if self.step > 0 and not self._close_step():
                if self.again:
                    self.done = True
                    return None
                self.again = True  # measured once more before the ramp ends: a burst is not saturation
                self.step_started = now
                return self.step * STEP_USERS, max(1.0, STEP_USERS / 2)
            self.again = False
            if (self.step + 1) * STEP_USERS > MAX_USERS:
                self.done = True
                return None
            self.step += 1
            self.step_started = now
        users = self.step * STEP_USERS
        return users, max(1.0, STEP_USERS / 2)

    def _close_step(self) -> bool:
        """Record the finished step's window; True when it was held (the ramp goes on)."""
        end = time.time()
        window = Window(self.step * STEP_USERS, end - (STEP_SECONDS - SETTLE_SECONDS), end)
        WINDOWS.append(window)
        step = summarise_step(SAMPLES, window)
        api = step.api
        print(f"step {window.users} users: {api.per_second:.1f} req/s, p50 {api.p50:.0f} ms, "
              f"p99 {api.p99:.0f} ms, {api.errors} errors", file=sys.stderr, flush=True)  # fmt: skip
        return held(step, P99_MS)
