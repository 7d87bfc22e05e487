"""`shipper tail` Prometheus metrics, scraped over HTTP from a real process."""

import socket

import pytest

import kafkalocal
from support.shipper import ShipperProc, line, scrape, topic_total, wait_for, write_conf

pytestmark = pytest.mark.kafka


def per_file(m: dict, name: str) -> dict:
    return {dict(lb)["path"]: v for (n, lb), v in m.items() if n == name}


def test_metrics_count_lines_and_bytes_behind_reaches_zero(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=2)
    logs = tmp_path / "logs"
    logs.mkdir()
    a, b = logs / "a.log", logs / "b.log"
    a.write_bytes(b"".join(line("a", n) + b"\n" for n in range(3000)))
    b.write_bytes(b"".join(line("b", n) + b"\n" for n in range(1000)))
    port = kafkalocal.free_port()
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=tmp_path / "state",
                      metrics={"enabled": True, "host": "127.0.0.1", "port": port},
                      inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_m",
                               "max_line_bytes": 2000}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        sh.wait_log(f"metrics at http://127.0.0.1:{port}/metrics")
        m0 = wait_for(lambda: (m := scrape(port)) and m[("shipper_lines_acked_total", ())] == 4000 and m, 30,
                      "4000 lines acknowledged (metrics)")
        m0 = wait_for(lambda: (m := scrape(port))[("shipper_bytes_behind", ())] == 0 and m, 30, "0 bytes behind")
        assert per_file(m0, "shipper_file_delivered_offset") == {str(a): a.stat().st_size, str(b): b.stat().st_size}
        assert per_file(m0, "shipper_file_bytes_behind") == {str(a): 0, str(b): 0}
        assert per_file(m0, "shipper_file_size_bytes") == {str(a): a.stat().st_size, str(b): b.stat().st_size}
        assert m0[("shipper_lines_sent_total", ())] == 4000
        assert m0[("shipper_lines_read_total", ())] == 4000
        assert m0[("shipper_bytes_sent_total", ())] == a.stat().st_size + b.stat().st_size
        assert m0[("shipper_files_open", ())] == 2 and m0[("shipper_files_tracked", ())] == 2
        assert m0[("shipper_producer_queue_lines", ())] == 0
        assert m0[("shipper_kafka_up", ())] == 1
        assert m0[("shipper_lines_cut_total", ())] == 0

        # more lines, an empty one and one too long: the counters move, behind returns to 0
        size_a = a.stat().st_size
        extra = b"".join(line("a", n) + b"\n" for n in range(3000, 3500)) + b"\n" + b'{"x":"' + b"z" * 3000 + b'"}\n'
        with open(a, "ab") as f:
            f.write(extra)
        m1 = wait_for(lambda: (m := scrape(port))[("shipper_lines_acked_total", ())] == 4501
                      and m[("shipper_bytes_behind", ())] == 0 and m, 30, "the new lines acknowledged (metrics)")
        assert m1[("shipper_lines_sent_total", ())] == 4501
        assert m1[("shipper_lines_empty_total", ())] == 1
        assert m1[("shipper_lines_read_total", ())] == 4502
        assert m1[("shipper_lines_cut_total", ())] == 1
        assert m1[("shipper_bytes_sent_total", ())] == m0[("shipper_bytes_sent_total", ())] + len(extra)
        assert per_file(m1, "shipper_file_delivered_offset")[str(a)] == size_a + len(extra)
        assert topic_total(kafka, topic) == 4501
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    print(f"\nmetrics: {len(m1)} series; lines read {m1[('shipper_lines_read_total', ())]:.0f}, "
          f"acked {m1[('shipper_lines_acked_total', ())]:.0f}, bytes sent {m1[('shipper_bytes_sent_total', ())]:.0f}")


def test_metrics_port_in_use_is_one_clear_error(kafka, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=tmp_path / "state",
                          metrics={"enabled": True, "port": port},
                          inputs=[{"paths": [str(tmp_path / "*.log")], "topic": "t_unused", "app_id": 1,
                                   "log_name": "x"}])
        sh = ShipperProc(conf, tmp_path / "shipper.log").start()
        try:
            assert sh.proc.wait(30) == 1
        finally:
            sh.kill_if_alive()
    log = sh.log()
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in log, log
    assert "Traceback" not in log
