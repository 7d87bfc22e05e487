"""Prometheus metrics of ``shipper tail`` (``metrics.enabled``; default port 9465).

Collected at scrape time, in the HTTP server's thread, from the counters the
loop keeps anyway (``Stats``, the publisher's in-flight counts, each tailer's
positions): the read/send path does no extra work for them. The scrape only
reads plain numbers and takes a snapshot of the tailer table, so it never
blocks the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mulog.metrics import MetricsServer
from mulog.metrics import serve as _serve

if TYPE_CHECKING:
    from .service import Shipper

DEFAULT_PORT = 9465


def samples(sh: "Shipper"):
    st = sh.stats
    pub = sh.publisher
    files = sh.file_stats()
    tailers = list(sh.tailers.values())
    yield ("shipper_lines_read", "counter", "Lines framed from files (empty lines included; they are not sent)",
           (), [((), st.lines_sent + st.empty_lines)])
    yield ("shipper_lines_sent", "counter", "Lines handed to the Kafka producer (a re-sent line counts again)",
           (), [((), st.lines_sent)])
    yield ("shipper_lines_acked", "counter", "Lines Kafka acknowledged", (), [((), st.lines_acked)])
    yield ("shipper_bytes_sent", "counter", "File bytes (newlines included) of the lines handed to the producer",
           (), [((), st.bytes_sent)])
    yield ("shipper_lines_cut", "counter", "Lines longer than max_line_bytes, cut", (), [((), st.cut_lines)])
    yield ("shipper_lines_empty", "counter", "Empty lines skipped", (), [((), st.empty_lines)])
    yield ("shipper_truncations", "counter", "Files found truncated (copytruncate) and read again from 0", (),
           [((), st.truncations)])
    yield ("shipper_chunk_errors", "counter", "Read chunks Kafka refused (sent again)", (),
           [((), st.chunk_errors)])
    yield ("shipper_files_open", "gauge", "Files open for reading", (),
           [((), sum(1 for t in tailers if t.fd >= 0))])
    yield ("shipper_files_tracked", "gauge", "Files followed (open, idle or draining)", (), [((), len(tailers))])
    yield ("shipper_producer_queue_lines", "gauge", "Lines handed to the producer and not yet acknowledged", (),
           [((), pub.inflight_msgs)])
    yield ("shipper_producer_queue_bytes", "gauge", "Bytes (with per-line overhead) waiting for Kafka", (),
           [((), pub.inflight_bytes)])
    yield ("shipper_kafka_up", "gauge", "0 while Kafka is unreachable, else 1", (),
           [((), 0 if pub.down_since is not None else 1)])
    yield ("shipper_bytes_behind", "gauge", "Bytes of all followed files not yet acknowledged by Kafka", (),
           [((), sum(f.behind for f in files))])
    labels = ("path", "file")  # the identity too: a draining rotated file may still carry the path
    yield ("shipper_file_bytes_behind", "gauge", "File size minus the delivered offset", labels,
           [((f.path, f.identity), f.behind) for f in files])
    yield ("shipper_file_delivered_offset", "gauge", "Byte offset up to which Kafka acknowledged every line",
           labels, [((f.path, f.identity), f.delivered) for f in files])
    yield ("shipper_file_size_bytes", "gauge", "File size at the scrape", labels,
           [((f.path, f.identity), f.size) for f in files])


def serve(sh: "Shipper", host: str, port: int) -> MetricsServer:
    return _serve(lambda: samples(sh), host, port or DEFAULT_PORT)
