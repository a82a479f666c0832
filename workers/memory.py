"""The memory ceiling of one task process: an allocation past it raises MemoryError.

RLIMIT_AS is the one limit the kernel enforces at allocation time for every kind of memory Pillow, numpy
and Python use (brk, mmap), so a task that would outgrow it gets MemoryError and unwinds instead of the
process being killed. It bounds the address space, not the resident set, and a pool child maps much that
is not its own: just after the fork a worker child measured 253 MiB VmSize for 97 MiB VmRSS, nearly all
of it pages shared with the worker's main process (libraries, the imported code) and reservations it
never touched. So the limit is the ceiling plus everything mapped at start but the child's private
resident pages: what the task allocates, together with the child's own pages, stays under the ceiling.
The shared part (~90 MiB, once per host, not per child) comes on top of a child's RSS.
"""

from __future__ import annotations

import resource
from pathlib import Path

MIB = 1024 * 1024


def apply_memory_ceiling(ceiling_mb: int) -> int:
    """Cap this process's address space so its own memory stays under `ceiling_mb`; the limit set."""
    limit = ceiling_mb * MIB + max(0, _mapped() - _private_resident())
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def _mapped() -> int:
    """VmSize: the address space this process has mapped, in bytes."""
    return _kib_field(Path("/proc/self/status"), "VmSize") * 1024


def _private_resident() -> int:
    """Resident pages no other process shares (clean or dirty), in bytes."""
    rollup = Path("/proc/self/smaps_rollup")
    return (_kib_field(rollup, "Private_Clean") + _kib_field(rollup, "Private_Dirty")) * 1024


def _kib_field(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise LookupError(f"{name} not in {path}")
