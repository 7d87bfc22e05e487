"""The transform: one Kafka event in, one ThinkingData track line out (or a
reason it was filtered or failed). No I/O: per-app settings come from an
injected lookup. Not pure: a ``Transformer`` holds the type guard, which learns
each new property's type from the first value it meets (the loop stores what it
learned, in batch order), the exactly-once marks it was given, and the plans it
cached.

Output line, one JSON object: ``{"#type":"track","#event_name":"t_log_item",
"#time":"2020-12-17 13:50:43","#account_id":"6001310009300","#ip":"10.0.0.1",
"#uuid":"...","properties":{...the event's fields...}}``; an event whose rule
says more gives the lines of sink/ta/model.py. ``#account_id``, ``#distinct_id``
and ``#ip`` are left out when missing, null or empty, as ThinkingData's SDKs do
(to TA an empty text is a value); one of the two ids must be there.

Every line keeps ThinkingData's data rules (sink/ta/rules.py) and the type
guard (sink/ta/typeguard.py); what breaks them fails, or is fixed where the app's
settings say so (counted in ``fixed``).

Speed: most events are flat objects whose keys are valid property names. They
are decoded straight into a typed mapping: msgspec checks in C that every value
is a text short enough for 2 KB, a number within +-9E15, a boolean, a list of
at most 500 of those, or an object of at most 100 of those. What the keys and
the value types mean (names, cases, the kinds learned, pinned properties) is
checked once per distinct (key layout, value types) and cached as a plan; the
mapping is then re-encoded as ``properties``. Anything else (nulls, deeper
nesting, keys that settings coerce, rename or drop, a value of another kind
than learned) takes the exact path, which rebuilds the properties field by
field and names what is wrong.

Failure reasons are ``"<code>: <detail>"``; the codes are sink.ta.rules.REASONS.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from typing import Callable, Optional, Union

import msgspec

from sink.ta.batch import DUPLICATE, FAILED, FILTERED, OK, Item, Outcome
from sink.ta.events import BOM, decode
from sink.ta.resolve import FilteredOnly, resolve
from sink.ta.model import NoLine, event_lines, event_table, named
from sink.ta.properties import build_properties, event_time, id_json, time_window, zone_offset
from sink.ta.settings import AppSettings, Problem, Rule
from sink.ta.plans import as_they_are
from sink.ta.rules import FUTURE_S as _FUTURE_S, PAST_S as _PAST_S, Fail, short_reason
from sink.ta.times import TimeRangeError
from sink.ta.typed import UNSET, decode_envelope, shape
from sink.ta.typeguard import TypeGuard
from sink.ta.uuids import read_headers, source_key, uuid_of


_encode = msgspec.json.encode
Lookup = Callable[[str], Union[AppSettings, Problem]]


class Transformer:
    """Turns events into track lines with the settings ``lookup`` gives."""

    def __init__(self, lookup: Lookup, uuid: bool = True, clock: Callable[[], float] = time.time,
                 guard: Optional[TypeGuard] = None, dedupe: bool = False):
        self.lookup = lookup
        self.uuid = uuid
        self.clock = clock
        self.dedupe = dedupe  # skip an event at or below its source's mark (mtga's pool; not a lone transform)
        # the exactly-once marks as this process knows them (a cache: the loop's, sink/pipeline/marks.py, decide):
        # stream -> [source key, highest position handled, first and last handled since take_sources()]
        self.sources: dict[tuple, list] = {}
        self.preset: dict[bytes, int] = {}  # source key -> the loop's mark, for a stream not in ``sources`` yet
        self.done: dict = {}  # source key -> positions above its mark handled before an unclean stop (the loop's)
        self.touched: list = []
        self.guard = guard if guard is not None else TypeGuard()
        self.fixed: Counter = Counter()  # rule code -> events fixed as their app's settings say
        self._fixing: Counter = Counter()  # the fixes of the event being transformed: counted once it is written

    def take_sources(self) -> dict:
        """Source key -> (first, last) position handled since the last call."""
        out = {}
        for st in self.touched:
            out[st[0]] = (st[2], st[3])
            st[2] = -1
        self.touched = []
        return out

    def reset_marks(self, marks: Optional[dict] = None) -> None:
        """Forget the marks (a batch was dropped unwritten: its events come again),
        or take the loop's (``marks``: source key -> position)."""
        self.sources = {}
        self.touched = []
        self.preset = dict(marks) if marks else {}

    def take_fixed(self) -> dict:
        out, self.fixed = dict(self.fixed), Counter()
        return out

    def __call__(self, payload: bytes, headers: Optional[list], topic: str, partition: int, offset: int):
        """-> (OK, app_id, line) | (FILTERED, app_id, why) | (FAILED, app_id or None, reason)."""
        return self.run_batch([Item(payload, headers, topic, partition, offset)])[0]

    def run_batch(self, items) -> list:
        """Transform ``batch.Item``s, in order: one (kind, app, line | why | reason)
        per item (see ``outcome`` for the grouped form mtga writes)."""
        return self._run(items, None, 0)

    def outcome(self, items, base: int = 0) -> Outcome:
        """Transform ``batch.Item``s and group the results into a ``batch.Outcome``
        (``base``: the index of the first item in the whole batch), in one pass:
        the lines of each app, the failures and the counts; ``fixed`` and
        ``sources`` are taken (``take_fixed``, ``take_sources``)."""
        groups: dict = {}
        o = self._run(items, groups, base)
        o.apps = {app: [[_joined(lines)], len(idx), idx] for app, (lines, idx) in groups.items()}
        o.fixed, o.sources = self.take_fixed(), self.take_sources()
        return o

    def _run(self, items, groups: Optional[dict], base: int):
        """The loop of ``run_batch`` (``groups`` None: the results as a list) and
        of ``outcome`` (the OK lines into ``groups``: app -> (lines, indexes)).

        Settings are looked up once per (app, log_name) per batch, and the clock
        read once, which keeps the per-event work to the event itself.
        """
        now = self.clock()
        rules: dict = {}
        out = []
        append = out.append
        one = self._one
        fixing = self._fixing
        failures = []
        filtered = duplicates = 0
        i = base - 1
        for it in items:
            i += 1
            try:
                r = one(it.payload, it.headers, it.topic, it.partition, it.offset, now, rules)
            except Fail as e:
                r = (FAILED, getattr(e, "app_id", None), str(e))
            except Exception as e:  # a case no rule foresaw: this event fails, the daemon goes on
                r = (FAILED, None, short_reason(f"internal: {type(e).__name__}: {e}"))
            if fixing:
                if r[0] == OK:
                    self.fixed.update(fixing)
                fixing.clear()
            if groups is None:
                append(r)
                continue
            kind, app, value = r
            if kind == OK:
                g = groups.get(app)
                if g is None:
                    g = groups[app] = ([], array("I"))
                g[0].append(value)
                g[1].append(i)
            elif kind == FILTERED:
                filtered += 1
            elif kind == DUPLICATE:
                duplicates += 1
            else:
                failures.append((i, app, value))
        if groups is None:
            return out
        return Outcome({}, failures, filtered, None, None, None, duplicates)

    def _one(self, payload, headers, topic, partition, offset, now, rules):
        if headers:
            app_id, log_name, stream, pos = read_headers(headers)
            if stream is not None:
                offset = pos  # the line's byte offset in its file: its position in its source
        else:
            app_id = log_name = stream = None
        if stream is None:
            stream = (topic, partition)
        st = self.sources.get(stream)
        if st is None:
            st = self._source(stream)
        if offset > st[1]:
            if self.done and self.dedupe and offset in self.done.get(st[0], ()):
                return _DUPLICATE  # handled after the last checkpoint before an unclean stop
            st[1] = offset
            if st[2] < 0:
                st[2] = offset
                self.touched.append(st)
            st[3] = offset
        elif self.dedupe:
            return _DUPLICATE  # at or below its source's mark: handled already
        skey = st[0]
        if payload[:3] == BOM:
            payload = payload[3:]
        fit = None
        if app_id is None:
            try:
                env = decode_envelope(payload)
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                env = None
            if env is not None and type(env.headers.get("app_id")) in _PLAIN \
                    and type(env.headers.get("log_name")) in _PLAIN:
                fit = self._fit(env.headers["app_id"], env.headers["log_name"], env.logs, rules)
        elif type(app_id) in _PLAIN and type(log_name) in _PLAIN:
            fit = self._fit(app_id, log_name, payload, rules)
        if fit is not None:
            app, settings, rule, shp, logs = fit
        else:
            logs, app_id, log_name, flat = decode(payload, app_id, log_name)
            if type(app_id) in _PLAIN and type(log_name) in _PLAIN:
                key = (app_id, log_name)
                hit = rules.get(key)
                if hit is None:
                    hit = rules[key] = resolve(self.lookup, app_id, log_name)
            else:  # 24.0 == 24 and True == 1 must not share a cached rule; a list is not even hashable
                hit = resolve(self.lookup, app_id, log_name)
            app, settings, rule = hit
            if rule is None:
                _fail_app(app, settings)  # settings holds the reason
        if settings is not None:  # the app filters (by log_name only, on the typed path)
            why = settings.filtered(rule.log_name, logs if fit is None else None)
            if why is not None:
                return (FILTERED, app, why)
        try:
            if fit is not None:
                return (OK, app, self._typed(app, rule, shp, logs, offset, skey, now))
            return (OK, app, self._line(app, rule, logs, flat, offset, skey, now))
        except Fail as e:
            e.app_id = app
            raise
        except NoLine as e:
            return (FILTERED, app, str(e))
        except TimeRangeError as e:
            err = Fail(f"time: field {rule.time_field!r}: {e}")
            err.app_id = app
            raise err from None

    def _fit(self, app_id, log_name, raw, rules):
        """The typed path (sink/ta/typed.py): (app, settings, rule, shape, the Struct
        decoded), or None when the event does not fit its rule's Struct (the dict
        path takes it)."""
        key = (app_id, log_name)
        hit = rules.get(key)
        if hit is None:
            hit = rules[key] = resolve(self.lookup, app_id, log_name)
        app, settings, rule = hit
        if rule is None or type(rule) is not Rule or rule.model is not None or (settings is not None and settings.where):
            return None
        guard = self.guard
        shp = rule.shape
        if rule.shape_for != guard.changes:
            shp = rule.shape = shape(rule, guard.kinds.get(app) or {}, guard.spelling.get(app) or {}, guard.changes) \
                if named(guard, app, rule) else None
            rule.shape_for = guard.changes
        if shp is None:
            return None
        try:
            return app, settings, rule, shp, shp.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None

    def _source(self, stream: tuple) -> list:
        if len(self.sources) > 100_000:
            self.sources = {}
            self.touched = []  # their positions are in the loop's verification already
        key = source_key(stream)
        st = self.sources[stream] = [key, self.preset.get(key, -1), -1, -1]
        return st

    def _typed(self, app: str, rule: Rule, shp, s, offset, key, now) -> bytes:
        """The line of an event decoded into its rule's Struct ``s``."""
        a = shp.account
        if a is not None and (v := getattr(s, a)) is not UNSET:
            acc = b'"%d"' % v if type(v) is int else id_json(v, rule.account_field)
        else:
            acc = None
        a = shp.distinct
        did = None if a is None else id_json(_value(s, a), rule.distinct_field)
        if acc is None and did is None:
            raise Fail(f"identity: #account_id (field {rule.account_field!r}) and #distinct_id "
                       f"(field {rule.distinct_field!r}) are both empty")
        a = shp.ip
        ip = None if a is None else getattr(s, a)
        if type(ip) is str:
            ip = _encode(ip) if ip else None
        elif ip is UNSET:
            ip = None
        elif ip is not None:
            raise Fail(f"property_type: ip field {rule.ip_field!r} is a {type(ip).__name__}, expected a string")
        a = shp.time
        sec = None if a is None else getattr(s, a)
        if type(sec) is int and rule.seconds_field is not None:
            tm = rule.seconds(sec)
        elif rule.time_field is None or sec is UNSET:
            tm, sec = rule.seconds(int(now)), None
        else:
            tm, sec = event_time(rule, {rule.time_field: sec}, now)
        if sec is not None and not now - _PAST_S <= sec <= now + _FUTURE_S:
            tm = time_window(rule, tm, sec, now, self._fixing)
            sec = None  # fixed: #time is the processing time, and #zone_offset is its offset
        props = _encode(s)
        if rule.zone_offset:
            first = b'"#zone_offset":%s,' % zone_offset(rule, sec, now)
            props = b"{" + first + props[1:] if len(props) > 2 else b"{" + first[:-1] + b"}"
        return self._assemble(rule, tm, acc, did, ip, props, offset, key)

    def _assemble(self, rule, tm, acc, did, ip, props, offset, key) -> bytes:
        """The line; an id or ``#ip`` that is empty (None) is left out, as
        ThinkingData's SDKs do (an empty text would be an id to TA)."""
        if did is None:  # the common case: one format
            if ip is None:
                ids = _ACC % acc  # not None: one of the ids is there
            else:
                ids = _ACC_IP % (acc, ip) if acc is not None else _IP % ip
        else:
            ids = _DID % did if acc is None else _ACC_DID % (acc, did)
            if ip is not None:
                ids += _IP % ip
        if self.uuid:
            return _LINE_UUID % (rule.event_name_json, tm, ids, uuid_of(key, offset), props)
        return _LINE % (rule.event_name_json, tm, ids, props)

    def _line(self, app: str, rule: Rule, logs: dict, flat: bool, offset, key, now) -> bytes:
        if type(rule) is FilteredOnly:
            raise Fail(rule.reason)
        f = rule.account_field
        acc = None if f is None else id_json(logs.get(f), f)
        f = rule.distinct_field
        did = None if f is None else id_json(logs.get(f), f)
        if acc is None and did is None:
            raise Fail(f"identity: #account_id (field {rule.account_field!r}) and #distinct_id "
                       f"(field {rule.distinct_field!r}) are both empty")
        f = rule.ip_field
        ip = None if f is None else logs.get(f)
        if type(ip) is str:
            ip = _encode(ip) if ip else None
        elif ip is not None:
            raise Fail(f"property_type: ip field {f!r} is a {type(ip).__name__}, expected a string")
        f = rule.seconds_field  # the common case, inline: a time field in whole seconds
        if f is not None and type(sec := logs.get(f)) is int:
            tm = rule.seconds(sec)
        else:
            tm, sec = event_time(rule, logs, now)
        if sec is not None and not now - _PAST_S <= sec <= now + _FUTURE_S:
            tm = time_window(rule, tm, sec, now, self._fixing)
            sec = None  # fixed: #time is the processing time, and #zone_offset is its offset
        first = b'"#zone_offset":%s,' % zone_offset(rule, sec, now) if rule.zone_offset else b""

        learn: list = []
        known = named(self.guard, app, rule)
        model = rule.model
        props = self._props(app, rule, logs, flat, first, known, learn) if model is None or model.track else None
        if model is None:
            line = self._assemble(rule, tm, acc, did, ip, props, offset, key)
        else:
            line = event_lines(model, rule, app, logs, self.guard, self._fixing, props, tm, (acc, did, ip),
                               key if self.uuid else None, offset)
        if learn:
            self.guard.learn(app, learn)
        if not known and (model is None or model.track):
            self.guard.learn(event_table(app), [(rule.event_name, "event")])
        return line

    def _props(self, app: str, rule: Rule, logs: dict, flat: bool, first: bytes, known: bool, learn: list) -> bytes:
        """The track line's properties: as they are when a cached plan says
        they may be (sink/ta/plans.py), else rebuilt field by field."""
        if not known:
            self.guard.new_name(event_table(app), rule.event_name, [], rule.caps.events)
        guard = self.guard
        if flat and known:
            props = as_they_are(rule, logs, guard.kinds.get(app) or {}, guard.changes, first)
            if props is not None:
                return props
        return build_properties(rule, logs, app, guard, self._fixing, learn, first)


def _value(s, attr: str):
    v = getattr(s, attr)
    return None if v is UNSET else v


_DUPLICATE = (DUPLICATE, None, None)
_PLAIN = frozenset((str, bytes, int))  # app_id / log_name types whose equal values mean the same app / log
_LINE = b'{"#type":"track","#event_name":%s,"#time":"%s",%s"properties":%s}'
_LINE_UUID = b'{"#type":"track","#event_name":%s,"#time":"%s",%s"#uuid":"%s","properties":%s}'
_ACC, _DID, _IP = b'"#account_id":%s,', b'"#distinct_id":%s,', b'"#ip":%s,'
_ACC_IP, _ACC_DID = _ACC + _IP, _ACC + _DID


def _fail_app(app: str, reason: str):
    e = Fail(reason)
    e.app_id = app
    raise e




def _joined(lines: list) -> bytes:
    """The lines, each ended by a newline, in one copy (``lines`` gets an empty last one)."""
    lines.append(b"")
    return b"\n".join(lines)
