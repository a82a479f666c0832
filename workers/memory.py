"""The memory ceiling of one task process (SPEC §15): an allocation past it raises MemoryError.

RLIMIT_AS is the one limit the kernel enforces at allocation time for every kind of memory Pillow, numpy
and Python use (brk, mmap), so a task that would outgrow it gets MemoryError and unwinds instead of the
process being killed. It bounds the address space, not the resident set, and a pool child maps much it
never touches: after the imports a worker child measured 253 MiB VmSize for 97 MiB VmRSS (shared
libraries' unread pages, allocator reservations). So the limit is the ceiling plus what the process has
mapped but not made resident when it starts, measured then: new allocations can then take the process's
resident memory up to about the ceiling and no further.
"""

from __future__ import annotations

import resource
from pathlib import Path

MIB = 1024 * 1024


def apply_memory_ceiling(ceiling_mb: int) -> int:
    """Cap this process's address space so its resident memory stays near `ceiling_mb`; the limit set."""
    size, resident = _mapped_and_resident()
    limit = ceiling_mb * MIB + max(0, size - resident)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def _mapped_and_resident() -> tuple[int, int]:
    """VmSize and VmRSS of this process, in bytes."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmSize"].split()[0]) * 1024, int(fields["VmRSS"].split()[0]) * 1024
