"""`scripts/kafka-local start --port P` and the state of port P: the connections of
a broker that just stopped leave P in TIME_WAIT, which the broker (Java binds with
SO_REUSEADDR) does not mind, so neither may the check before the start; a port
something listens on is still refused."""

from __future__ import annotations

import socket
import struct
import subprocess
import time

import pytest

import kafkalocal

pytestmark = pytest.mark.kafka


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, f"the broker closed the connection after {len(buf)} of {n} bytes"
        buf += chunk
    return buf


def _connected(port: int) -> socket.socket:
    """A client connection the broker has accepted and answered on: one
    ApiVersions request (key 18, version 0) and its response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    client_id = b"port-test"
    req = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    s.sendall(struct.pack(">i", len(req)) + req)
    (size,) = struct.unpack(">i", _recv_exact(s, 4))
    (correlation_id,) = struct.unpack(">i", _recv_exact(s, size)[:4])
    assert correlation_id == 7
    return s


def _time_wait_on(port: int) -> list[str]:
    """The TIME-WAIT sockets whose local port is ``port``, as `ss` lists them."""
    out = subprocess.run(["ss", "-tanH", "state", "time-wait", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return [ln for ln in out.splitlines() if ln.strip()]


def test_start_on_a_port_left_in_time_wait_by_the_last_broker(tmp_path):
    port = kafkalocal.free_port()
    first = kafkalocal.Cluster(tmp_path / "first")
    second = kafkalocal.Cluster(tmp_path / "second")
    try:
        assert first.start(brokers=1, port=port).bootstrap == f"127.0.0.1:{port}"
        # the live broker's port is refused to another cluster
        with pytest.raises(kafkalocal.KafkaLocalError, match=f"port {port} on 127.0.0.1 is in use"):
            second.start(brokers=1, port=port)

        client = _connected(port)
        first.stop()
        # the broker closed its side first; closing ours leaves its side in TIME_WAIT
        assert client.recv(1) == b""
        client.close()
        deadline = time.monotonic() + 10
        while not _time_wait_on(port):
            assert time.monotonic() < deadline, f"no TIME-WAIT socket on port {port} after the broker stopped"
            time.sleep(0.05)
        with socket.socket() as plain:  # the case itself: a bind without SO_REUSEADDR is refused
            with pytest.raises(OSError):
                plain.bind(("127.0.0.1", port))

        st = first.start(brokers=1, port=port)
        assert st.bootstrap == f"127.0.0.1:{port}"
        assert first.wait_ready(st, timeout=30)
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "SO_REUSEADDR"])
def test_start_on_a_port_something_listens_on_is_refused(tmp_path, reuse):
    with socket.socket() as listener:
        if reuse:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cl = kafkalocal.Cluster(tmp_path / "kl")
        with pytest.raises(kafkalocal.KafkaLocalError, match=f"port {port} on 127.0.0.1 is in use"):
            cl.start(brokers=1, port=port)
        assert cl.load() is None  # nothing was started
