"""glibc's allocator told to keep the MiB-sized buffers a process reuses, rather than map and unmap each.

By default glibc serves an allocation above a (self-adjusting) threshold of 128 KiB to 32 MiB with its
own mmap() and gives it back with munmap() when freed, and trims the heap's top once 128 KiB of it are
free. A process that streams uploads a MiB at a time then pays page faults and zeroing for every fresh
buffer: in the API that was about a fifth of the CPU of a 4 MB upload (bench/upload_cpu.py; the image
workers, measured the same way, gained nothing and are left alone). Raised thresholds keep freed buffers
in the heap for the next request; the cost is that the resident set stays near its high-water mark
instead of shrinking between requests.
"""

from __future__ import annotations

import ctypes

import structlog

log = structlog.get_logger(__name__)

# mallopt() parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Larger than any buffer the service allocates in one piece (uploads are read a MiB at a time; a 100 MP
# RGBA image is held in Pillow's own blocks of at most 16 MiB).
MMAP_THRESHOLD_BYTES = 64 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def keep_large_buffers(library: str | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds in this process; False where the C library is not glibc.

    `library` None is the process's own symbols, the C library's among them: no `ldconfig` subprocess
    (ctypes.util.find_library runs one) in every forked API worker."""
    try:
        libc = ctypes.CDLL(library)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not applied:
        log.warning("mallopt_refused")
    return applied
