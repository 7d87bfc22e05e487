"""The Kafka side of the shipper: framed lines to Kafka (publisher.py, the only
module that imports the Kafka client) and the positions Kafka acknowledged to
the state store (checkpoint.py)."""
