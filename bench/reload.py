"""Canvas reload benchmark: what a browser downloads to show a 1,000-element project again.

One user, one project of 1,000 image elements, each pointing at an asset of its own with a real 400 px
WebP thumbnail (made by the image task's code from generated photo-like pictures), on local storage.
A simulated browser loads the canvas the way the frontend does: `GET /v1/projects/{id}` (with
`If-None-Match` once it holds an ETag), then every thumbnail URL in `assetThumbnails`, from its HTTP
cache when it holds that exact URL still fresh (max-age), over the network otherwise.

Contenders, on the same data in the same run:
- **stable**: the API as it is: links dated at the start of the clock hour, ETag of the body, 304s;
- **changing**: a bench-only twin of the API before, links dated by the clock (a new URL every second)
  and a project read that always answers 200 (its ETag was the revision alone and had no 304).

The clock is simulated (the process's `time.time`), so a session of page loads over two hours runs in
seconds: loads at +5 min (cold cache), +15 min (a reload within the hour), then every 10 minutes.

    .venv/bin/python bench/reload.py [--elements 1000] [--minutes 120] [--every 10]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from thumbnails import photo  # noqa: E402

from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from models.renditions import WEBP  # noqa: E402
from models.storage.keys import rendition_key  # noqa: E402
from models.tables import Asset, Project  # noqa: E402
from models.users import ensure_user  # noqa: E402
from web.app import create_app  # noqa: E402
from web.auth import make_dev_token  # noqa: E402
from web.services import Services  # noqa: E402
from workers.media.images import make_thumbnail  # noqa: E402
from workers.media.limits import MediaLimits  # noqa: E402
from workers.media.sniff import sniff  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN = uuid.uuid4().hex[:8]
DISTINCT_PICTURES = 40
USER = "user_bench_reload"


class SimulatedClock:
    """The process's wall clock, moved by the benchmark instead of by time."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class ChangingLinks(Services):
    """The API before: every link dated by the clock, so each signing makes a new URL."""

    def signed_url(self, key: str | None, content_type: str) -> str | None:
        if key is None:
            return None
        return self.storage.url(
            key, expires_in=self.settings.signed_url_ttl_seconds, content_type=content_type
        )


@dataclass
class Browser:
    """An HTTP cache keyed by URL (fresh while max-age lasts) plus the ETag of the last project read."""

    cache: dict[str, float] = field(default_factory=dict)
    etag: str | None = None
    shown: dict[str, str] = field(default_factory=dict)


@dataclass
class Load:
    minute: int
    requests: int = 0
    bytes: int = 0
    thumbnails_fetched: int = 0
    project_status: int = 0
    project_ms: float = 0.0
    project_bytes: int = 0


@contextmanager
def temporary_database():
    name = f"iskra_bench_{RUN}"
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = SERVER_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        url = f"{base}/{name}"
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None, database_url=database_url, ISKRA_DATA_DIR=data_dir, auth_mode="dev",
        dev_jwt_secret="bench-secret-long-enough-for-hs256-signing",
        signing_secret="bench-signing-secret-long-enough", log_level="WARNING",
    )  # fmt: skip


def thumbnails() -> list[bytes]:
    """Real 400 px WebP thumbnails of photo-like pictures, as the image task makes them."""
    made = []
    for seed in range(DISTINCT_PICTURES):
        jpeg = io.BytesIO()
        photo(1600, 1200, seed=seed).save(jpeg, "JPEG", quality=90)
        made.append(make_thumbnail(io.BytesIO(jpeg.getvalue()), sniff(jpeg.getvalue()[:1024]), MediaLimits()))
    return made


