"""The one WebP encoding every rendition uses, with nothing but pixels in the output."""

import io

from PIL import Image

# Measured on 400 px thumbnails of 12 MP photo-like JPEGs (bench/RESULTS.md): method 2 costs ~3 ms
# against ~8 ms for Pillow's default 4 and stays within ~1.1x its bytes; methods 0/1 save ~1 ms
# more but come out 1.2-1.4x larger. Quality 85 keeps those thumbnails >= 35 dB PSNR.
QUALITY = 85
METHOD = 2


def encode_webp(img: Image.Image) -> bytes:
    """Lossy WebP of an RGB or RGBA image, without EXIF, ICC or XMP."""
    out = io.BytesIO()
    # A copy's info would carry the source's exif/icc_profile/xmp; the encoder is given none of them.
    img.info = {}
    img.save(out, format="WEBP", quality=QUALITY, method=METHOD, exif=b"", icc_profile=None, xmp=b"")
    return out.getvalue()
