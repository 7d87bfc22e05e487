"""What the tests share besides their fixtures (tests/conftest.py): the project's
commands run as processes, file systems of the tests' own, and per program the
helpers that drive it against a real broker."""
