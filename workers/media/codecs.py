"""Decoders beyond Pillow's core formats: HEIF through pillow-heif, AVIF through Pillow's own libavif."""

from functools import cache

from PIL import AvifImagePlugin, features


@cache
def prepare_heif_and_avif() -> None:
    """Let Pillow open HEIF files (primary image only) and decode AVIF on one thread; once per process."""
    # Imported here, not at module level: only processes that read HEIF pay for loading libheif.
    import pillow_heif

    # Thumbnails, depth maps and auxiliary images are never used: the primary image is the picture.
    # One decoding thread per process, as for every other format: a worker process is one core's worth.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False, decode_threads=1)
    AvifImagePlugin.DEFAULT_MAX_THREADS = 1


def image_codec_support() -> dict[str, bool]:
    """Whether this process can decode AVIF (Pillow's `avif` feature) and HEIC (pillow-heif with HEVC)."""
    return {"AVIF": bool(features.check("avif")), "HEIC": _heif_decodes()}


def _heif_decodes() -> bool:
    # PIL.features knows nothing of plugins: ask libheif which decoders this build carries.
    try:
        import pillow_heif
    except ImportError:
        return False
    decoders = pillow_heif.libheif_info().get("decoders", {})
    return any("HEVC" in name or "265" in name for name in (*decoders, *decoders.values()))
