"""Which app and which rule an event falls under: its ``app_id`` and ``log_name``
(from the Kafka headers or the envelope) looked up in the per-app settings."""

from __future__ import annotations

from sink.ta.events import app_key
from sink.ta.settings import Problem
from sink.ta.rules import Fail


class FilteredOnly:
    """A log_name whose rule failed, in an app with filters: filtered if the filters say so."""

    __slots__ = ("log_name", "reason")

    def __init__(self, log_name: str, reason: str):
        self.log_name, self.reason = log_name, reason


def resolve(lookup, app_id, log_name):
    """-> (app, settings if the app filters else None, rule) or (app, reason, None)."""
    try:
        app = app_key(app_id)
    except Fail as e:
        return (None, str(e), None)
    if log_name is None:
        return (app, "no_log_name: no log_name in the Kafka headers or the envelope", None)
    if type(log_name) is bytes:
        try:
            log_name = log_name.decode()
        except UnicodeDecodeError:
            return (app, "no_log_name: the log_name header is not UTF-8", None)
    elif type(log_name) is not str:
        return (app, f"no_log_name: log_name is a {type(log_name).__name__}, expected a string", None)
    if not log_name:
        return (app, "no_log_name: log_name is empty", None)
    settings = lookup(app)
    if type(settings) is Problem:
        return (app, settings.reason, None)
    rule = settings.rule(log_name)
    if type(rule) is str:
        if settings.keep is not None or settings.drop or settings.where:
            # a filtered log_name is filtered even when its name would be invalid
            return (app, settings, FilteredOnly(log_name, rule))
        return (app, rule, None)
    filters = settings if (settings.keep is not None or settings.drop or settings.where) else None
    return (app, filters, rule)
