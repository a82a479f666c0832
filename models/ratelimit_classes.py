"""Rate-limit classes (docs/api.md) and how per-plan overrides from settings reshape their windows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WINDOW_SECONDS = {"perMinute": 60, "perHour": 3_600, "perDay": 86_400}

# class → window → requests allowed in any sliding window of that length.
DEFAULT_CLASSES: dict[str, dict[str, int]] = {
    "upload": {"perMinute": 20, "perHour": 100},
    "standard": {"perMinute": 5, "perHour": 15, "perDay": 50},
    "video": {"perMinute": 2, "perHour": 4, "perDay": 8},
    "ip": {"perMinute": 10, "perHour": 30, "perDay": 100},
}

# The override section that applies to every plan, and to unauthenticated (`ip`) requests.
ALL_PLANS = "default"

# Settings declare the class and window keys as Literal names, and a Mapping's key type is invariant.
Overrides = Mapping[str, Mapping[Any, Mapping[Any, int | None]]]


@dataclass(frozen=True)
class Window:
    name: str
    seconds: int
    limit: int


def windows_for(class_name: str, plan: str | None, overrides: Overrides) -> tuple[Window, ...]:
    """The windows of `class_name` for `plan`: defaults, then `default` overrides, then the plan's own.

    An override of `null` removes a window; the windows come back shortest first.
    """
    if class_name not in DEFAULT_CLASSES:
        raise KeyError(f"unknown rate-limit class {class_name!r}")
    limits: dict[str, int | None] = dict(DEFAULT_CLASSES[class_name])
    for section in (ALL_PLANS, plan):
        if section is not None:
            limits.update(overrides.get(section, {}).get(class_name, {}))
    return tuple(
        Window(name, seconds, limits[name])  # type: ignore[arg-type]
        for name, seconds in WINDOW_SECONDS.items()
        if limits.get(name) is not None
    )


def depends_on_plan(class_name: str, overrides: Overrides) -> bool:
    """Whether some plan has its own numbers for this class (else the caller's plan need not be read)."""
    return any(class_name in classes for plan, classes in overrides.items() if plan != ALL_PLANS)
