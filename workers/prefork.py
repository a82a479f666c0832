"""Keep a prefork pool child small: it shares the main process's pages until something writes to them.

The worker's main process imports everything (~100 MiB) and forks the pool children, which share those
pages until a process writes to one: the writer gets a copy, and the other keeps the original as its
own. Two such writers are avoided here, both measured (bench/memory.py --worker):
- the garbage collector: a full collection writes to the header of every object it visits. Celery runs
  one in the main process before forking each child, so with two children the first one ended up alone
  with the main process's objects as they were (53 MiB private against the second's 15), and a child's
  own first full collection would copy ~35 MiB of them too. Frozen objects are never visited, so the
  main process freezes what it holds just before each fork, as the gc module's documentation advises
  for servers that fork without exec;
- billiard's child start-up: with cffi installed, each child declared `prctl` through cffi's C parser,
  building the parser anew (3 MiB of a real child's private pages) unless the main process built it first.
"""

from __future__ import annotations

import gc
from contextlib import suppress
from typing import Any

import billiard.util
from celery.signals import worker_before_create_process


def share_with_children(**_: Any) -> None:
    """In the main process, just before a pool child is forked: leave what it holds for children to share."""
    # Builds cffi's parser here, once, for every child to inherit. OSError: not Linux, where billiard
    # sets no death signal in the children either. (Not in celery-types' stubs.)
    with suppress(OSError):
        billiard.util.get_pdeathsig()  # type: ignore[attr-defined]
    gc.collect()  # garbage now would never be collected once frozen
    gc.freeze()


def connect_prefork_memory() -> None:
    # Sent by the prefork pool in the main process before each child it creates, the replacements of
    # recycled children included; Celery's own gc.collect() right after it then finds nothing to do.
    worker_before_create_process.connect(share_with_children, weak=False)
