"""ThinkingData's official Python SDK as the tests' oracle: a consumer that keeps
the lines the SDK writes (the SDK is a dev dependency; the programs never import it)."""

from __future__ import annotations


class Capture:
    """An SDK consumer that keeps the lines it is given."""

    def __init__(self):
        self.lines: list[str] = []

    def add(self, msg: str) -> None:
        self.lines.append(msg)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
