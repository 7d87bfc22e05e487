"""``shipper tail``: the loop that joins the stages.

    watcher (inotify events + rescans) -> tailers (one per file) -> publisher
    (Kafka producer, one Ack per read chunk) -> tailer.delivered -> checkpoint
    (offsets.FilePositions, every checkpoint_interval_s and at the stop)

Everything runs in one thread, except watchdog's observer thread, which only sets
a flag and wakes the loop. Signals: SIGTERM/SIGINT stop (stop reading, wait up to
``shutdown_timeout_s`` for Kafka's acknowledgements, save positions, exit 0);
SIGHUP reloads the configuration (also done when the file changes on disk).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import threading
import time
from typing import Callable

from mulog.config import ConfigError
from mulog.files import last_line_end, signature
from offsets import FilePositions, StateDB, StateError

from .config import Input, ShipperSettings
from .globs import log_name_of, owner
from .identity import FINGERPRINT_BYTES, fingerprint, same_start, stored_start
from .publisher import Publisher, Stopping
from .stats import FileStat, Stats
from .tailer import ACTIVE, CLOSED, DRAINING, IDLE, RETIRING, Tailer
from .watcher import Found, Watcher, scan

log = logging.getLogger("shipper")

CHUNKS_PER_TURN = 4  # read chunks per file before the next file gets its turn
CONFIG_CHECK_S = 1.0  # how often the configuration file is looked at
FORGET_CHECK_S = 60.0  # how often stored positions of vanished files are looked at


class Shipper:
    def __init__(self, settings: ShipperSettings, reload: Callable[[], ShipperSettings] | None = None,
                 config_file: str | os.PathLike | None = None):
        self.settings = settings
        self.conf = settings.conf
        self.reloader = reload
        self.config_file = config_file
        self.inputs: list[Input] = list(settings.inputs)
        self.fresh: set[int] = {id(i) for i in self.inputs}  # inputs whose first scan is still to come
        self.host = socket.gethostname()
        self.stats = Stats()
        self.state_errors = 0  # checkpoints in a row that could not be stored
        self.wake = threading.Event()
        self.stopping = False
        self.reload_wanted = False
        self.fatal: str | None = None
        self.tailers: dict[tuple[int, int], Tailer] = {}
        self.warned: set[str] = set()
        self.db = StateDB(settings.db_path, "shipper")
        for note in self.db.notes:
            log.warning("%s", note)
        self.positions = FilePositions(self.db)
        stored = self.positions.all()
        self.known_paths = {p.path for p in stored}
        log.info("state in %s: %d file positions stored", settings.state_dir, len(stored))
        # a new store (first start, or the state folder was removed): files that already
        # have content are listed at the first scan, so the re-read (or skip) is said
        self.new_store: list[tuple[str, int, int]] | None = [] if self.db.created else None
        self.publisher = Publisher(settings.bootstrap_servers, settings.producer, self.stats,
                                   lambda: self.stopping, self._on_fatal)
        self.watcher = Watcher(self.wake)
        self.metrics = None
        self._config_sig = self._config_signature()

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
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    # ---------------------------------------------------------------- run
    def run(self) -> int:
        c = self.conf
        log.info("shipper starting: %d input(s), Kafka at %s, host %s", len(self.inputs),
                 self.settings.bootstrap_servers, self.host)
        if c.metrics.enabled:
            from .metrics import DEFAULT_PORT, serve

            try:
                self.metrics = serve(self, c.metrics.host, c.metrics.port)
            except OSError as e:
                log.error("cannot serve metrics on %s:%d: %s", c.metrics.host, c.metrics.port or DEFAULT_PORT,
                          e.strerror or e)
                self.fatal = f"metrics: {e}"
                return self.shutdown()
        self.watcher.plan(self.inputs)
        self.rescan(periodic=True)
        self._report_new_store()
        self._resume_rotated_while_stopped()
        now = time.monotonic()
        next_scan = now + c.rescan_interval_s
        next_ckpt = now + c.checkpoint_interval_s
        next_stats = now + c.stats_interval_s
        next_conf = now + CONFIG_CHECK_S
        next_forget = now + min(FORGET_CHECK_S, c.forget_after_s)
        try:
            while not self.stopping:
                now = time.monotonic()
                if self.reload_wanted or (now >= next_conf and self._config_changed()):
                    self.reload_wanted = False
                    self.reload()
                    c = self.conf
                if now >= next_conf:
                    next_conf = now + CONFIG_CHECK_S
                if self.watcher.changed.is_set():
                    self.watcher.changed.clear()
                    self.rescan(periodic=False)
                if now >= next_scan:
                    self.rescan(periodic=True)
                    next_scan = now + c.rescan_interval_s
                busy = self.read_all(now)
                self.publisher.poll(0)
                if now >= next_ckpt:
                    self.checkpoint()
                    next_ckpt = now + c.checkpoint_interval_s
                if now >= next_stats:
                    self.log_stats()
                    next_stats = now + c.stats_interval_s
                if now >= next_forget:
                    self.forget_vanished()
                    next_forget = now + min(FORGET_CHECK_S, c.forget_after_s)
                if not busy and not self.stopping:
                    pub = self.publisher
                    if pub.inflight_msgs and (pub.poll(0.05) or not pub.room()):
                        continue  # acknowledgements came, or are what reading waits for: go on at once
                    self.wake.wait(0.05 if pub.inflight_msgs else 0.1)
                    self.wake.clear()
        except Stopping:
            pass
        except Exception as e:  # a bug or an unexpected OS error: stop cleanly, positions stay safe
            log.exception("unexpected error, stopping: %s", e)
            self.fatal = f"unexpected error: {e}"
        return self.shutdown()

    def shutdown(self) -> int:
        c = self.conf
        waiting = self.publisher.inflight_msgs
        if self.fatal:
            log.error("stopping after a fatal error; positions are saved up to the last acknowledged line")
            left = self.publisher.flush(min(2.0, c.shutdown_timeout_s))
        else:
            log.info("stopping: reading stopped; waiting up to %.0fs for Kafka to acknowledge %d lines",
                     c.shutdown_timeout_s, waiting)
            left = self.publisher.flush(c.shutdown_timeout_s)
        self.watcher.stop()
        n = self.checkpoint(sync=True)
        if self.state_errors:
            log.error("positions could not be saved at the stop: lines after the last saved positions will be "
                      "sent again at the next start")
            self.fatal = self.fatal or "positions not saved"
        if left:
            log.warning("%d lines were not acknowledged by Kafka in time; they will be sent again at the "
                        "next start", self.publisher.inflight_msgs)
        self.publisher.close()
        if self.metrics is not None:
            self.metrics.shutdown()
            self.metrics = None
        for t in self.tailers.values():
            t.close()
        self.db.close()
        log.info("stopped: %d lines sent, %d acknowledged; positions of %d files saved (%d changed)",
                 self.stats.lines_sent, self.stats.lines_acked, len(self.tailers), n)
        return 1 if self.fatal else 0

    # ------------------------------------------------------------ reading
    def read_all(self, now: float) -> bool:
        busy = False
        pub = self.publisher
        for t in list(self.tailers.values()):
            if t.failed_at is not None:
                if t.try_recover(now):
                    busy = True
                continue
            if not t.readable:
                if t.state == RETIRING and not t.pending:
                    t.close()
                    t.state = CLOSED
                continue
            for _ in range(CHUNKS_PER_TURN):
                if not pub.room():
                    return busy
                fr = t.read(now)
                if fr is False:
                    if self._at_eof(t, now):
                        busy = True
                    break
                busy = True
                if fr is not None:
                    pub.send(t, fr)
                    pub.poll(0)
                if self.stopping:
                    return busy
        return busy

    def _at_eof(self, t: Tailer, now: float) -> bool:
        ev = t.at_eof(now)
        if ev == "truncated":
            self.stats.truncations += 1
            return True
        if ev == "deleted":
            log.info("deleted: %s (%s); reading what is left of it, then closing it", t.path, t.identity)
        idle = now - t.last_data
        # a rotated file keeps its descriptor until every chunk sent is acknowledged: a
        # refused one is read again from it, whatever the file is called by then
        if t.state == DRAINING and idle >= self.conf.rotate_wait_s and not t.pending and t.failed_at is None:
            log.info("finished %s (%s, rotated or deleted) at offset %d", t.path, t.identity, t.read_pos)
            t.close()
            t.state = CLOSED
        elif t.state == ACTIVE and idle >= self.conf.close_inactive_s and not t.pending:
            log.info("closing %s after %.0fs without new lines (reopened when it grows)", t.path, idle)
            t.close()
            t.state = IDLE
        return False

    # ------------------------------------------------------------ scanning
    def rescan(self, periodic: bool) -> None:
        found = scan(self.inputs)
        fresh_ids = self.fresh
        self.fresh = set()
        for key, f in found.items():
            t = self.tailers.get(key)
            if t is not None and t.state == CLOSED:
                del self.tailers[key]
                t = None
            ln = log_name_of(f.input, f.path)
            if ln is None:
                if f.path not in self.warned:
                    self.warned.add(f.path)
                    log.warning("not shipped: the file name of %s does not match log_name_pattern %r",
                                f.path, f.input.log_name_pattern)
                continue
            if t is None:
                self._open(key, f, ln, initial=id(f.input) in fresh_ids)
                continue
            t.set_path(f.path)
            t.set_input(f.input, ln)
            if t.state == IDLE:
                if f.st.st_size != t.read_pos:
                    if not t.reopen(f.path):
                        del self.tailers[key]  # not the same file any more
                        self._open(key, f, ln, initial=False)
            elif t.state in (DRAINING, RETIRING):
                if t.fd >= 0:
                    t.state = ACTIVE
                elif t.reopen(f.path):
                    pass
            if periodic and t.fd >= 0 and t.content_changed():
                t.truncated(f.st.st_size)
                self.stats.truncations += 1
        for key, t in list(self.tailers.items()):
            if key in found or t.state in (CLOSED, DRAINING, RETIRING):
                continue
            try:
                st = os.stat(t.path)
                still_there = (st.st_dev, st.st_ino) == key
            except OSError:
                still_there = False
            if still_there:
                log.info("no input wants %s any more; stopping it at offset %d", t.path, t.read_pos)
                t.state = RETIRING
            elif t.fd >= 0:
                log.info("rotated: %s (%s) was renamed or deleted; reading it to its end", t.path, t.identity)
                t.state = DRAINING
            else:
                t.state = CLOSED
        # after the files found were opened: one renamed between the scan and its
        # open is known only by its rename now
        self._follow_renamed(found)
        if periodic:
            self.watcher.plan(self.inputs)
        self.stats.files_open = sum(1 for t in self.tailers.values() if t.fd >= 0)
        self.stats.files_known = len(self.tailers)

    def _follow_renamed(self, found: dict) -> None:
        """A file renamed away from a matching name before a scan found it (rotated
        within milliseconds of its creation) is opened under its new name, read to
        its end and closed, like any rotated file; its lines carry the old path."""
        moves = self.watcher.moves
        while moves:
            old, new = moves.popleft()
            try:
                st = os.stat(new)
            except OSError:
                continue  # gone again: nothing left to read
            key = (st.st_dev, st.st_ino)
            if key in self.tailers or not stat.S_ISREG(st.st_mode):
                continue  # the usual case: known already
            if key in found and found[key].path == new:
                continue  # still matched under its new name, and its open failed (said then)
            inp = owner(self.inputs, old)
            ln = log_name_of(inp, old) if inp is not None else None
            if ln is None:
                continue
            self._open(key, Found(old, inp, st), ln, initial=False, at=new)
            t = self.tailers.get(key)
            if t is not None:
                log.info("rotated before it was found: %s was renamed to %s; reading it to its end", old, new)
                t.state = DRAINING

    def _resume_rotated_while_stopped(self) -> None:
        """At start: a file with a stored position that is no longer at its path
        (renamed by a rotation while the shipper was stopped, to a name no glob
        matches) is looked for by device + inode in its folder; when it has grown
        past its position, it is read from there to its end (the lines keep the path
        they were written under) and closed, like any rotated file."""
        by_folder: dict[str, list] = {}
        for p in self.positions.all():
            if (p.dev, p.ino) not in self.tailers:
                by_folder.setdefault(os.path.dirname(p.path), []).append(p)
        for folder, positions in by_folder.items():
            try:
                with os.scandir(folder) as it:
                    names = {e.inode(): e.path for e in it if e.is_file(follow_symlinks=False)}
            except OSError:
                continue
            for p in positions:
                new = names.get(p.ino)
                if new is None or new == p.path:
                    continue
                try:
                    st = os.stat(new)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key != (p.dev, p.ino) or st.st_size <= p.offset:
                    continue  # another device, or nothing left to read
                try:
                    with open(new, "rb") as f:
                        if not same_start(f.fileno(), (p.fp_len, p.fp_crc)):
                            continue  # the inode now holds another file (a compressed copy, say)
                except OSError:
                    continue
                inp = owner(self.inputs, p.path)
                ln = log_name_of(inp, p.path) if inp is not None else None
                if ln is None:
                    continue
                self._open(key, Found(p.path, inp, st), ln, initial=False, at=new)
                t = self.tailers.get(key)
                if t is not None:
                    log.info("rotated while stopped: %s is now %s; reading it from offset %d to its end",
                             p.path, new, t.read_pos)
                    t.state = DRAINING

    def _open(self, key: tuple[int, int], f: Found, log_name: str, initial: bool, at: str | None = None) -> None:
        """Open the file found as ``f`` (at ``at`` when it was renamed since)."""
        inp = f.input
        try:
            fd = os.open(at or f.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.watcher.changed.set()  # renamed or deleted since the scan: its rename, or the next scan, says where
            return
        except OSError as e:
            if f.path not in self.warned:
                self.warned.add(f.path)
                log.warning("cannot open %s: %s", f.path, e)
            return
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != key:
            os.close(fd)  # replaced between the scan and now: the next scan sees the new one
            self.watcher.changed.set()
            return
        size = st.st_size
        stored = self.positions.get(*key)
        start, how = stored_start(stored, fd, size)
        if start is not None:
            fp = (stored.fp_len, stored.fp_crc)
        elif initial and inp.start_at == "end" and f.path not in self.known_paths:
            start = last_line_end(fd, size)
            fp = fingerprint(fd, min(start, FINGERPRINT_BYTES))
            how = "start_at=end"
        else:
            start, fp = 0, fingerprint(fd, 0)
            how = how or "new file"
        if initial and stored is None and size > 0 and self.new_store is not None:
            self.new_store.append((f.path, size, start))
        os.lseek(fd, start, os.SEEK_SET)
        t = Tailer(key[0], key[1], f.path, fd, inp, log_name, start, fp, self.host, size=size)
        self.tailers[key] = t
        self.known_paths.add(f.path)
        log.info("reading %s (%s, %s) from offset %d of %d -> topic %s, log_name %s",
                 f.path, t.identity, how, start, size, inp.topic, log_name)

    def _report_new_store(self) -> None:
        """With a new position store, say what happens to files that already have
        content: read again from their beginning (start_at: beginning, as Filebeat
        and Vector do without their registry) or skipped to their end (start_at: end)."""
        found, self.new_store = self.new_store, None
        if not found:
            return
        reread = [(p, size) for p, size, start in found if start == 0]
        skipped = [(p, size, start) for p, size, start in found if start > 0]
        names = ", ".join(p for p, *_ in found[:3]) + (", ..." if len(found) > 3 else "")
        parts = []
        if reread:
            parts.append(f"{len(reread)} read from their beginning ({sum(s for _, s in reread)} bytes; lines an "
                         f"earlier run shipped are sent again, with the same file and offset headers, so mtga "
                         f"gives them the same #uuid)")
        if skipped:
            parts.append(f"{len(skipped)} skipped to their end (start_at: end; {sum(st for *_, st in skipped)} "
                         f"bytes not sent)")
        log.warning("new position store at %s (first start, or the state folder was removed): %d existing "
                    "file(s) with content (%s): %s", self.settings.db_path, len(found), names, "; ".join(parts))

    # ------------------------------------------------------------ positions
    def checkpoint(self, sync: bool = False) -> int:
        now = time.time()
        todo = []
        for t in self.tailers.values():
            p = t.position(now)
            if p is not None:
                todo.append((t, p))
        try:
            if todo:
                self.positions.put_many([p for _, p in todo], sync=sync)
            if sync:
                self.db.flush()
        except StateError as e:  # a full disk, say: the old positions stay; lines after them come again
            self.state_errors += 1
            if self.state_errors in (1, 10) or self.state_errors % 100 == 0:
                log.error("positions not saved (%d time(s) so far; the store reopens itself when it can): %s",
                          self.state_errors, e)
            return 0
        if self.state_errors:
            log.info("positions saved again after %d failed attempt(s)", self.state_errors)
            self.state_errors = 0
        for t, p in todo:
            t.mark_saved(p)
        for key, t in list(self.tailers.items()):
            if t.state == CLOSED and not t.pending:
                del self.tailers[key]
        return len(todo)

    def forget_vanished(self) -> None:
        """Forget stored positions of files gone for longer than forget_after_s."""
        cutoff = time.time() - self.conf.forget_after_s
        gone = []
        for p in self.positions.all():
            key = (p.dev, p.ino)
            if key in self.tailers or p.updated_at > cutoff:
                continue
            try:
                st = os.stat(p.path)
                if (st.st_dev, st.st_ino) == key:
                    continue
            except OSError:
                pass
            gone.append(p)
        for p in gone:
            self.positions.forget(p.dev, p.ino)
            self.known_paths.discard(p.path)
        if gone:
            log.info("forgot the positions of %d files gone for more than %.0fs", len(gone),
                     self.conf.forget_after_s)

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
        old = self.settings
        if (new.bootstrap_servers, new.producer, new.state_dir) != (old.bootstrap_servers, old.producer,
                                                                    old.state_dir):
            log.warning("kafka and state_dir changes take effect at the next restart")
        if new.conf.metrics != old.conf.metrics:
            log.warning("metrics changes take effect at the next restart")
        merged: list[Input] = []
        added: list[Input] = []
        for i in new.inputs:  # unchanged inputs keep their running objects
            o = next((o for o in self.inputs if o == i), None)
            if o is None:
                added.append(i)
            merged.append(o if o is not None else i)
        removed = [o for o in self.inputs if o not in new.inputs]
        self.inputs = merged
        self.fresh |= {id(i) for i in added}
        self.settings = new
        self.conf = new.conf
        self.watcher.plan(self.inputs)
        self.rescan(periodic=False)
        log.info("configuration reloaded: %d input(s), %d added, %d removed", len(self.inputs), len(added),
                 len(removed))

    # ------------------------------------------------------------ stats
    def file_stats(self) -> list[FileStat]:
        """Size and delivered offset of each followed file. Also called from the
        metrics server's thread: it only reads (a snapshot of the table; the size
        from the open descriptor when it still is that file's)."""
        out = []
        for t in list(self.tailers.values()):
            size = t.size_seen
            fd = t.fd
            if fd >= 0:
                try:
                    st = os.fstat(fd)
                    if (st.st_dev, st.st_ino) == (t.dev, t.ino):  # not a descriptor number reused meanwhile
                        size = st.st_size
                except OSError:
                    pass
            out.append(FileStat(t.path, t.identity, size, t.delivered))
        return out

    def log_stats(self) -> None:
        files = self.file_stats()
        lps, bps = self.stats.rates()
        behind = sum(f.behind for f in files)
        self.stats.files_open = sum(1 for t in self.tailers.values() if t.fd >= 0)
        log.info("stats: %.0f lines/s, %.2f MB/s, %d files open, %d bytes behind, %d lines waiting for Kafka, "
                 "%d lines sent in all, %d cut",
                 lps, bps / 1e6, self.stats.files_open, behind, self.publisher.inflight_msgs,
                 self.stats.lines_sent, self.stats.cut_lines)
