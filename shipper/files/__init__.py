"""The file side of the shipper: which files are followed (watcher.py,
prospector.py), how they are read (tailer.py, framing.py), what makes a file
the same file (identity.py), and rotated copies (copies.py, copy_rules.py).
Nothing here imports the Kafka client."""
