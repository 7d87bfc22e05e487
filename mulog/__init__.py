"""Shared pieces of the shipper and mtga programs: configuration loading,
the commented-JSON reader, logging setup and Kafka client helpers."""

import functools


@functools.cache
def version() -> str:
    """The installed version of the programs (the package's metadata)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("mulog-pipeline")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
