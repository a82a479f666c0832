"""The load test's arithmetic, free of locust and gevent: step windows, percentiles, the saturation point.

`bench/load/locustfile.py` records every request as a `Sample`; `bench/load/run.py` samples each process's
CPU time from /proc. Both are cut into the windows of the ramp's steps here, so the locustfile's stop rule
and the printed report use the same figures (and a unit test can check them without a server).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# The stream's own figures, not requests to the API: kept out of the API's p99 and error count.
EVENTS_PREFIX = "EVENTS "
TIME_TO_THUMBNAIL = "upload -> ready (event)"


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds when the answer (or the failure) arrived
    name: str  # "PATCH /v1/projects/{id}/state", ...
    ms: float
    ok: bool


@dataclass(frozen=True)
class Window:
    users: int
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class EndpointFigures:
    count: int
    per_second: float
    p50: float
    p99: float
    errors: int


@dataclass
class StepFigures:
    users: int
    seconds: float
    endpoints: dict[str, EndpointFigures] = field(default_factory=dict)
    api: EndpointFigures | None = None
    thumbnail: EndpointFigures | None = None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (0 for no values): the value at or below which `fraction` of them lie."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil, at least the first
    return ordered[min(len(ordered), int(rank)) - 1]


def is_api(name: str) -> bool:
    return not name.startswith(EVENTS_PREFIX) and name != TIME_TO_THUMBNAIL


def figures(samples: Sequence[Sample], seconds: float) -> EndpointFigures:
    times = [sample.ms for sample in samples]
    return EndpointFigures(
        count=len(samples),
        per_second=len(samples) / seconds if seconds > 0 else 0.0,
        p50=percentile(times, 0.50),
        p99=percentile(times, 0.99),
        errors=sum(not sample.ok for sample in samples),
    )


def summarise_step(samples: Iterable[Sample], window: Window) -> StepFigures:
    """Per endpoint, all API requests together, and time-to-thumbnail, over the samples inside `window`."""
    inside = [sample for sample in samples if window.start <= sample.at < window.end]
    by_name: dict[str, list[Sample]] = defaultdict(list)
    for sample in inside:
        by_name[sample.name].append(sample)
    step = StepFigures(users=window.users, seconds=window.seconds)
    step.endpoints = {name: figures(group, window.seconds) for name, group in sorted(by_name.items())}
    step.api = figures([sample for sample in inside if is_api(sample.name)], window.seconds)
    if TIME_TO_THUMBNAIL in by_name:
        step.thumbnail = step.endpoints[TIME_TO_THUMBNAIL]
    return step


def held(step: StepFigures, p99_limit_ms: float) -> bool:
    """A step is held when the API answered every request, with p99 at most the limit."""
    api = step.api
    return api is not None and api.count > 0 and api.errors == 0 and api.p99 <= p99_limit_ms


def remeasured(steps: Sequence[StepFigures], index: int, p99_limit_ms: float) -> bool:
    """Step `index` was not held, but the same users, measured again at once, were: a passing burst."""
    following = steps[index + 1] if index + 1 < len(steps) else None
    return (
        not held(steps[index], p99_limit_ms)
        and following is not None
        and following.users == steps[index].users
        and held(following, p99_limit_ms)
    )


def saturation(steps: Sequence[StepFigures], p99_limit_ms: float) -> tuple[int, StepFigures | None]:
    """The most users held before the first step that was not held (0 if none), and that step (or None).

    A step not held whose users were held when measured again right after (the ramp repeats a step once
    before it stops) counts as held: a neighbour's burst on a shared machine is not the saturation point.
    """
    users_held = 0
    for index, step in enumerate(steps):
        if not held(step, p99_limit_ms) and not remeasured(steps, index, p99_limit_ms):
            return users_held, step
        users_held = max(users_held, step.users if held(step, p99_limit_ms) else 0)
    return users_held, None


def cpu_percent(cpu_seconds: dict[str, tuple[float, float]], window: Window) -> dict[str, float]:
    """Per process group, its CPU use over `window` in % of one core, from (start, end) CPU seconds."""
    return {
        group: 100.0 * (end - start) / window.seconds if window.seconds > 0 else 0.0
        for group, (start, end) in cpu_seconds.items()
    }


def bottleneck(cpu: dict[str, float], capacity: dict[str, int], cores: int, machine: float) -> list[str]:
    """What is saturated: each group of Python processes (one core each at most: the GIL) near its
    `capacity` in cores, and the machine when all its cores are near busy; most loaded first."""
    found = []
    for group, processes in capacity.items():
        if cpu.get(group, 0.0) >= 90.0 * processes:
            found.append(f"{group} at {cpu[group]:.0f} % of its {100 * processes} %")
    if machine >= 90.0 * cores:
        top = sorted(((value, group) for group, value in cpu.items()), reverse=True)[:3]
        leaders = ", ".join(f"{group} {value:.0f} %" for value, group in top)
        found.append(f"the machine's {cores} cores ({machine:.0f} % of {100 * cores} %; {leaders})")
    return found
