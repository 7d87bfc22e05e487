"""Event times for ``#time``: time zones as settings name them, and a fast
formatter of epoch seconds in a zone."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo


def parse_zone(text: str) -> dt.tzinfo:
    m = re.match(r"^([+-])(\d{2}):?(\d{2})$", text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    if text.upper() in ("UTC", "Z"):
        return dt.timezone.utc
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time_zone: expected +HH:MM, UTC or a zone name like Asia/Shanghai, got {text!r}") from None


_EPOCH_DAY = dt.date(1970, 1, 1)


class TimeRangeError(ValueError):
    pass


class SecondFormatter:
    """Formats epoch seconds as ``b"YYYY-MM-DD HH:MM:SS"`` in a zone, fast:
    the date per day and the zone offset per quarter hour are cached."""

    def __init__(self, tz: dt.tzinfo):
        self.tz = tz
        self.fixed = int(tz.utcoffset(None).total_seconds()) if isinstance(tz, dt.timezone) else None
        self._days: dict[int, bytes] = {}
        self._offsets: dict[int, int] = {}
        self._last = (None, b"")

    def _offset(self, sec: int) -> int:
        q = sec // 900
        off = self._offsets.get(q)
        if off is None:
            off = self._offsets[q] = int(dt.datetime.fromtimestamp(q * 900, self.tz).utcoffset().total_seconds())
            if len(self._offsets) > 4096:
                self._offsets.clear()
        return off

    def __call__(self, sec: int) -> bytes:
        last = self._last
        if last[0] == sec:
            return last[1]
        try:
            local = sec + (self.fixed if self.fixed is not None else self._offset(sec))
        except (OverflowError, ValueError, OSError):
            raise TimeRangeError(f"{sec} seconds is out of range") from None
        day, sod = divmod(local, 86400)
        d = self._days.get(day)
        if d is None:
            try:
                d = (_EPOCH_DAY + dt.timedelta(days=day)).strftime("%Y-%m-%d ").encode()
            except (OverflowError, ValueError):
                raise TimeRangeError(f"{sec} seconds is out of range") from None
            if len(self._days) > 1024:
                self._days.clear()
            self._days[day] = d
        h, rem = divmod(sod, 3600)
        out = b"%s%02d:%02d:%02d" % (d, h, rem // 60, rem % 60)
        self._last = (sec, out)
        return out
