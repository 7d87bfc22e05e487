"""Whether a running program reaches Kafka, as its status says it (both programs).

Each program learns it from its Kafka client's error callback: an "all brokers
down", transport or resolve error marks Kafka unreachable from then on
(``down_since``: time.time() of the first such error since the last success) and
every client error after it is counted (``errors``); a broker answering again (a
message, an acknowledgement, an assignment, a metadata request) clears both.
mtga keeps them in its consumer stage (sink/pipeline/intake.py) and answers
``mtga status`` from them; the shipper in its publisher
(shipper/delivery/publisher.py) and writes them to its status file
(shipper/ops/status.py), which ``shipper status`` reads.
"""

from __future__ import annotations

import time
from typing import Optional

from mulog.exitcodes import Exit


def reach(bootstrap: str, contacted: bool, down_since: Optional[float], errors: int,
          now: Optional[float] = None, denied: Optional[str] = None) -> dict:
    """The ``kafka`` object of a status: ``reachable`` is False while unreachable,
    None while no broker has answered yet (and none failed), else True; ``denied``:
    what to fix while Kafka turns the program away (mulog/access.py)."""
    now = time.time() if now is None else now
    down = down_since is not None
    return {"bootstrap": bootstrap, "reachable": False if down else (True if contacted else None),
            "contacted": contacted, "down_since": down_since,
            "down_for_s": round(max(0.0, now - down_since), 1) if down else None, "errors": errors if down else 0,
            "denied": denied}


def describe(k: dict) -> str:
    """One phrase for a person: reachable, not answered yet, unreachable since when, or
    what to fix while it turns the program away."""
    if k.get("denied"):
        return f"Kafka TURNS IT AWAY: {k['denied']}"
    if k.get("reachable") is False:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(k["down_since"]))
        n = k.get("errors", 0)
        return (f"Kafka at {k['bootstrap']} UNREACHABLE since {since} ({k['down_for_s']:.0f}s, "
                f"{n} client error{'' if n == 1 else 's'} since)")
    if k.get("reachable") is None:
        return f"Kafka at {k['bootstrap']} has not answered yet"
    return f"Kafka at {k['bootstrap']} reachable"


def exit_code(k: dict) -> Exit:
    """UNREACHABLE while Kafka is, CONDITION while it turns the program away, else OK."""
    if k.get("reachable") is False:
        return Exit.UNREACHABLE
    return Exit.CONDITION if k.get("denied") else Exit.OK
