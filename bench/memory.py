"""Memory benchmark: peak resident memory of one image task's media work, before and after a change.

Each input is rendered (`make_image_renditions`: preview, thumbnail, placeholder) once in a fresh
interpreter, and the interpreter's peak RSS (`VmHWM`) is read; the same is done with the code of an
earlier revision (`--before`, default: where this branch left `main`; exported whole with `git archive`
into a temporary folder), so both columns come from one run on the same inputs. Inputs, generated into
a temporary directory: a 10000x10000 16-bit greyscale PNG, a 10000x10000 (100 MP) RGBA PNG, a 100 MP
JPEG, and a 12 MP RGBA PNG.

    .venv/bin/python bench/memory.py [--before REVISION] [--ceiling-mb 512]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --- inputs --------------------------------------------------------------------------------------------


def make_inputs(directory: Path) -> dict[str, Path]:
    """The benchmark's images by label, written once into `directory`."""
    import numpy as np
    from PIL import Image

    paths = {}
    y, x = np.ogrid[0:10_000, 0:10_000]
    grey = ((x * 5 + y * 2) % 65_536).astype(np.uint16)
    paths["16-bit grey PNG 100 MP"] = _save(Image.fromarray(grey), directory / "grey16.png")
    del grey
    rgba = np.empty((10_000, 10_000, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = x % 256, y % 256, (x + y) % 256
    rgba[..., 3] = (x // 40 + y // 40) % 256
    paths["RGBA PNG 100 MP"] = _save(Image.fromarray(rgba, "RGBA"), directory / "rgba100.png")
    paths["RGB JPEG 100 MP"] = _save(Image.fromarray(rgba[..., :3], "RGB"), directory / "rgb100.jpg")
    paths["RGBA PNG 12 MP"] = _save(Image.fromarray(rgba[:3000, :4000], "RGBA"), directory / "rgba12.png")
    return paths


def _save(img, path: Path) -> Path:
    img.save(path, compress_level=1) if path.suffix == ".png" else img.save(path, quality=90)
    return path


# --- one measured run, in a fresh interpreter ------------------------------------------------------------


def _vm(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) / 1024  # kB to MiB


def peak_child(source: Path, path: Path) -> None:
    """Print the peak RSS after the imports, then after rendering `path` with the code in `source`."""
    sys.path.insert(0, str(source))
    from workers.media.images import make_image_renditions
    from workers.media.limits import MediaLimits
    from workers.media.sniff import SNIFF_BYTES, sniff

    imported = _vm("VmHWM")
    with path.open("rb") as f:
        sniffed = sniff(f.read(SNIFF_BYTES))
        f.seek(0)
        make_image_renditions(f, sniffed, MediaLimits())
    print(imported, _vm("VmHWM"))


def peak_mb(source: Path, path: Path) -> tuple[float, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--peak", str(source), str(path)], capture_output=True, text=True
    )
    if output.returncode:
        raise RuntimeError(f"{source} on {path.name}: {output.stderr[-2000:]}")
    imported, peak = output.stdout.split()[-2:]
    return float(imported), float(peak)


def export(revision: str, directory: Path) -> Path:
    """The tree of `revision`, extracted into `directory` (first on the path, before the editable install)."""
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True)
    directory.mkdir()
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare against (default: merge-base with main)")
    parser.add_argument("--ceiling-mb", type=float, default=512.0)
    parser.add_argument("--peak", nargs=2, metavar=("SOURCE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        peak_child(Path(args.peak[0]), Path(args.peak[1]))
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        directory = Path(tmp)
        inputs = make_inputs(directory)
        print(f"inputs made in {time.perf_counter() - started:.0f} s")
        revision = args.before or _git("merge-base", "HEAD", "main")
        before = export(revision, directory / "before")
        print("\nPeak RSS (VmHWM, MiB) of a fresh process rendering each input once:\n")
        print(f"| input | file | imports only | before ({revision[:7]}) | after | after / ceiling |")
        print("|---|---|---|---|---|---|")
        for label, path in inputs.items():
            imported, after = peak_mb(ROOT, path)
            try:
                _, earlier = peak_mb(before, path)
                earlier_cell = f"{earlier:.0f}"
            except RuntimeError as error:
                earlier_cell = f"failed ({str(error).strip().splitlines()[-1][:40]})"
            size = path.stat().st_size / 1024 / 1024
            print(
                f"| {label} | {size:.1f} MiB | {imported:.0f} | {earlier_cell} | {after:.0f} "
                f"| {after / args.ceiling_mb:.0%} |"
            )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
