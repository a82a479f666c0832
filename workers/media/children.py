"""Run ffmpeg/ffprobe as bounded children: resource limits, a wall-clock timeout, no stdin."""

import shutil
import signal
import subprocess

from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits

_STDERR_KEPT = 2000
_KILLED_BY_LIMITS = {-signal.SIGXCPU, -signal.SIGKILL}


def limited(argv: list[str], limits: MediaLimits) -> list[str]:
    """argv run under util-linux prlimit with RLIMIT_AS and RLIMIT_CPU.

    prlimit rather than preexec_fn: preexec_fn runs Python between fork and exec, which can deadlock
    if another thread (a boto3 transfer pool, say) held a lock at fork time; prlimit sets the limits
    in its own process and then execs the tool.
    """
    prlimit = shutil.which("prlimit") or "prlimit"
    return [
        prlimit,
        f"--as={limits.child_memory_bytes}",
        f"--cpu={limits.child_cpu_seconds}",
        "--",
        *argv,
    ]


def run_limited(argv: list[str], limits: MediaLimits, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run argv bounded; a timeout or a limit kill is MediaRejected("timeout"), anything else returned."""
    try:
        # subprocess.run kills the child when the timeout expires and reaps it before raising.
        completed = subprocess.run(
            limited(argv, limits), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise MediaRejected("timeout", f"{argv[0]} ran longer than {timeout:g} s") from error
    if completed.returncode in _KILLED_BY_LIMITS:
        raise MediaRejected("timeout", f"{argv[0]} was stopped by its CPU limit")
    return completed


def stderr_tail(completed: subprocess.CompletedProcess[bytes]) -> str:
    """The end of a child's stderr, for an error's detail."""
    return completed.stderr[-_STDERR_KEPT:].decode("utf-8", "replace").strip()
