"""What ``alarm(info)`` receives."""

from __future__ import annotations

import attrs


@attrs.frozen
class AlarmInfo:
    """``retry_count``: how many times this alarm already ran and raised (0 on a first
    attempt); ``is_retry``: ``retry_count > 0``."""

    retry_count: int
    is_retry: bool
