"""mtga's Prometheus metrics."""

from __future__ import annotations

import time

from mulog.metrics import MetricsServer
from mulog.metrics import serve as _serve


def samples(svc):
    st = svc.stats
    now = time.time()
    yield ("mtga_events_consumed", "counter", "Events taken from Kafka", (), [((), st.consumed)])
    yield ("mtga_events_written", "counter", "Track lines written to LogBus files", (), [((), st.written)])
    yield ("mtga_events_failed", "counter", "Events sent to the failure queue", (), [((), st.failed)])
    yield ("mtga_events_filtered", "counter", "Events filtered out by settings", (), [((), st.filtered)])
    yield ("mtga_events_retried_ok", "counter", "Failure-queue entries processed on retry", (),
           [((), st.retried_ok)])
    yield ("mtga_failure_queue_size", "gauge", "Events waiting in the failure queue", (), [((), svc.fq._count)])
    yield ("mtga_partition_lag", "gauge", "Messages behind the partition's end", ("topic", "partition"),
           [((t, str(p)), v) for (t, p), v in sorted(svc.lags.items())])
    age = now - st.last_checkpoint if st.last_checkpoint else now - st.started
    yield ("mtga_checkpoint_age_seconds", "gauge", "Seconds since offsets were last stored", (), [((), age)])
    yield ("mtga_sink_bytes", "counter", "Bytes written to LogBus files", (), [((), svc.writer.bytes_written)])
    yield ("mtga_sink_errors", "counter", "Failed writes to LogBus files", (), [((), svc.writer.errors)])
    yield ("mtga_stalled", "gauge", "1 while batches cannot be stored anywhere durable", (),
           [((), 1 if svc.stalled or svc.checkpoint_error else 0)])
    yield ("mtga_transform_workers", "gauge", "Transform processes working (1: the main loop alone)", (),
           [((), svc.pool.live)])
    yield ("mtga_transform_worker_restarts", "counter", "Transform worker processes started again after dying",
           (), [((), svc.pool.restarts)])


def serve(svc, host: str, port: int) -> MetricsServer:
    return _serve(lambda: samples(svc), host, port)
