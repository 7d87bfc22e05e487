# The two commands that do all set-up themselves:
#   make demo   sample game logs -> shipper -> local Kafka -> mtga -> LogBus files
#   make test   the whole test suite against a local Kafka the suite starts itself
#   make docs   the documentation site (docs/, mkdocs.yml) built into site/
#   make package  the .deb and .rpm into dist/ (scripts/build-package, packaging/)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test docs venv package kafka-start kafka-stop bench bench-peers clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -c constraints.txt
	@touch $(STAMP)

test: venv
	scripts/ensure-tools
	$(PY) -m pytest tests

# the tests that need no broker (a quick loop while coding)
test-quick: venv
	$(PY) -m pytest -m "not kafka" tests

demo: venv
	scripts/ensure-tools java mvn
	$(PY) scripts/demo.py

# the documentation site into site/; --strict fails on a broken link, anchor or page
docs: venv
	$(VENV)/bin/mkdocs build --strict

# the mulog package, .deb and .rpm, into dist/ (nfpm, built into .tools/ with Go the first time)
package: venv
	$(PY) scripts/build-package

kafka-start: venv
	scripts/ensure-tools java mvn
	scripts/kafka-local start

kafka-stop:
	scripts/kafka-local stop

bench: venv
	$(PY) bench/run.py

# the peer tools of the optional bench cases: rsyslog-kafka, Quix Streams, the OpenTelemetry Collector
bench-peers:
	bench/peers/install

clean:
	scripts/kafka-local stop || true
	rm -rf $(VENV) demo .kafka-local site build/package
