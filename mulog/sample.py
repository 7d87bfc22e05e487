"""Realistic sample game events (about 35 fields, ~640 bytes as JSON), shaped
like SPEC's example. Used by the demo, the benchmarks and the tests."""

from __future__ import annotations

import random
import time
from typing import Iterator

import msgspec

LOG_NAMES = ("log_item", "log_login", "log_logout", "log_pay", "log_role_up", "log_battle")
# log_names the shipped settings give more lines of ThinkingData's data model:
# a first event with user_setOnce, and user_add / user_set beside the track line
MODEL_LOG_NAMES = ("log_role_create", "log_recharge")
CHANNELS = ("appstore", "googleplay", "taptap", "huawei", "official")
OSES = ("ios", "android")
LANGS = ("zh-CN", "en-US", "ja-JP", "ko-KR")

_enc = msgspec.json.Encoder()


def recent_base() -> int:
    """Midnight (UTC) two days ago: sample events carry times from there on, within
    the window ThinkingData takes (3 years back to 3 days ahead) and the same all day."""
    return (int(time.time()) // 86400 - 2) * 86400


def event(rnd: random.Random, n: int, log_name: str | None = None, mtime: int | None = None) -> dict:
    """One bare ``logs`` object; ``n`` makes it unique (the log_name is the caller's); its
    ``mtime`` is ``n`` seconds (modulo two days) after recent_base()."""
    role = 6001310000000 + rnd.randrange(10_000_000)
    gold = rnd.randrange(10_000_000)
    dia = rnd.randrange(100_000)
    return {
        "account_name": str(4866000000 + rnd.randrange(100_000_000)),
        "action": 2000 + rnd.randrange(500),
        "agent_id": rnd.choice((36, 37, 38, 52)),
        "amount": rnd.randrange(1, 100),
        "item_id": 31100000 + rnd.randrange(100_000),
        "mtime": mtime if mtime is not None else recent_base() + n % 172800,
        "role_id": role,
        "role_level": rnd.randrange(1, 900),
        "server_id": 5000 + rnd.randrange(40),
        "via": f"{rnd.choice((36, 37))}|{rnd.randrange(1000, 9999)}",
        "ip": f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}",
        "role_name": f"hero_{role % 100000}",
        "vip_level": rnd.randrange(0, 16),
        "channel": rnd.choice(CHANNELS),
        "device_id": f"{rnd.getrandbits(64):016x}",
        "os": rnd.choice(OSES),
        "platform": rnd.randrange(1, 4),
        "gold_before": gold,
        "gold_after": gold + rnd.randrange(-1000, 1000),
        "diamond_before": dia,
        "diamond_after": dia + rnd.randrange(-100, 100),
        "guild_id": rnd.randrange(0, 50_000),
        "map_id": rnd.randrange(1000, 1100),
        "scene_id": rnd.randrange(1, 300),
        "battle_power": rnd.randrange(1000, 5_000_000),
        "exp": rnd.randrange(0, 10_000_000),
        "reason": rnd.choice(("quest", "shop", "mail", "drop", "gm")),
        "order_id": f"ord{n:012d}",
        "currency": "CNY",
        "pay_amount": round(rnd.random() * 648, 2),
        "is_first": rnd.random() < 0.1,
        "client_version": f"1.{rnd.randrange(10)}.{rnd.randrange(100)}",
        "lang": rnd.choice(LANGS),
        "session_id": f"{rnd.getrandbits(48):012x}",
        "login_days": rnd.randrange(1, 1000),
    }


def bare_lines(count: int, seed: int = 1, log_name: str | None = None, start: int = 0) -> Iterator[bytes]:
    """JSON lines (no newline) of bare events, as a game server writes them."""
    rnd = random.Random(seed)
    for n in range(start, start + count):
        yield _enc.encode(event(rnd, n, log_name))


def envelopes(count: int, app_ids=(24,), seed: int = 1, start: int = 0) -> Iterator[bytes]:
    """JSON envelopes ``{"headers": {...}, "logs": {...}}`` over several apps and log_names."""
    rnd = random.Random(seed)
    for n in range(start, start + count):
        ln = LOG_NAMES[n % len(LOG_NAMES)]
        app = app_ids[n % len(app_ids)]
        yield _enc.encode({"headers": {"app_id": app, "log_name": ln}, "logs": event(rnd, n, ln)})
