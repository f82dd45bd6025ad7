"""``RuntimeOptions``: how a runtime hosts its objects, one value validated once.

``open_runtime`` builds it from its keywords (or takes it whole as ``options=``); the
router, the actors, the alarms and the socket registry read it as it is, and the server
and the harness pass it on without unpacking it.
"""

from __future__ import annotations

import math
from typing import Literal, TypedDict

import attrs

from storage import Durability


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number, not {value!r}")


def _positive_or_none(
    instance: object, attribute: attrs.Attribute[float], value: float | None
) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    ):
        raise ValueError(f"{attribute.name} must be positive or None, not {value!r}")


def _count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, not {value!r}")


def _durability(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("full", "normal", "off"):
        raise ValueError(f"durability must be 'full', 'normal' or 'off', not {value!r}")


InputGateMode = Literal["open_on_await", "strict"]
"""When other events of an object may run while one of its handlers awaits: at any await
but its own storage (``"open_on_await"``, Durable Objects' model), or only while it awaits
another object (``"strict"``). docs/reference/concurrency.md."""

INPUT_GATE_MODES: tuple[InputGateMode, ...] = ("open_on_await", "strict")


def check_input_gate(value: object, where: str) -> None:
    """Raise a ValueError naming ``where`` unless ``value`` is an input gate mode."""
    if value not in INPUT_GATE_MODES:
        raise ValueError(f"{where} must be 'open_on_await' or 'strict', not {value!r}")


def _input_gate(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    check_input_gate(value, attribute.name)


def _fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1, not {value!r}")


@attrs.frozen(kw_only=True)
class RuntimeOptions:
    """Every setting of a runtime (``open_runtime``'s keywords; docs/reference/runtime.md).

    Raises:
        ValueError: a value out of its range (each message names the option).
    """

    durability: Durability = attrs.field(default="full", validator=_durability)
    """``"full"`` (fsync every commit), ``"normal"`` or ``"off"``."""
    idle_timeout: float = attrs.field(default=70.0, validator=_positive)
    """Seconds without events after which an object is evicted."""
    idle_connection_timeout: float | None = attrs.field(default=10.0,
                                                        validator=_positive_or_none)
    """Seconds without events after which a live object closes its SQLite connection."""
    max_live_objects: int = attrs.field(default=1_000, validator=_count)
    max_queued_per_object: int = attrs.field(default=1_000, validator=_count)
    event_timeout: float | None = attrs.field(default=30.0, validator=_positive_or_none)
    """Seconds one event may keep its object's gate closed before the object is reset
    (None: no limit)."""
    shutdown_grace: float = attrs.field(default=30.0, validator=_positive)
    max_concurrent_alarms: int = attrs.field(default=100, validator=_count)
    alarm_retry_jitter: float = attrs.field(default=0.25, validator=_fraction)
    max_websockets_per_object: int = attrs.field(default=32_768, validator=_count)
    input_gate: InputGateMode = attrs.field(default="open_on_await", validator=_input_gate)
    """Of classes that do not set their own ``input_gate``: ``"open_on_await"`` or
    ``"strict"``."""

    @property
    def event_time_limit(self) -> float:
        """``event_timeout``, with no limit as infinity (for deadlines)."""
        return math.inf if self.event_timeout is None else self.event_timeout

    @property
    def connection_time_limit(self) -> float:
        """``idle_connection_timeout``, with never as infinity (for deadlines)."""
        return math.inf if self.idle_connection_timeout is None else self.idle_connection_timeout


class RuntimeSettings(TypedDict, total=False):
    """``RuntimeOptions``' fields as keywords: what ``open_runtime(**settings)`` and the
    harness's ``dobox_runtime_options`` fixture accept (tests check they stay the same)."""

    durability: Durability
    idle_timeout: float
    idle_connection_timeout: float | None
    max_live_objects: int
    max_queued_per_object: int
    event_timeout: float | None
    shutdown_grace: float
    max_concurrent_alarms: int
    alarm_retry_jitter: float
    max_websockets_per_object: int
    input_gate: InputGateMode
