"""The Kafka client's complaints, folded: an unreachable broker makes librdkafka
repeat the same error many times a second (through its log and its error
callback); a day of that would push everything else out of the rotating log.

The first occurrence of an error is logged at once; repeats of the same kind
from the same broker are counted, and said at most once per ``window`` seconds
with how many were folded. When the client's statistics show a broker that
failed up again, one line says it answers again and how long it was away.

    fold = Fold(logging.getLogger("mtga.kafka"))
    conf.update(fold.client_conf())        # logger, stats_cb, statistics.interval.ms
    # in error_cb: fold.error(err)

Used by both programs (the mtga consumer, the shipper's producer); it never
imports the Kafka client: it sees only its log calls, errors and statistics.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable, Optional

import msgspec

WINDOW_S = 60.0
STATS_MS = 2000  # how often the client reports its brokers' states (unless configured)
MAX_KEYS = 1000
ALL = "*"  # an error about every broker ("1/1 brokers are down")

# facilities of librdkafka's log lines and error codes that mean "this broker is away"
AWAY_FACILITIES = frozenset(("FAIL",))
AWAY_CODES = frozenset(("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT"))

_LINE = re.compile(r"^(?P<fac>[A-Z][A-Z0-9_]*) \[[^\]]*\] (?:\[thrd:(?P<thrd>[^\]]*)\]: )?(?P<rest>.*)$", re.S)
_BROKER = re.compile(r"^(?:[a-z_]+://)?(?P<node>[^\s/]+:\d+)/[A-Za-z0-9_-]+: ")
_NODE = re.compile(r"^(?:[a-z_]+://)?(?P<node>[^\s/]+:\d+)/")
_NOISE = re.compile(r"\s*\((?:after \d|\d+ identical)[^)]*\)")
_DIGITS = re.compile(r"\d+")


def parse(text: str, thread: str = "") -> tuple[str, str]:
    """(broker, kind) of a client message: the broker as host:port (``ALL`` when
    none is named), the kind as the text without broker, timings and numbers."""
    m = _BROKER.match(text)
    if m:
        node, text = m["node"], text[m.end():]
    else:
        t = _NODE.match(thread)
        node = t["node"] if t else ALL
    kind = _DIGITS.sub("N", _NOISE.sub("", text)).strip()
    return node, kind[:160]


class _Key:
    __slots__ = ("said_at", "folded", "level", "text")

    def __init__(self, said_at: float, level: int, text: str):
        self.said_at = said_at
        self.folded = 0
        self.level = level
        self.text = text


class _BrokerStats(msgspec.Struct):
    nodename: str = ""
    state: str = ""


class _Stats(msgspec.Struct):
    brokers: dict[str, _BrokerStats] = {}


_stats_decoder = msgspec.json.Decoder(_Stats)


class Fold:
    """The folding of one client's errors into ``log``."""

    def __init__(self, log: logging.Logger, window: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.log = log
        self.window = window
        self.clock = clock
        self.keys: dict[tuple[str, str], _Key] = {}
        self.away: dict[str, float] = {}  # broker -> when it first failed in this episode
        self.lock = threading.Lock()

    # ---------------------------------------------------------------- inputs
    def client_conf(self, conf: Optional[dict] = None) -> dict:
        """The settings a client needs for this: its logger, its statistics."""
        out = {"logger": _ClientLogger(self), "stats_cb": self.stats}
        if "statistics.interval.ms" not in (conf or {}):  # 0 there: no statistics, no "answers again"
            out["statistics.interval.ms"] = STATS_MS
        return out

    def client_log(self, level: int, msg: str, *args) -> None:
        """A log call of the client (``logger.log(level, "%s [%s] %s", fac, name, text)``)."""
        if level < logging.WARNING:
            self.log.log(level, msg, *args)
            return
        text = msg % args if args else msg
        m = _LINE.match(text)
        if m:
            node, kind = parse(m["rest"], m["thrd"] or "")
            fac = m["fac"]
        else:
            node, kind = parse(text)
            fac = ""
        self.occurred(node, kind, level, text, fac in AWAY_FACILITIES)

    def error(self, err, level: int = logging.WARNING) -> None:
        """An error the client's ``error_cb`` reported (a KafkaError)."""
        name, text = err.name(), err.str()
        node, kind = parse(text)
        self.occurred(node, kind, level, f"Kafka client error {name}: {text}", name in AWAY_CODES)

    def stats(self, js: str) -> None:
        """The client's statistics (``stats_cb``): brokers seen up end their episode."""
        try:
            st = _stats_decoder.decode(js)
        except (msgspec.DecodeError, ValueError):
            return
        up = {b.nodename for b in st.brokers.values() if b.state == "UP" and b.nodename}
        for node in up:
            self.answered(node)
        if up:
            self.answered(ALL)
        self.tick()

    # ---------------------------------------------------------------- folding
    def occurred(self, node: str, kind: str, level: int, text: str, away: bool = False) -> bool:
        """One occurrence; returns whether it was logged (else it was folded)."""
        now = self.clock()
        with self.lock:
            if away:
                self.away.setdefault(node, now)
            key = self.keys.get((node, kind))
            if key is None:
                if len(self.keys) >= MAX_KEYS:
                    self.keys.pop(next(iter(self.keys)))
                self.keys[(node, kind)] = _Key(now, level, text)
                folded = 0
            elif now - key.said_at >= self.window:
                folded, since = key.folded, now - key.said_at
                key.folded, key.said_at, key.text = 0, now, text
            else:
                key.folded += 1
                key.text, key.level = text, max(key.level, level)
                return False
        self._say(level, text, node, folded, since if folded else 0.0)
        return True

    def tick(self) -> None:
        """Say the repeats of kinds that went quiet for a whole window."""
        now = self.clock()
        due = []
        with self.lock:
            for (node, _), key in self.keys.items():
                if key.folded and now - key.said_at >= self.window:
                    due.append((key.level, key.text, node, key.folded, now - key.said_at))
                    key.folded, key.said_at = 0, now
        for level, text, node, folded, since in due:
            self._say(level, text, node, folded, since)

    def answered(self, node: str) -> None:
        """``node`` is up: if it was away, say so once, with for how long."""
        now = self.clock()
        with self.lock:
            since = self.away.pop(node, None)
            if since is None:
                return
            gone = [k for k in self.keys if k[0] == node]
            folded = sum(self.keys.pop(k).folded for k in gone)
        away = now - since
        extra = {"broker": node, "away_s": round(away, 1), "folded": folded}
        if node == ALL:
            self.log.info("Kafka brokers answer again: away for %.0fs (%d repeated errors folded)", away, folded,
                          extra=extra)
        else:
            self.log.info("Kafka broker %s answers again: away for %.0fs (%d repeated errors folded)", node, away,
                          folded, extra=extra)

    def _say(self, level: int, text: str, node: str, folded: int, since: float) -> None:
        extra = {"broker": node, "folded": folded}
        if folded:
            self.log.log(level, "%s (and %d more like it in the last %.0fs)", text, folded, since, extra=extra)
        else:
            self.log.log(level, "%s", text, extra=extra)


class _ClientLogger:
    """What the client is given as its ``logger``: its log calls go through the fold."""

    __slots__ = ("fold",)

    def __init__(self, fold: Fold):
        self.fold = fold

    def log(self, level: int, msg: str, *args) -> None:
        self.fold.client_log(level, msg, *args)


__all__ = ["Fold", "parse", "ALL", "WINDOW_S"]
