"""The periodic timers of a program's loop.

    checkpoint = Every(conf.checkpoint_interval_s, now)
    ...
    if checkpoint.due(now):      # at most once per interval, never in a burst
        save()

A timer is due once its interval has passed since it was last due (or since it
was made); being late does not make it due twice. ``interval`` may change at
any time (a configuration reload): the next due time keeps its place until it
comes.
"""

from __future__ import annotations


class Every:
    """A timer of the loop: ``due(now)`` is True once per ``interval`` seconds."""

    __slots__ = ("interval", "next")

    def __init__(self, interval: float, now: float, first: float | None = None):
        """``first``: when it is due first (default: one interval from ``now``)."""
        self.interval = interval
        self.next = now + interval if first is None else first

    def due(self, now: float) -> bool:
        if now < self.next:
            return False
        self.next = now + self.interval
        return True
