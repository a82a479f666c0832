"""The task-process memory ceiling: allocations past it raise MemoryError and the process goes on."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import ROOT

SCRIPT = """
from workers.memory import apply_memory_ceiling
apply_memory_ceiling({ceiling})
try:
    too_much = bytearray({ceiling} * 1024 * 1024)
except MemoryError:
    print("refused")
small = bytearray(16 * 1024 * 1024)
print("went on", len(small))
"""


def test_an_allocation_past_the_ceiling_raises_memory_error_and_smaller_ones_still_succeed():
    script = SCRIPT.format(ceiling=128)
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )

    assert output.stdout.split("\n")[:2] == ["refused", f"went on {16 * 1024 * 1024}"]
