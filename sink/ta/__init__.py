"""ThinkingData: what a line is. An event in, a track line out (or the reason it
was filtered or failed), by TA's data rules (rules.py), the type guard
(typeguard.py) and the per-app settings (settings.py); transform.py's
``Transformer`` is the entry, batch.py the items in and the outcome out. No
I/O but reading the settings files; nothing here knows Kafka or the output."""
