"""The skeleton both daemons run on: the loop's timers, signals, systemd
notification, the metrics and health server and the heartbeat beside the loop
(skeleton.py), counted events (instrument.py), logs, the allocator."""
