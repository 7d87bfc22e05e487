"""``shipper tail``: the loop that runs the stages, and its timers.

    watcher      shipper/files/watcher.py     inotify records and scans -> typed file events
    prospector   shipper/files/prospector.py  the table of tailers: events -> opens, rotation,
                                              start positions, the EOF policy
    tailers      shipper/files/tailer.py      one per file: descriptor, read position, state
    publisher    shipper/delivery/publisher.py  framed lines -> Kafka; delivery reports ->
                 shipper/files/acks.py        each file's acks, which alone move its delivered offset
    checkpoint   shipper/delivery/checkpoint.py  delivered offsets -> offsets.FilePositions
    stats        shipper/stats.py             counters; the snapshot metrics and the stats line read

One thread runs them all, in this loop; watchdog's observer thread only queues
inotify records and wakes it, and the metrics server's thread reads the snapshot
the loop publishes. Signals: SIGTERM/SIGINT stop (stop reading, wait up to
``shutdown_timeout_s`` for Kafka's acknowledgements, save positions, exit 0);
SIGHUP reloads the configuration (also done when the file changes on disk).
A bug ends the process: logged once with its traceback, positions saved up to the
last acknowledged line, exit code 1.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from mulog.config import ConfigError
from mulog.files import signature
from mulog.fleet import host_name
from mulog.runtime import signals
from mulog.runtime.sdnotify import Notifier
from mulog.runtime.skeleton import Skeleton
from mulog.runtime.timers import Every
from offsets import FilePositions, StateDB

from shipper.delivery.checkpoint import PositionCheckpoint
from shipper.config import Input, ShipperConfig
from shipper.files.prospector import Prospector
from shipper.delivery.publisher import Publisher, Stopping
from shipper.stats import SNAPSHOT_S, FileView, Rates, ShipperSnapshot, counters
from shipper.files.room import Split, room_for_files
from shipper.files.tailer import ACTIVE, Read
from shipper.files.watcher import Watcher
from shipper.ops import status as live_status

log = logging.getLogger("shipper")

CHUNKS_PER_TURN = 4  # read chunks per file before the next file gets its turn
CONFIG_CHECK_S = 1.0  # how often the configuration file is looked at
FORGET_CHECK_S = 60.0  # how often stored positions of vanished files are looked at
COLD_AFTER_S = 2.0  # a file quiet this long (at its end, nothing pending) is read only when a write is reported
SWEEP_S = 5.0  # how often open descriptors are looked over (Room.sweep)
SWEEP_WAITING_S = 0.02, 0.2  # ... while files wait for room: after acknowledgements came, else
PROBE_S, PROBE_TIMEOUT_S = 2.0, 0.2  # a metadata request, until a broker answered and while Kafka is down


def _view(t) -> FileView:
    return FileView(t.path, t.identity, t.size_now(), t.delivered)


class Shipper:
    def __init__(self, config: ShipperConfig, reload: Callable[[], ShipperConfig] | None = None,
                 config_file: str | os.PathLike | None = None):
        self.config = config
        self.conf = config.conf
        self.reloader = reload
        self.config_file = config_file
        self.host = host_name(config.conf.host)
        self.started = time.time()
        self._status_error = False  # the status file could not be written (said once)
        self.counters = counters()
        self.wake = threading.Event()
        self.stopping = False
        self.reload_wanted = False
        self.fatal: str | None = None
        self.notify = Notifier()  # systemd (Type=notify): READY=1, WATCHDOG=1, STOPPING=1
        self.db = StateDB(config.db_path, "shipper")
        for note in self.db.notes:
            log.warning("%s", note)
        positions = FilePositions(self.db)
        self.stored = positions.all()
        log.info("state in %s: %d file positions stored", config.state_dir, len(self.stored))
        self.checkpoint = PositionCheckpoint(self.db, positions, self.counters)
        self.publisher = Publisher(config.connection, config.producer, self.counters,
                                   lambda: self.stopping, self._on_fatal, [i.topic for i in config.inputs],
                                   wire_format=config.conf.kafka.wire_format)
        self.watcher = Watcher(self.wake)
        self.prospector = Prospector(positions, self.stored, self.watcher, self.host, self.counters,
                                     new_store=self.db.created)
        self._configure(config, added=config.inputs)
        self.tailers = self.prospector.tailers
        self.split = Split(self.tailers)  # warm tailers (read in every turn) and cold ones
        self.prospector.save_now = self.save
        self.rates = Rates()
        self.snapshot: ShipperSnapshot = self.take_snapshot()
        self.skeleton = Skeleton("shipper", config.connection, self.host)
        self._config_sig = self._config_signature()

    def _configure(self, s: ShipperConfig, added) -> None:
        c = s.conf
        self.publisher.topics = sorted({i.topic for i in s.inputs})
        self.prospector.configure(list(s.inputs), added, c.rotate_wait_s, c.close_inactive_s, c.max_open_files)

    # ------------------------------------------------------------ control
    def _on_fatal(self, msg: str) -> None:
        self.fatal = msg
        self.stopping = True
        self.wake.set()

    def request_stop(self, *_args) -> None:
        self.stopping = True
        self.wake.set()

    def request_reload(self, *_args) -> None:
        self.reload_wanted = True
        self.wake.set()

    def install_signals(self) -> None:
        signals.handle(self.request_stop, self.request_reload)

    # ---------------------------------------------------------------- run
    def run(self) -> int:
        c = self.conf
        pr = self.prospector
        log.info("shipper starting: %d input(s), Kafka at %s, host %s", len(pr.inputs),
                 self.config.bootstrap_servers, self.host)
        from shipper.ops.metrics import routes, samples

        try:
            self.skeleton.serve_metrics(c.metrics, lambda: samples(self.snapshot, self.counters),
                                        routes(lambda: self.snapshot, self.config.bootstrap_servers))
        except OSError as e:
            self.fatal = f"metrics: {e}"
            return self.shutdown()
        self.skeleton.beat(c.fleet, heartbeat_figures(self))
        self.write_status()
        room_for_files(c.max_open_files)
        try:
            self.watcher.plan(pr.inputs)
            pr.scan()
            pr.report_new_store(self.config.db_path)
            pr.look_for_copies()
            pr.resume_rotated_while_stopped(self.stored)
            self.stored = []
            self._loop()
        except Stopping:
            pass
        except Exception as e:  # a bug: said once with its traceback; positions stay safe
            log.exception("unexpected error, stopping: %s", e)
            self.fatal = f"unexpected error: {e}"
        return self.shutdown()

    def _loop(self) -> None:
        c = self.conf
        pr, pub, watcher = self.prospector, self.publisher, self.watcher
        now = time.monotonic()
        scan, ckpt = Every(c.rescan_interval_s, now), Every(c.checkpoint_interval_s, now)
        stats, conf, snap = Every(c.stats_interval_s, now), Every(CONFIG_CHECK_S, now), Every(SNAPSHOT_S, now)
        forget = Every(min(FORGET_CHECK_S, c.forget_after_s), now)
        probe = Every(PROBE_S, now - PROBE_S)
        live = Every(live_status.WRITE_S, now)
        sweep, waiting, waiting_idle = Every(SWEEP_S, now), Every(SWEEP_WAITING_S[0], now), Every(SWEEP_WAITING_S[1], now)
        acked_at_sweep = -1
        while not self.stopping:
            now = time.monotonic()
            self.notify.watchdog(now)
            if (not pub.contacted or pub.down_since is not None) and probe.due(now) and pub.probe(PROBE_TIMEOUT_S):
                self.notify.ready(f"state open, Kafka at {self.config.bootstrap_servers} answered")
            if (conf.due(now) and self._config_changed()) or self.reload_wanted:
                self.reload_wanted = False
                self.reload()
                c = self.conf
                scan.interval, ckpt.interval = c.rescan_interval_s, c.checkpoint_interval_s
                stats.interval, forget.interval = c.stats_interval_s, min(FORGET_CHECK_S, c.forget_after_s)
            if watcher.pending():
                pr.on_inotify()
            if scan.due(now):
                watcher.plan(pr.inputs)
                pr.scan()
            elif watcher.rescan_due(now):
                watcher.plan(pr.inputs)  # a folder may have appeared
                pr.scan()
            busy = self.read_all(now)
            # files wait for room: a quiet file is closed for them once Kafka acknowledged its lines, so the
            # next look is soon after acknowledgements came (a burst over thousands of quiet files), and
            # seldom while none come (Kafka down)
            if sweep.due(now) or (pr.room.waiting and waiting.due(now)
                                  and (pub.acked_here != acked_at_sweep or waiting_idle.due(now))):
                pr.room.sweep(now)
                acked_at_sweep = pub.acked_here
            pub.poll(0)
            if ckpt.due(now):
                self.save()
                self.split.refresh()
                pr.drop_finished(self.split.warm)  # a closed tailer is never cold
            if snap.due(now):
                self.snapshot = self.take_snapshot()
            if stats.due(now):
                self.log_stats()
            if live.due(now):
                self.write_status()
            if forget.due(now):
                for path in self.checkpoint.forget_vanished(set(self.tailers), c.forget_after_s):
                    pr.known_paths.discard(path)
                pr.copies.expire(c.forget_after_s)
            if not busy and not self.stopping:
                if pub.inflight_msgs and (pub.poll(0.05) or not pub.room()):
                    continue  # acknowledgements came, or are what reading waits for: go on at once
                self.wake.wait(0.05 if pub.inflight_msgs else 0.1)
                self.wake.clear()

    def shutdown(self) -> int:
        c = self.conf
        pub = self.publisher
        self.stopping = True
        self.notify.stopping()
        self.snapshot = self.take_snapshot()  # /ready says it stops
        if self.fatal:
            log.error("stopping after a fatal error; positions are saved up to the last acknowledged line")
            left = pub.flush(min(2.0, c.shutdown_timeout_s))
        else:
            log.info("stopping: reading stopped; waiting up to %.0fs for Kafka to acknowledge %d lines",
                     c.shutdown_timeout_s, pub.inflight_msgs)
            left = pub.flush(c.shutdown_timeout_s)
        self.watcher.stop()
        n = self.save(sync=True)
        if self.checkpoint.errors:
            log.error("positions could not be saved at the stop: lines after the last saved positions will be "
                      "sent again at the next start")
            self.fatal = self.fatal or "positions not saved"
        if left:
            log.warning("%d lines were not acknowledged by Kafka in time; they will be sent again at the "
                        "next start", pub.inflight_msgs)
        pub.close()
        self.skeleton.close(clean=not self.fatal)
        self.prospector.close_all()
        self.snapshot = self.take_snapshot()
        self.write_status(stopped=True)
        self.db.close()
        self.notify.close()
        v = self.counters.values()
        log.info("stopped: %d lines sent, %d acknowledged; positions of %d files saved (%d changed)",
                 v["lines_sent"], v["lines_acked"], len(self.tailers), n)
        return 1 if self.fatal else 0

    # ------------------------------------------------------------ reading
    def read_all(self, now: float) -> bool:
        """One turn over the tailers: up to CHUNKS_PER_TURN chunks each, while the
        producer has room. True when something was done."""
        busy = False
        pub = self.publisher
        pr = self.prospector
        cold_ok = self.watcher.sees_writes
        self.split.refresh()
        for t in self.split.warm:
            if t.cold:
                continue
            if t.acks.refused is not None:
                if t.recover(now):
                    busy = True
                continue
            if not t.readable:
                pr.unreadable(t, now)
                continue
            for _ in range(CHUNKS_PER_TURN):
                if not pub.room():
                    return busy
                fr = t.read(now)
                if fr is Read.END:
                    if t.fd >= 0 and pr.at_eof(t, now):
                        busy = True
                    elif (t.state == ACTIVE and now - t.last_data >= COLD_AFTER_S and t.acks.idle and t.fd >= 0
                          and cold_ok(t.path)):
                        t.chill()  # read again once a write to it is reported
                    break
                busy = True
                if fr is not Read.NOTHING:
                    if t.saved is None and not self.checkpoint.errors:
                        # a file's first lines: its identity and first bytes are stored first, so that
                        # after a crash its copy (or a new file on its inode) is told apart
                        self.save()
                    pub.send(t, fr)
                    pub.poll(0)
                if self.stopping:
                    return busy
        return busy

    def save(self, sync: bool = False) -> int:
        """Store the positions and the ended generations that changed."""
        tailers = self.tailers.values() if sync else self.split.to_save()
        return self.checkpoint.save(tailers, self.prospector.copies, sync=sync)

    # ------------------------------------------------------------ reload
    def _config_signature(self):
        return signature(self.config_file) if self.config_file else None

    def _config_changed(self) -> bool:
        sig = self._config_signature()
        if sig is None or sig == self._config_sig:
            return False
        self._config_sig = sig
        return True

    def reload(self) -> None:
        if self.reloader is None:
            return
        self._config_sig = self._config_signature()
        try:
            new = self.reloader()
        except ConfigError as e:
            log.error("configuration not reloaded, keeping the running one: %s", e)
            return
        old = self.config
        if (new.connection, new.producer, new.state_dir) != (old.connection, old.producer, old.state_dir):
            log.warning("kafka and state_dir changes take effect at the next restart")
        if new.conf.metrics != old.conf.metrics:
            log.warning("metrics changes take effect at the next restart")
        running = self.prospector.inputs
        merged: list[Input] = []
        added: list[Input] = []
        for i in new.inputs:  # unchanged inputs keep their running objects
            o = next((o for o in running if o == i), None)
            if o is None:
                added.append(i)
            merged.append(o if o is not None else i)
        removed = [o for o in running if o not in new.inputs]
        self.config = new
        self.conf = new.conf
        self.prospector.configure(merged, added, new.conf.rotate_wait_s, new.conf.close_inactive_s,
                                  new.conf.max_open_files)
        self.watcher.plan(merged)
        self.prospector.scan()
        log.info("configuration reloaded: %d input(s), %d added, %d removed", len(merged), len(added),
                 len(removed))

    # ------------------------------------------------------------ stats
    def take_snapshot(self) -> ShipperSnapshot:
        """What other threads may read (the metrics server): figures, never live objects."""
        views, n_open, behind = self.split.views(_view)
        pub = self.publisher
        return ShipperSnapshot(taken=time.time(), counters=self.counters.values(), files=views, files_open=n_open,
                        bytes_behind=behind,
                        queue_lines=pub.inflight_msgs, queue_bytes=pub.inflight_bytes,
                        kafka_up=pub.down_since is None, kafka_contacted=pub.contacted,
                        kafka_down_since=pub.down_at, kafka_down_errors=pub.down_errors, kafka_denied=pub.denied,
                        save_errors=self.checkpoint.errors, stopping=self.stopping)

    def log_stats(self) -> None:
        snap = self.snapshot = self.take_snapshot()
        lps, bps = self.rates(snap)
        v = snap.counters
        down = "" if snap.kafka_down_since is None else \
            f", Kafka unreachable for {time.time() - snap.kafka_down_since:.0f}s"
        log.info("stats: %.0f lines/s, %.2f MB/s, %d files open, %d bytes behind, %d lines waiting for Kafka, "
                 "%d lines sent and %d acknowledged in all, %d cut%s", lps, bps / 1e6, snap.files_open,
                 snap.bytes_behind, snap.queue_lines, v["lines_sent"], v["lines_acked"], v["lines_cut"], down,
                 extra={"lines_per_s": round(lps, 1), "bytes_per_s": round(bps), "files_open": snap.files_open,
                        "bytes_behind": snap.bytes_behind, "lines_waiting": snap.queue_lines,
                        "lines_sent": v["lines_sent"], "lines_acked": v["lines_acked"], "lines_cut": v["lines_cut"],
                        "kafka_up": snap.kafka_up})

    def write_status(self, stopped: bool = False) -> None:
        """The status file ``shipper status`` reads (shipper/ops/status.py), from the last snapshot."""
        try:
            live_status.write_live(self.config.state_dir, live_status.live_of(
                self.snapshot, self.started, self.host, self.config.bootstrap_servers, stopped))
            self._status_error = False
        except OSError as e:
            if not self._status_error:
                log.warning("status file not written in %s (%s); shipper status cannot tell whether this "
                            "process runs", self.config.state_dir, e.strerror or e)
            self._status_error = True


def heartbeat_figures(sh: Shipper):
    """What this shipper's fleet record (mulog/fleet.py) says, from its snapshot."""
    last = {"acked": -1, "at": None}

    def figures() -> dict:
        snap = sh.snapshot
        acked = snap.counters.get("lines_acked", 0)
        if acked != last["acked"]:
            last["acked"], last["at"] = acked, (time.time() if last["acked"] >= 0 and acked else last["at"])
        return {"files": len(snap.files), "files_open": snap.files_open, "bytes_behind": snap.bytes_behind,
                "lines_waiting": snap.queue_lines, "kafka_up": snap.kafka_up,
                "lines_sent": snap.counters.get("lines_sent", 0), "lines_acked": acked,
                "last_ack": last["at"]}

    return figures
