"""Direct uploads: the API's cost per MiB when the bytes go straight to storage, against the form upload.

Contenders, alternating upload by upload against one running stack (a gunicorn API process with one
worker, a real Celery worker) on a temporary database, on a real SeaweedFS (S3) and on local disk:
- form: `POST /v1/assets`, the file streamed through the API as one multipart body;
- direct: the Companion S3 multipart flow `@uppy/aws-s3` drives (create, sign each 5 MiB part, PUT it to
  the signed URL, complete). On S3 the parts go to SeaweedFS; on local disk they go to the API's
  `/files/parts/` route, so the API still receives every byte there.
For each upload: the API processes' CPU time (user + system, master and workers, psutil) and the growth
of the workers' peak RSS (VmHWM, reset before each upload through /proc/<pid>/clear_refs), divided by the
MiB uploaded; and the end-to-end time for a 25 MiB video, from the first request until the asset is
`ready` (renditions made by the worker).

    .venv/bin/python bench/direct_uploads.py [--runs 4] [--no-s3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psutil
import psycopg
import requests
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from models.storage.s3 import S3Storage  # noqa: E402
from tests.browser.stack import running_stack  # noqa: E402
from tests.s3server import running_weed  # noqa: E402
from tests.workers.media.hostile_media import video  # noqa: E402
from web.auth import make_dev_token  # noqa: E402

SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MIB = 1024 * 1024
SIZE = 25 * MIB
PART = 5 * MIB


def padded_mp4(directory: Path) -> bytes:
    """A real 4 s 1280x720 H.264 clip with a `free` box that brings it to 25 MiB."""
    clip = video(directory, "clip.mp4", seconds=4, size="1280x720", rate=25).read_bytes()
    padding = SIZE - len(clip)
    return clip + padding.to_bytes(4, "big") + b"free" + bytes(padding - 8)


def form_upload(api: str, headers: dict[str, str], content: bytes) -> str:
    files = {"file": ("clip.mp4", content, "video/mp4")}
    response = requests.post(f"{api}/v1/assets", headers=headers, files=files, timeout=120)
    assert response.status_code == 201, response.text
    return f"{api}/v1/assets/{response.json()['id']}"


def direct_upload(api: str, headers: dict[str, str], content: bytes) -> str:
    endpoint = f"{api}/v1/uploads/s3/multipart"
    body = {"filename": "clip.mp4", "type": "video/mp4", "metadata": {"size": len(content)}}
    created = requests.post(endpoint, headers=headers, json=body, timeout=30)
    assert created.status_code == 200, created.text
    upload_id, key = created.json()["uploadId"], created.json()["key"]
    parts = []
    for number, start in enumerate(range(0, len(content), PART), start=1):
        signed = requests.get(
            f"{endpoint}/{upload_id}/{number}", params={"key": key}, headers=headers, timeout=30
        )
        put = requests.put(signed.json()["url"], data=content[start : start + PART], timeout=120)
        assert put.status_code == 200, put.text
        parts.append({"PartNumber": number, "ETag": put.headers["ETag"]})
    done = requests.post(f"{endpoint}/{upload_id}/complete", params={"key": key}, headers=headers,
                         json={"parts": parts}, timeout=120)  # fmt: skip
    assert done.status_code == 200, done.text
    return done.json()["location"]


CONTENDERS = {"form": form_upload, "direct": direct_upload}


def api_processes(port: int) -> list[psutil.Process]:
    """The gunicorn master listening on `port` and its workers."""
    for process in psutil.process_iter(["cmdline"]):
        if f"127.0.0.1:{port}" in " ".join(process.info["cmdline"] or []) and "gunicorn" in str(process.info):
            return [process, *process.children(recursive=True)]
    raise RuntimeError("gunicorn not found")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def reset_peaks(processes: list[psutil.Process]) -> dict[int, int]:
    for process in processes:
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")
    return {p.pid: p.memory_info().rss for p in processes}


def peak_growth(processes: list[psutil.Process], before: dict[int, int]) -> int:
    peaks = {}
    for process in processes:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
        )
        peaks[process.pid] = int(status["VmHWM"].split()[0]) * 1024
    return max(peaks[pid] - before[pid] for pid in peaks)


def wait_ready(location: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body = requests.get(location, headers=headers, timeout=10).json()
        if body["status"] in ("ready", "failed"):
            assert body["status"] == "ready", body
            return
        time.sleep(0.05)
    raise TimeoutError(location)


def measure(settings: Settings, content: bytes, runs: int, logs: Path) -> dict[str, dict[str, list[float]]]:
    results = {name: {"cpu_ms_per_mib": [], "peak_mib": [], "end_to_end_s": []} for name in CONTENDERS}
    with running_stack(settings, logs) as stack:
        port = int(stack.api.rsplit(":", 1)[1])
        processes = api_processes(port)
        warm = {"Authorization": f"Bearer {make_dev_token(settings, 'user_bench_warm')}"}
        for upload in CONTENDERS.values():
            wait_ready(upload(stack.api, warm, content), warm)
        for run in range(runs):
            order = list(CONTENDERS) if run % 2 == 0 else list(reversed(CONTENDERS))
            for name in order:
                token = make_dev_token(settings, f"user_bench_{uuid.uuid4().hex[:8]}")
                headers = {"Authorization": f"Bearer {token}"}
                before = reset_peaks(processes)
                cpu, started = cpu_seconds(processes), time.perf_counter()
                location = CONTENDERS[name](stack.api, headers, content)
                spent = cpu_seconds(processes) - cpu
                growth = peak_growth(processes, before)
                wait_ready(location, headers)
                results[name]["end_to_end_s"].append(time.perf_counter() - started)
                results[name]["cpu_ms_per_mib"].append(spent * 1000 / (len(content) / MIB))
                results[name]["peak_mib"].append(growth / MIB)
    return results


def report(backend: str, results: dict[str, dict[str, list[float]]]) -> None:
    print(f"\n{backend}: 25 MiB video, median of {len(results['form']['end_to_end_s'])} runs")
    print(f"{'contender':10} {'API CPU ms/MiB':>15} {'API peak RSS +MiB':>18} {'end to end s':>13}")
    for name, values in results.items():
        cpu, peak, e2e = (
            statistics.median(values[k]) for k in ("cpu_ms_per_mib", "peak_mib", "end_to_end_s")
        )
        print(f"{name:10} {cpu:15.2f} {peak:18.1f} {e2e:13.2f}")
    ratio = statistics.median(results["form"]["cpu_ms_per_mib"]) / statistics.median(
        results["direct"]["cpu_ms_per_mib"]
    )
    print(f"form/direct API CPU per MiB: {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()
    name = f"iskra_bench_direct_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as temp, ExitStack() as stack:
            temp_dir = Path(temp)
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            migrate.upgrade(url)
            settings = Settings(
                _env_file=None, environment="development", database_url=url,
                redis_url="redis://127.0.0.1:6379/0", redis_key_prefix=f"{name}:", ISKRA_DATA_DIR=temp_dir,
                storage_backend="local", auth_mode="dev", dev_jwt_secret="bench-secret-long-enough-for-hs256",
                signing_secret="bench-signing-secret-long-enough-for-hmac", log_format="json",
                log_level="WARNING",
            )  # fmt: skip
            content = padded_mp4(temp_dir)
            backends = {"local disk": settings}
            if not args.no_s3:
                weed = stack.enter_context(running_weed(temp_dir))
                s3 = settings.model_copy(update={
                    "storage_backend": "s3", "s3_endpoint_url": weed.endpoint_url, "s3_bucket": "bench",
                    "aws_access_key_id": weed.access_key, "aws_secret_access_key": SecretStr(weed.secret_key),
                })  # fmt: skip
                S3Storage.from_settings(s3).ensure_bucket()
                backends = {"S3 (SeaweedFS)": s3, **backends}
            for backend, chosen in backends.items():
                logs = temp_dir / backend.split()[0]
                logs.mkdir()
                report(backend, measure(chosen, content, args.runs, logs))
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
