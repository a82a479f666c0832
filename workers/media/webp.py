"""The encodings every rendition uses (WebP; JPEG past WebP's size), with nothing but pixels in them."""

import io

from PIL import Image

# Measured on 400 px thumbnails of 12 MP photo-like JPEGs (bench/RESULTS.md): method 2 costs ~3 ms
# against ~8 ms for Pillow's default 4 and stays within ~1.1x its bytes; methods 0/1 save ~1 ms
# more but come out 1.2-1.4x larger. Quality 85 keeps those thumbnails >= 35 dB PSNR.
QUALITY = 85
METHOD = 2
# WebP's largest side; a larger picture is encoded as JPEG instead.
MAX_SIDE = 16_383


def encode_webp(img: Image.Image, quality: int = QUALITY) -> bytes:
    """Lossy WebP of an RGB or RGBA image, without EXIF, ICC or XMP."""
    out = io.BytesIO()
    # A copy's info would carry the source's exif/icc_profile/xmp; the encoder is given none of them.
    img.info = {}
    img.save(out, format="WEBP", quality=quality, method=METHOD, exif=b"", icc_profile=None, xmp=b"")
    return out.getvalue()


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """Baseline JPEG of an RGB or RGBA image (alpha flattened onto white), without metadata."""
    if img.mode == "RGBA":
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    out = io.BytesIO()
    img.info = {}
    img.save(out, format="JPEG", quality=quality, optimize=False, exif=b"", icc_profile=None)
    return out.getvalue()
