"""shipper: tails log files and publishes every line to Kafka, at least once."""
