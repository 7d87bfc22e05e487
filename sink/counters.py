"""Every counter of mtga, declared in one place (exported as ``mtga_<name>_total``).

The stages take them from the one ``Instruments`` the pipeline builds
(``counters()``); an event (``event``) is also said in the log, the first times
and then every so often (mulog/runtime/instrument.py).
"""

from __future__ import annotations

import logging

from mulog.runtime.instrument import Instruments, counter, event


class MtgaCounters:
    # the pipeline (sink/pipeline/service.py)
    events_consumed = counter("Events taken from Kafka")
    events_written = counter("Track lines written to LogBus files")
    events_filtered = counter("Events filtered out by settings")
    events_failed = counter("Events sent to the failure queue")
    # the consumer (sink/pipeline/intake.py)
    kafka_errors = counter("Errors the Kafka consumer reported")
    # the checkpoint (sink/pipeline/checkpoint.py)
    checkpoints = counter("Checkpoints that stored offsets")
    checkpoint_failures = event("Checkpoints that could not flush the output or store the offsets (tried again at "
                                "the next one)", "mtga", logging.ERROR)
    offsets_went_back = event("Batches whose offsets were below their partition's next offset (the consumer was "
                              "reset); the offset did not move", "mtga")
    commit_failures = event("Commits of stored offsets to the consumer group that failed (made again at the next "
                            "checkpoint)", "mtga")
    # back-pressure (sink/pipeline/pausing.py)
    stalls = event("Batches that neither the output nor the failure queue could take (their partitions paused and "
                   "sought back)", "mtga", logging.ERROR)
    seek_failures = event("Seeks back after a stall that failed (tried again)", "mtga")
    skipped_past_rewind = counter("Messages fetched past the rewind point of a partition whose seek back has not "
                                  "worked yet (they come again after it)")
    # the failure-queue retries (sink/pipeline/retry.py)
    events_retried_ok = counter("Failure-queue entries processed on retry")
    events_retried_failed = counter("Failure-queue entries that failed again on retry")
    retry_errors = event("Retry rounds skipped because the failure queue or the output could not be read or "
                         "written", "mtga", logging.ERROR, first=1, every=60)
    # exactly once (sink/pipeline/marks.py)
    events_duplicate = counter("Events skipped because their source's mark was at or past their position (handled "
                               "before: a copy)")
    marks_expired = counter("Source marks forgotten after forget_after_s unseen")


def counters() -> Instruments:
    """mtga's counters, as MtgaCounters declares them."""
    return Instruments.declared("mtga", MtgaCounters)
