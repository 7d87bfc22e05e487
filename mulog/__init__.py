"""Shared pieces of the shipper and mtga programs: configuration loading,
the commented-JSON reader, logging setup and Kafka client helpers."""
