"""Thumbnail benchmark: our rendition path against plain Pillow, side by side on the same generated photos.

Contenders, interleaved image by image (in a rotating order) so that a busy machine slows them alike,
all in one process on one core:
- ours: `make_image_renditions` (reduced-scale JPEG decode, stepped resampling, WebP method 2) giving
  the 1600 px preview, the 400 px thumbnail and the placeholder; and `make_thumbnail` alone;
- plain Pillow, what a user would write: `Image.open(p)`, `im.thumbnail((1600, 1600))`, save WebP, then
  `im.thumbnail((400, 400))` on the same image, save WebP, the same placeholder; and the thumbnail alone
  (`Image.open`, `thumbnail((400, 400))`, save). WebP at our quality and method, so only the pixel work
  differs (`Image.thumbnail` also decodes a JPEG at reduced scale, through `draft()`);
- floor (JPEGs): `draft()` at 1/8 + load, no resize, no encode: the entropy decoding nothing skips.
Quality: PSNR of each 400 px thumbnail against a reference (full decode + one Lanczos resize); size: our
thumbnail's bytes against plain Pillow's at the same settings; WebP's encoding effort (methods 0-6).
Memory: peak RSS of a fresh process per contender and input.
Posters: our input-side seek against output-side seek and against decoding only the first frame, early
and late in a generated 60 s clip.

    .venv/bin/python bench/thumbnails.py [--rounds 2] [--no-posters] [--no-memory]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

# One core per contender: numpy's BLAS (the placeholder's matrix products) must not fan out.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageChops, ImageDraw, ImageOps  # noqa: E402

from workers.media.children import run_limited  # noqa: E402
from workers.media.images import make_image_renditions, make_thumbnail  # noqa: E402
from workers.media.limits import MediaLimits  # noqa: E402
from workers.media.placeholder import thumbhash  # noqa: E402
from workers.media.sniff import SNIFF_BYTES, sniff  # noqa: E402
from workers.media.video import make_poster, poster_command, probe_video  # noqa: E402
from workers.media.webp import METHOD, QUALITY  # noqa: E402

LIMITS = MediaLimits()
THUMBNAIL, PREVIEW = 400, 1600


# --- inputs --------------------------------------------------------------------------------------------


def photo(width: int, height: int, seed: int, grain: float = 10.0) -> Image.Image:
    """Photo-like RGB: a smooth random colour field, hard-edged shapes, and Gaussian sensor grain.

    The same pixels for the same arguments in any process (the grain comes from numpy's seeded
    generator, not from Pillow's `effect_noise`, whose C `rand()` depends on what ran before).
    """
    rng = random.Random(seed)
    field = Image.new("RGB", (16, 12))
    field.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(16 * 12)])
    img = field.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(min(width, height) // 40, min(width, height) // 6)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x - r, y - r, x + r, y + r], fill=colour)
    if grain:
        levels = np.random.default_rng(seed).standard_normal((height, width), dtype=np.float32)
        levels *= grain
        levels += 128.5
        noise = Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8))
        del levels
        img = Image.merge("RGB", [ImageChops.add(band, noise, offset=-128) for band in img.split()])
    return img


def make_inputs(directory: Path) -> dict[str, list[Path]]:
    """The benchmark's photos by class, written once into `directory`."""
    classes: dict[str, list[Path]] = defaultdict(list)
    specs = [("12 MP JPEG", 4000, 3000, 4), ("24 MP JPEG", 6000, 4000, 2)]
    for label, width, height, count in specs:
        for i in range(count):
            path = directory / f"{width}x{height}-{i}.jpg"
            photo(width, height, seed=width + i).save(path, "JPEG", quality=90)
            classes[label].append(path)
    for i in range(2):
        rgba = photo(4000, 3000, seed=100 + i, grain=0).convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
        path = directory / f"4000x3000-rgba-{i}.png"
        rgba.save(path, "PNG", compress_level=6)
        classes["12 MP RGBA PNG"].append(path)
    return classes


def hundred_megapixel_jpeg(directory: Path) -> Path:
    path = directory / "10000x10000.jpg"
    photo(10_000, 10_000, seed=7, grain=4).save(path, "JPEG", quality=90)
    return path


# --- contenders ----------------------------------------------------------------------------------------


def sniffed_type(path: Path):
    with path.open("rb") as f:
        return sniff(f.read(SNIFF_BYTES))


def ours_renditions(path: Path) -> bytes:
    return make_image_renditions(path, sniffed_type(path), LIMITS).thumbnail


def ours_thumbnail(path: Path) -> bytes:
    return make_thumbnail(path, sniffed_type(path), LIMITS)


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _reference_decode(path: Path) -> Image.Image:
    """Every pixel of the original, upright: what the references below are cut from."""
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        return im.convert("RGBA" if "A" in im.getbands() else "RGB")


def _reference_resize(img: Image.Image, side: int) -> Image.Image:
    return img.resize(_fit(img.size, side), Image.Resampling.LANCZOS, reducing_gap=None)


def _webp(img: Image.Image, method: int = METHOD) -> bytes:
    out = io.BytesIO()
    img.save(out, "WEBP", quality=QUALITY, method=method)
    return out.getvalue()


def plain_renditions(path: Path) -> bytes:
    im = Image.open(path)
    im.thumbnail((PREVIEW, PREVIEW))
    _webp(im)
    im.thumbnail((THUMBNAIL, THUMBNAIL))
    thumbhash(im)
    return _webp(im)


def plain_thumbnail(path: Path) -> bytes:
    im = Image.open(path)
    im.thumbnail((THUMBNAIL, THUMBNAIL))
    return _webp(im)


def decode_floor(path: Path) -> bytes:
    with Image.open(path) as im:
        im.draft("RGB", (im.width // 8, im.height // 8))
        im.load()
    return b""


CONTENDERS: dict[str, Callable[[Path], bytes]] = {
    "ours: renditions": ours_renditions,
    "plain Pillow: renditions": plain_renditions,
    "ours: thumbnail": ours_thumbnail,
    "plain Pillow: thumbnail": plain_thumbnail,
    "floor: 1/8 decode": decode_floor,
}


def _as_seen(img: Image.Image) -> np.ndarray:
    # Transparent pixels' colour is invisible (and WebP drops it): compare composited over grey.
    if img.mode == "RGBA":
        img = Image.alpha_composite(Image.new("RGBA", img.size, (128, 128, 128, 255)), img)
    return np.asarray(img.convert("RGB"), np.float64)


def psnr(thumbnail: bytes, reference: Image.Image) -> float:
    with Image.open(io.BytesIO(thumbnail)) as im:
        error = np.mean((_as_seen(im.convert(reference.mode)) - _as_seen(reference)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255**2 / error))


# --- runs ----------------------------------------------------------------------------------------------


def time_images(classes: dict[str, list[Path]], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per image by class and contender; contenders rotate order from one image to the next."""
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    names = list(CONTENDERS)
    first = next(iter(classes.values()))[0]
    for name in names:  # warm caches, plugins and the ICC transform cache
        CONTENDERS[name](first)
    turn = 0
    for _ in range(rounds):
        for label, paths in classes.items():
            for path in paths:
                turn += 1
                for name in names[turn % len(names) :] + names[: turn % len(names)]:
                    if name.startswith("floor") and path.suffix != ".jpg":
                        continue
                    started = time.perf_counter()
                    CONTENDERS[name](path)
                    times[label][name].append(time.perf_counter() - started)
    return times


def quality(classes: dict[str, list[Path]]) -> dict[str, dict[str, float]]:
    """Worst thumbnail PSNR per contender and of the reference through WebP; bytes ours / plain Pillow."""
    worst: dict[str, dict[str, float]] = defaultdict(dict)
    for label, paths in classes.items():
        ours_db, plain_db, webp_db, ours_bytes, plain_bytes = [], [], [], [], []
        for path in paths:
            ours, plain = ours_renditions(path), plain_thumbnail(path)
            with Image.open(io.BytesIO(ours)) as im:
                size = im.size
            reference = _reference_decode(path).resize(size, Image.Resampling.LANCZOS, reducing_gap=None)
            ours_db.append(psnr(ours, reference))
            plain_db.append(psnr(plain, reference))
            webp_db.append(psnr(_webp(reference), reference))
            ours_bytes.append(len(ours))
            plain_bytes.append(len(plain))
        worst[label] = {
            "ours_db": min(ours_db), "plain_db": min(plain_db), "webp_db": min(webp_db),
            "bytes": sum(ours_bytes) / sum(plain_bytes),
            "bytes_max": max(o / p for o, p in zip(ours_bytes, plain_bytes, strict=True)),
        }  # fmt: skip
    return worst


def webp_effort(paths: list[Path], repeats: int = 5) -> dict[int, dict[str, float]]:
    """Per WebP method: median ms to encode a 400 px thumbnail, bytes against method 4, worst PSNR."""
    thumbnails = [_reference_resize(_reference_decode(path), THUMBNAIL) for path in paths]
    results: dict[int, dict[str, float]] = {}
    for method in (0, 1, 2, 4, 6):
        seconds, sizes, worst = [], [], float("inf")
        for img in thumbnails:
            for _ in range(repeats):
                out = io.BytesIO()
                started = time.perf_counter()
                img.save(out, "WEBP", quality=QUALITY, method=method)
                seconds.append(time.perf_counter() - started)
            sizes.append(len(out.getvalue()))
            worst = min(worst, psnr(out.getvalue(), img))
        results[method] = {"ms": statistics.median(seconds) * 1000, "bytes": sum(sizes), "db": worst}
    return results


def peak_rss_mb(contender: str, path: Path) -> float:
    """Peak RSS (MB) of a fresh interpreter that imports everything, then runs `contender` once on `path`."""
    output = subprocess.run(
        [sys.executable, __file__, "--peak", contender, str(path)], capture_output=True, text=True, check=True
    )
    return float(output.stdout.split()[-1])


def memory(paths: dict[str, Path]) -> dict[str, dict[str, float]]:
    idle = peak_rss_mb("none", next(iter(paths.values())))
    peaks: dict[str, dict[str, float]] = {"(imports only)": dict.fromkeys(paths, idle)}
    for name in CONTENDERS:
        if name.startswith("floor"):
            continue
        peaks[name] = {label: peak_rss_mb(name, path) for label, path in paths.items()}
    return peaks


def posters(directory: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds per poster frame: input-side seek (ours), output-side seek, first frame only."""
    clip = directory / "60s.mp4"
    source = "testsrc2=size=1280x720:rate=25:duration=60"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source,
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    sniffed = sniffed_type(clip)
    info = probe_video(str(clip), sniffed, LIMITS)

    def input_seek(at: float) -> list[str]:
        return poster_command(str(clip), sniffed, info, at)

    def output_seek(at: float) -> list[str]:
        argv = poster_command(str(clip), sniffed, info, 0.0)
        after_input = argv.index("-i") + 2
        return [*argv[:after_input], "-ss", f"{at:.3f}", *argv[after_input:]]

    contenders = {
        "first frame only": lambda at: input_seek(0.0),
        "ours: input-side seek": input_seek,
        "output-side seek": output_seek,
    }
    results: dict[str, dict[str, float]] = {}
    for label, at in (("early (10 %)", info.duration * 0.1), ("late (90 %)", info.duration * 0.9)):
        times: dict[str, list[float]] = defaultdict(list)
        for turn in range(repeats):
            names = list(contenders)
            for name in names[turn % 3 :] + names[: turn % 3]:
                argv = contenders[name](at)
                started = time.perf_counter()
                completed = run_limited(argv, LIMITS, LIMITS.ffmpeg_timeout_seconds)
                times[name].append(time.perf_counter() - started)
                assert completed.returncode == 0 and completed.stdout, completed.stderr
            started = time.perf_counter()
            make_poster(str(clip), sniffed, info, LIMITS, at=at)
            times["ours: whole make_poster"].append(time.perf_counter() - started)
        results[label] = {name: statistics.median(values) for name, values in times.items()}
    return results


# --- output --------------------------------------------------------------------------------------------


def print_images(times, worst, rounds: int) -> None:
    print(f"\nPer image, one core, median of {rounds} round(s) over each class's images (ms; images/s):\n")
    names = list(CONTENDERS)
    print("| input | " + " | ".join(names) + " | plain/ours renditions | plain/ours thumbnail |")
    print("|---" * (len(names) + 3) + "|")
    for label, by_name in times.items():
        medians = {name: statistics.median(values) for name, values in by_name.items()}
        cells = [
            f"{medians[n] * 1000:.0f} ms ({1 / medians[n]:.1f}/s)" if n in medians else "-" for n in names
        ]
        renditions = medians["plain Pillow: renditions"] / medians["ours: renditions"]
        thumbnail = medians["plain Pillow: thumbnail"] / medians["ours: thumbnail"]
        print(f"| {label} | " + " | ".join(cells) + f" | **{renditions:.1f}x** | **{thumbnail:.1f}x** |")
    print("\nThumbnail quality against full decode + Lanczos (worst image of each class):\n")
    print("| input | ours PSNR | plain Pillow PSNR | the reference through WebP (its loss alone) "
          "| ours / plain bytes (all; largest) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for label, row in worst.items():
        print(f"| {label} | {row['ours_db']:.1f} dB | {row['plain_db']:.1f} dB | {row['webp_db']:.1f} dB "
              f"| {row['bytes']:.2f}; {row['bytes_max']:.2f} |")  # fmt: skip


def print_effort(results) -> None:
    print(f"\nWebP effort on the 12 MP JPEGs' 400 px thumbnails, quality {QUALITY} (ours: method 2):\n")
    print("| method | ms per encode | bytes / method 4 | worst PSNR against its input |")
    print("|---|---|---|---|")
    for method, row in results.items():
        ratio = row["bytes"] / results[4]["bytes"]
        print(f"| {method} | {row['ms']:.1f} | {ratio:.2f} | {row['db']:.1f} dB |")


def print_memory(peaks) -> None:
    labels = list(next(iter(peaks.values())))
    print("\nPeak RSS of a fresh process running one contender once (MB):\n")
    print("| contender | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for name, row in peaks.items():
        print(f"| {name} | " + " | ".join(f"{row[label]:.0f}" for label in labels) + " |")


def print_posters(results) -> None:
    print("\nPoster frame of a 60 s 1280x720 H.264 clip (keyframe every 10 s), median ms per frame:\n")
    names = list(next(iter(results.values())))
    print("| taken | " + " | ".join(names) + " | output-side / input-side |")
    print("|---" * (len(names) + 2) + "|")
    for label, row in results.items():
        ratio = row["output-side seek"] / row["ours: input-side seek"]
        first = row["ours: input-side seek"] / row["first frame only"]
        cells = " | ".join(f"{row[name] * 1000:.0f}" for name in names)
        print(f"| {label} | {cells} | **{ratio:.1f}x** (ours = {first:.2f}x first frame) |")


def peak_child(contender: str, path: Path) -> None:
    if contender != "none":
        CONTENDERS[contender](path)
    # VmHWM, not getrusage's ru_maxrss: that one carries the parent's peak across fork and exec.
    status = Path("/proc/self/status").read_text()
    print(int(status.split("VmHWM:")[1].split()[0]) / 1024)  # kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--poster-repeats", type=int, default=3)
    parser.add_argument("--no-posters", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--peak", nargs=2, metavar=("CONTENDER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        peak_child(args.peak[0], Path(args.peak[1]))
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-thumbnails-") as tmp:
        directory = Path(tmp)
        classes = make_inputs(directory)
        print(f"inputs made in {time.perf_counter() - started:.0f} s: "
              + ", ".join(f"{len(paths)} x {label}" for label, paths in classes.items()))  # fmt: skip
        times = time_images(classes, args.rounds)
        print_images(times, quality(classes), args.rounds)
        print_effort(webp_effort(classes["12 MP JPEG"]))
        if not args.no_memory:
            paths = {label: paths[0] for label, paths in classes.items() if label != "24 MP JPEG"}
            paths["100 MP JPEG"] = hundred_megapixel_jpeg(directory)
            print_memory(memory(paths))
        if not args.no_posters:
            print_posters(posters(directory, args.poster_repeats))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
