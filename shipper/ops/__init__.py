"""The shipper as operators meet it: the command line, ``shipper status`` and
the metrics and health endpoints."""
