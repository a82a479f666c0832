"""The load test's arithmetic: step windows, percentiles, the saturation point, what is saturated."""

from __future__ import annotations

import sys

from bench.load.report import (
    EVENTS_PREFIX,
    TIME_TO_THUMBNAIL,
    Sample,
    Window,
    bottleneck,
    cpu_percent,
    held,
    percentile,
    remeasured,
    saturation,
    summarise_step,
)

PATCH = "PATCH /v1/projects/{id}/state"


def test_percentile_is_the_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.99) == 0.0


def test_a_step_counts_only_the_samples_inside_its_window():
    samples = [Sample(at, PATCH, 10.0, True) for at in (99.9, 100.0, 105.0, 109.9, 110.0)]
    step = summarise_step(samples, Window(users=10, start=100.0, end=110.0))
    assert step.api is not None
    assert step.api.count == 3
    assert step.api.per_second == 0.3
    assert step.endpoints[PATCH].count == 3


def test_the_stream_and_time_to_thumbnail_stay_out_of_the_api_figures():
    samples = [
        Sample(1.0, PATCH, 20.0, True),
        Sample(1.0, f"{EVENTS_PREFIX}GET /v1/events (opened)", 900.0, False),
        Sample(1.0, TIME_TO_THUMBNAIL, 1500.0, True),
    ]
    step = summarise_step(samples, Window(5, 0.0, 2.0))
    assert step.api is not None
    assert (step.api.count, step.api.errors, step.api.p99) == (1, 0, 20.0)
    assert step.thumbnail is not None
    assert step.thumbnail.p50 == 1500.0
    assert step.endpoints[f"{EVENTS_PREFIX}GET /v1/events (opened)"].errors == 1


def _step(users: int, times: list[float], failures: int = 0):
    samples = [Sample(0.5, PATCH, ms, True) for ms in times]
    samples += [Sample(0.5, "POST /v1/assets", 5.0, False) for _ in range(failures)]
    return summarise_step(samples, Window(users, 0.0, 1.0))


def test_saturation_is_the_last_step_held_before_the_first_that_is_not():
    steps = [_step(10, [50.0] * 100), _step(20, [100.0] * 100), _step(30, [300.0] * 100), _step(40, [60.0])]
    users_held, first = saturation(steps, 250.0)
    assert users_held == 20
    assert first is steps[2]


def test_one_error_ends_the_ramp_whatever_the_latency():
    steps = [_step(10, [50.0] * 100), _step(20, [50.0] * 100, failures=1)]
    assert held(steps[0], 250.0)
    assert not held(steps[1], 250.0)
    assert saturation(steps, 250.0) == (10, steps[1])


def test_a_step_held_when_measured_again_was_a_burst_not_the_saturation():
    steps = [_step(10, [50.0]), _step(20, [400.0]), _step(20, [90.0]), _step(30, [400.0]), _step(30, [300.0])]
    assert remeasured(steps, 1, 250.0)
    assert not remeasured(steps, 3, 250.0)
    assert saturation(steps, 250.0) == (20, steps[3])


def test_a_ramp_never_refused_holds_its_last_step():
    steps = [_step(10, [50.0]), _step(20, [60.0])]
    assert saturation(steps, 250.0) == (20, None)
    assert saturation([], 250.0) == (0, None)


def test_cpu_is_the_counters_growth_over_the_window_in_percent_of_one_core():
    cpu = cpu_percent({"API": (10.0, 25.0), "Redis": (1.0, 1.5)}, Window(10, 100.0, 120.0))
    assert cpu == {"API": 75.0, "Redis": 2.5}


def test_bottleneck_names_a_group_at_its_cores_and_a_busy_machine():
    cpu = {"API": 97.0, "PostgreSQL": 60.0, "images worker": 30.0, "Redis": 3.0}
    found = bottleneck(cpu, {"API": 1, "images worker": 2, "Redis": 1}, cores=2, machine=190.0)
    assert found[0] == "API at 97 % of its 100 %"
    assert found[1].startswith("the machine's 2 cores (190 % of 200 %; API 97 %, PostgreSQL 60 %")
    assert bottleneck(cpu, {"API": 2}, cores=2, machine=120.0) == []


def test_the_summariser_brings_no_load_tool_with_it():
    assert "gevent" not in sys.modules
    assert "locust" not in sys.modules
