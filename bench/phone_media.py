"""Phone media benchmark: HEIC and AVIF photos through the image path beside JPEG, HDR posters beside SDR.

Images: generated 12 MP photo-like pictures (bench/thumbnails.py's generator) saved as JPEG (quality 90),
HEIC (pillow-heif/x265, quality 90, 512 px grid tiles as iPhones write them) and AVIF (Pillow/libavif,
quality 90), each run through `make_image_renditions` (for HEIC and AVIF that includes the full-size
`display` WebP) and `make_thumbnail`, interleaved in a rotating order, one decoding thread, in one process:
per-core figures. Posters: `probe_video` + `make_poster` on a 1080p SDR H.264 clip and the same clip
converted to 10-bit BT.2020 HLG HEVC (zscale), which is tone-mapped.

    .venv/bin/python bench/phone_media.py [--rounds 2] [--no-posters]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pillow_heif  # noqa: E402
from PIL import Image  # noqa: E402
from thumbnails import photo  # noqa: E402

from tests.workers.media import phone_media  # noqa: E402
from workers.media.images import make_image_renditions, make_thumbnail  # noqa: E402
from workers.media.limits import MediaLimits  # noqa: E402
from workers.media.sniff import SNIFF_BYTES, sniff  # noqa: E402
from workers.media.video import make_poster, probe_video  # noqa: E402

LIMITS = MediaLimits()


def make_images(directory: Path, count: int) -> dict[str, list[Path]]:
    pillow_heif.register_heif_opener()
    classes: dict[str, list[Path]] = defaultdict(list)
    for i in range(count):
        img = photo(4000, 3000, seed=40 + i)
        for label, suffix, params in (
            ("JPEG", "jpg", {"format": "JPEG", "quality": 90}),
            ("HEIC", "heic", {"format": "HEIF", "quality": 90, "tile_size": 512}),
            ("AVIF", "avif", {"format": "AVIF", "quality": 90, "speed": 8}),
        ):
            path = directory / f"photo-{i}.{suffix}"
            img.save(path, **params)
            classes[label].append(path)
    return classes


def _sniffed(path: Path):
    with path.open("rb") as f:
        return sniff(f.read(SNIFF_BYTES))


CONTENDERS = {
    "renditions": lambda path: make_image_renditions(path, _sniffed(path), LIMITS),
    "thumbnail only": lambda path: make_thumbnail(path, _sniffed(path), LIMITS),
}


def time_images(
    classes: dict[str, list[Path]], rounds: int
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(wall, CPU) seconds per image by (class, contender), in a rotating order."""
    jobs = [(label, name) for label in classes for name in CONTENDERS]
    for label, name in jobs:  # warm plugins, the codec libraries and the ICC transform cache
        CONTENDERS[name](classes[label][0])
    times: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    turn = 0
    for _ in range(rounds):
        for index in range(len(next(iter(classes.values())))):
            turn += 1
            for label, name in jobs[turn % len(jobs) :] + jobs[: turn % len(jobs)]:
                wall, cpu = time.perf_counter(), time.process_time()
                CONTENDERS[name](classes[label][index])
                times[label, name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def sizes(classes: dict[str, list[Path]]) -> dict[str, tuple[float, float]]:
    """Mean original and display-copy size in MB by class."""
    result = {}
    for label, paths in classes.items():
        display = [make_image_renditions(p, _sniffed(p), LIMITS).display for p in paths]
        result[label] = (
            statistics.mean(p.stat().st_size for p in paths) / 1e6,
            statistics.mean(len(d) for d in display) / 1e6 if all(display) else 0.0,
        )
    return result


def time_posters(directory: Path, repeats: int) -> dict[str, list[float]]:
    sdr = directory / "sdr.mp4"
    phone_media._ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=3", "-vf", "format=yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-colorspace", "bt709", str(sdr),
    )  # fmt: skip
    hlg = directory / "hlg.mp4"
    phone_media._ffmpeg(
        "-i", str(sdr), "-vf",
        "zscale=tin=bt709:pin=bt709:min=bt709:rin=tv:t=linear:npl=100,format=gbrpf32le,"
        "zscale=t=arib-std-b67:p=bt2020:m=bt2020nc:r=tv:npl=203,format=yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
        "-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc", str(hlg),
    )  # fmt: skip
    mp4 = sniff(sdr.read_bytes()[:SNIFF_BYTES])
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for label, path in (("SDR H.264 1080p", sdr), ("HLG 10-bit HEVC 1080p (tone-mapped)", hlg)):
            started = time.perf_counter()
            info = probe_video(str(path), mp4, LIMITS)
            make_poster(str(path), mp4, info, LIMITS)
            times[label].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=2, help="photos per format")
    parser.add_argument("--no-posters", action="store_true")
    args = parser.parse_args()
    libheif = pillow_heif.libheif_info()["libheif"]
    print(f"Pillow {Image.__version__}, pillow-heif {pillow_heif.__version__}, libheif {libheif}")
    with tempfile.TemporaryDirectory(prefix="bench-phone-") as name:
        directory = Path(name)
        classes = make_images(directory, args.images)
        times = time_images(classes, args.rounds)
        jpeg = statistics.median(wall for wall, _ in times["JPEG", "renditions"])
        print("\n| 12 MP photo | contender | median ms | CPU ms | images/s per core | vs JPEG renditions |")
        print("|---|---|---:|---:|---:|---:|")
        for (label, name), runs in times.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            ratio = wall / jpeg
            print(
                f"| {label} | {name} | {wall * 1000:.0f} | {cpu * 1000:.0f} | {1 / wall:.2f} | {ratio:.1f}x |"
            )
        print("\n| 12 MP photo | original MB | display WebP MB |")
        print("|---|---:|---:|")
        for label, (original, display) in sizes(classes).items():
            print(
                f"| {label} | {original:.2f} | {display:.2f} |"
                if display
                else f"| {label} | {original:.2f} | — |"
            )
        if not args.no_posters:
            posters = time_posters(directory, max(3, args.rounds * 2))
            print("\n| clip | median ms (probe + poster) |")
            print("|---|---:|")
            for label, runs in posters.items():
                print(f"| {label} | {statistics.median(runs) * 1000:.0f} |")


if __name__ == "__main__":
    main()
