"""mtga: consumes game events from Kafka and writes ThinkingData LogBus files."""
