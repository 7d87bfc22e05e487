"""The control socket passes the exit code of an error on (sink/ops/control.py):
a query Kafka did not answer exits 3 whether the daemon asked or the command."""

import pytest

from mulog.exitcodes import Exit
from sink.ops.control import ControlServer, Refused, request
from sink.ops.queries import QueryError


def test_an_error_with_an_exit_code_travels_with_it(tmp_path):
    def kafka_down(req):
        raise QueryError("Kafka did not list its topics")

    def bad(req):
        raise ValueError("no such app")

    server = ControlServer(tmp_path / "run" / "c.sock", {"offsets": kafka_down, "bad": bad})
    server.start()
    try:
        with pytest.raises(Refused) as e:
            request(server.path, "offsets", 5)
        assert str(e.value) == "Kafka did not list its topics" and e.value.exit_code == Exit.UNREACHABLE
        with pytest.raises(Refused) as e:
            request(server.path, "bad", 5)
        assert str(e.value) == "no such app" and e.value.exit_code is None
    finally:
        server.stop()
