"""Exponential back-off, the one rule every retry in both programs follows: the
first wait, doubled after each failure up to a cap, back to the first wait after
a success."""

from __future__ import annotations


def delay(attempt: int, first: float, cap: float) -> float:
    """The wait before try number ``attempt`` + 1 (attempt 1: ``first``)."""
    return min(cap, first * (2 ** max(0, attempt - 1)))


class Backoff:
    """Waits of one retried action: ``next()`` gives the wait to use now and
    doubles the following one; ``reset()`` after a success."""

    __slots__ = ("first", "cap", "attempts")

    def __init__(self, first: float, cap: float):
        self.first = first
        self.cap = cap
        self.attempts = 0

    @property
    def current(self) -> float:
        """The wait ``next()`` will give."""
        return delay(self.attempts + 1, self.first, self.cap)

    def next(self) -> float:
        self.attempts += 1
        return delay(self.attempts, self.first, self.cap)

    def reset(self) -> None:
        self.attempts = 0