def make_project(settings: Settings, elements: int) -> str:
    """The user's project of `elements` image elements, each with an asset and a stored thumbnail."""
    storage = create_app(settings).extensions["iskra"].storage
    pictures = thumbnails()
    asset_ids = [uuid.uuid4() for _ in range(elements)]
    for n, asset_id in enumerate(asset_ids):
        storage.put(
            rendition_key(asset_id, "thumbnail"), io.BytesIO(pictures[n % len(pictures)]), content_type=WEBP
        )
    state = {"lastModified": 1_732_000_000_000, "elements": [
        {"id": f"element-{n:04d}", "type": "image", "zIndex": n, "width": 512, "height": 384,
         "transform": {"x": (n % 40) * 530.0, "y": (n // 40) * 400.0, "scale": 0.75, "rotation": 0},
         "assetId": str(asset_id), "assetType": "image"} for n, asset_id in enumerate(asset_ids)
    ]}  # fmt: skip
    engine = create_engine(settings.database_url)
    with engine.begin() as connection:
        session = Session(bind=connection)
        ensure_user(session, USER)
        session.flush()
        session.execute(insert(Asset), [
            {"id": asset_id, "user_id": USER, "type": "image", "storage_key": f"originals/b/{asset_id}.jpg",
             "mime_type": "image/jpeg", "size_bytes": 1, "status": "ready",
             "thumbnail_key": rendition_key(asset_id, "thumbnail")} for asset_id in asset_ids
        ])  # fmt: skip
        project_id = session.execute(
            text("SELECT id FROM projects WHERE user_id = :u"), {"u": USER}
        ).scalar_one()
        session.execute(
            update(Project).where(Project.id == project_id).values(canvas_state=state, revision=1)
        )
        session.flush()
    engine.dispose()
    return str(project_id)


def received(response) -> int:
    """Bytes on the wire for an answer: status line, headers and body."""
    head = 17 + sum(len(name) + len(value) + 4 for name, value in response.headers.items()) + 2
    return head + len(response.get_data())


def page_load(
    client, token: str, project_id: str, browser: Browser, clock: SimulatedClock, minute: int
) -> Load:
    load = Load(minute)
    headers = {"Authorization": f"Bearer {token}"}
    if browser.etag:
        headers["If-None-Match"] = browser.etag
    started = time.perf_counter()
    read = client.get(f"/v1/projects/{project_id}", headers=headers)
    load.project_ms = (time.perf_counter() - started) * 1000
    load.project_status, load.requests, load.bytes = read.status_code, 1, received(read)
    load.project_bytes = load.bytes
    if read.status_code == 200:
        browser.etag, browser.shown = read.headers.get("ETag"), read.json["assetThumbnails"]
    for url in browser.shown.values():
        if browser.cache.get(url, float("-inf")) > clock():
            continue
        with client.get(url) as thumbnail:
            assert thumbnail.status_code == 200, thumbnail.status_code
            browser.cache[url] = clock() + thumbnail.cache_control.max_age
            load.requests, load.bytes = load.requests + 1, load.bytes + received(thumbnail)
            load.thumbnails_fetched += 1
    return load


def sessions_of_loads(apps: dict, token: str, project_id: str, minutes: list[int], hour: int, clock) -> dict:
    """Each contender's page loads at `minutes` past `hour`, alternating which goes first at each one."""
    browsers = {name: (Browser(), app.test_client()) for name, app in apps.items()}
    loads: dict[str, list[Load]] = {name: [] for name in apps}
    for turn, minute in enumerate(minutes):
        clock.now = hour + minute * 60
        for name in list(apps)[:: 1 if turn % 2 == 0 else -1]:
            browser, client = browsers[name]
            loads[name].append(page_load(client, token, project_id, browser, clock, minute))
    return loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=120, help="length of the session of page loads")
    parser.add_argument("--every", type=int, default=10, help="minutes between page loads")
    parser.add_argument("--reads", type=int, default=20, help="timed project reads per contender")
    args = parser.parse_args()
    minutes = [5, *range(15, args.minutes + 6, args.every)]
    with tempfile.TemporaryDirectory() as data_dir, temporary_database() as url:
        settings = bench_settings(url, Path(data_dir))
        project_id = make_project(settings, args.elements)
        token = make_dev_token(settings, USER)
        real_time = time.time
        hour = int(real_time()) // 3600 * 3600
        clock = SimulatedClock(hour)
        apps = {}
        for name, services_class in (("stable", Services), ("changing", ChangingLinks)):
            built = create_app(settings).extensions["iskra"]
            apps[name] = create_app(
                settings, services_class(**{f.name: getattr(built, f.name) for f in fields(Services)})
            )
        try:
            time.time = clock
            results = sessions_of_loads(apps, token, project_id, minutes, hour, clock)
        finally:
            time.time = real_time
        read_times = time_reads(apps, token, project_id, args.reads)
    print_results(results, args)
    print(
        "\nproject read in-process, median of "
        f"{args.reads} alternating reads: "
        + ", ".join(f"{name} {statistics.median(times):.1f} ms" for name, times in read_times.items())
    )


def time_reads(apps: dict, token: str, project_id: str, reads: int) -> dict[str, list[float]]:
    """Milliseconds per full project read (200) of each contender, alternating, after one warm-up each."""
    clients = {name: app.test_client() for name, app in apps.items()}
    headers = {"Authorization": f"Bearer {token}"}
    times: dict[str, list[float]] = {name: [] for name in apps}
    for turn in range(reads + 1):
        for name in list(apps)[:: 1 if turn % 2 == 0 else -1]:
            started = time.perf_counter()
            assert clients[name].get(f"/v1/projects/{project_id}", headers=headers).status_code == 200
            if turn:
                times[name].append((time.perf_counter() - started) * 1000)
    return times


def print_results(results: dict[str, list[Load]], args: argparse.Namespace) -> None:
    stable, changing = results["stable"], results["changing"]
    print(f"{args.elements}-element project; page loads at minutes {[load.minute for load in stable]}\n")
    print("| page load | stable: requests (read) | stable: KiB | changing: requests (read) | changing: KiB |")
    print("|---|---|---|---|---|")
    for ours, theirs in zip(stable, changing, strict=True):
        print(
            f"| +{ours.minute} min | {ours.requests:,} ({ours.project_status}) | {ours.bytes / 1024:,.1f} "
            f"| {theirs.requests:,} ({theirs.project_status}) | {theirs.bytes / 1024:,.1f} |"
        )
    for name, loads in results.items():
        mib = sum(load.bytes for load in loads) / 1024 / 1024
        fetched = sum(load.thumbnails_fetched for load in loads)
        print(
            f"\n{name}: {sum(load.requests for load in loads):,} requests, {mib:,.1f} MiB over {len(loads)} "
            f"loads, {fetched:,} thumbnails fetched; project read {loads[0].project_bytes / 1024:,.1f} KiB, "
            f"in-process median {_median_ms(loads, 200)} (200), {_median_ms(loads, 304)} (304)"
        )
    ours, theirs = stable[1], changing[1]
    print(
        f"\nreload within the hour (+{ours.minute} min): stable {ours.requests} request(s), {ours.bytes:,} "
        f"bytes; changing {theirs.requests:,} requests, {theirs.bytes:,} bytes"
    )


def _median_ms(loads: list[Load], status: int) -> str:
    times = [load.project_ms for load in loads if load.project_status == status]
    return f"{statistics.median(times):.1f} ms" if times else "-"


if __name__ == "__main__":
    main()
