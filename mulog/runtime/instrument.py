"""One instrumentation path: an event worth knowing is one call that logs it
(the first few times, then every so often), counts it and feeds Prometheus.

Each program declares all its counters in one class (shipper/stats.py,
sink/counters.py), one line each, and gets them as one ``Instruments``:

    class MtgaCounters:
        events_consumed = counter("Events taken from Kafka")
        kafka_errors = event("Errors the Kafka client reported", "mtga")

    inst = Instruments.declared("mtga", MtgaCounters)
    inst.kafka_errors("kafka: %s", err)   # logged, counted, exported as mtga_kafka_errors_total
    inst.events_consumed.value += n       # hot paths only add to a number

``samples()`` gives every counter to the metrics server and ``values()`` to a
status snapshot, so nothing is counted that nobody can see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator


class Throttle:
    """Which occurrences of a repeated event are logged: the first ``first``,
    then every ``every``-th. ``reset()`` when the episode is over, so the next
    one is said again from its start."""

    __slots__ = ("n", "first", "every")

    def __init__(self, first: int = 10, every: int = 100):
        self.n = 0
        self.first = first
        self.every = every

    def __call__(self) -> bool:
        self.n += 1
        return self.n <= self.first or self.n % self.every == 0

    def reset(self) -> None:
        self.n = 0


class Counter:
    """A number that only grows, exported as ``<prefix>_<name>_total``."""

    __slots__ = ("name", "help", "value")

    def __init__(self, name: str, help_: str):
        self.name = name
        self.help = help_
        self.value = 0

    def add(self, n: int = 1) -> None:
        self.value += n


class Event(Counter):
    """A counted event with a log line; calling it counts it and logs it unless
    the throttle says the line was said often enough."""

    __slots__ = ("log", "level", "throttle")

    def __init__(self, name: str, help_: str, log: logging.Logger, level: int, first: int, every: int):
        super().__init__(name, help_)
        self.log = log
        self.level = level
        self.throttle = Throttle(first, every)

    def __call__(self, msg: str, *args, n: int = 1) -> bool:
        """Count ``n`` occurrences; returns whether the line was logged."""
        self.value += n
        if self.throttle():
            self.log.log(self.level, msg, *args, stacklevel=2, extra={"event": self.name, "count": self.value})
            return True
        return False


@dataclass(frozen=True)
class counter:  # noqa: N801 - read as a declaration: ``lines_read = counter("...")``
    """Declares a plain counter of a program (see ``Instruments.declared``)."""

    help: str


@dataclass(frozen=True)
class event:  # noqa: N801 - read as a declaration: ``lines_cut = event("...", "shipper.publisher")``
    """Declares a counted event said in the log ``logger`` (see ``Event``)."""

    help: str
    logger: str
    level: int = logging.WARNING
    first: int = 10
    every: int = 100


class Instruments:
    """The counters of one program."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._all: dict[str, Counter] = {}

    @classmethod
    def declared(cls, prefix: str, declarations: type) -> "Instruments":
        """The counters ``declarations`` (a class of ``counter`` and ``event``
        attributes) declares, each reachable as an attribute of the same name."""
        inst = cls(prefix)
        for name, d in vars(declarations).items():
            if isinstance(d, counter):
                setattr(inst, name, inst.counter(name, d.help))
            elif isinstance(d, event):
                setattr(inst, name, inst.event(name, d.help, logging.getLogger(d.logger), d.level, d.first, d.every))
        return inst

    def __getattr__(self, name: str):
        # only reached for a name that was not declared
        raise AttributeError(f"{self.__dict__.get('prefix')} declares no counter {name!r}")

    def _add(self, c: Counter) -> Counter:
        if c.name in self._all:
            raise ValueError(f"counter {c.name!r} defined twice")
        self._all[c.name] = c
        return c

    def counter(self, name: str, help_: str) -> Counter:
        return self._add(Counter(name, help_))

    def event(self, name: str, help_: str, log: logging.Logger, level: int = logging.WARNING,
              first: int = 10, every: int = 100) -> Event:
        return self._add(Event(name, help_, log, level, first, every))

    def values(self) -> dict[str, int]:
        return {name: c.value for name, c in self._all.items()}

    def samples(self) -> Iterator[tuple]:
        """Every counter as a metrics sample (see mulog.runtime.metrics)."""
        for c in self._all.values():
            yield (f"{self.prefix}_{c.name}", "counter", c.help, (), [((), c.value)])

    def samples_from(self, values: dict[str, int]) -> Iterator[tuple]:
        """As ``samples()``, from ``values()`` taken earlier: the figures of a
        snapshot, for a metrics server that must not read live counters."""
        for c in self._all.values():
            yield (f"{self.prefix}_{c.name}", "counter", c.help, (), [((), values.get(c.name, 0))])
