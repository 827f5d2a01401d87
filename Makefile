# One command each for a fresh machine: `make demo` and `make test` set everything up first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KUSTOMIZE_VERSION := v5.8.1
KUSTOMIZE := .tools/kustomize
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)

.PHONY: setup build kafka test demo bench lint clean

# librdkafka's C header, for the producer (ext/feedhandler/_ext/producer.pyx; the library is
# the one confluent-kafka's wheel ships), unpacked from Debian's librdkafka-dev (no root
# needed) unless the system has it
RDKAFKA_H := $(if $(wildcard /usr/include/librdkafka/rdkafka.h),,.tools/librdkafka/usr/include/librdkafka/rdkafka.h)
.tools/librdkafka/usr/include/librdkafka/rdkafka.h:
	rm -rf .tools/librdkafka && mkdir -p .tools/librdkafka
	cd .tools/librdkafka && apt-get download librdkafka-dev && dpkg -x librdkafka-dev_*.deb . \
	  && rm librdkafka-dev_*.deb

$(STAMP): pyproject.toml constraints.txt setup.py $(RDKAFKA_H)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -r constraints.txt
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $@

# Python environment + compiled extensions (editable install builds ext/ in place)
setup: $(STAMP) kafka $(KUSTOMIZE)

# kustomize for tests/k8s, from the Go module proxy (go caches the download)
$(KUSTOMIZE):
	GOBIN=$(CURDIR)/.tools GOFLAGS=-mod=mod $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# Rebuild the extensions after editing ext/ (FEEDHANDLER_BUILD=debug for checks)
build: $(STAMP)
	$(PY) setup.py --quiet build_clib build_ext --inplace

# Apache Kafka jars from Maven Central (cached in .kafka/)
kafka: $(STAMP)
	scripts/kafka-local fetch

# Lint and type check first: CI (.ci/run) runs this target
test: setup lint
	$(PY) -m pytest -q

demo: setup
	$(PY) scripts/demo.py

# (numpy's idle BLAS threads would otherwise spin on one of the cores being measured)
bench: export OPENBLAS_NUM_THREADS = 1
bench: setup
	$(PY) -m pytest bench/bench_parse.py -q --benchmark-columns=min,median,rounds
	$(PY) -m pytest bench/bench_kafka_sink.py -q -s --benchmark-columns=min,median,rounds
	$(PY) bench/bench_handler_vs_picows.py
	$(PY) bench/bench_simulator_headroom.py
	$(PY) bench/bench_kafka_e2e.py --rounds 5

lint: $(STAMP)
	$(VENV)/bin/ruff check feedhandler tests bench scripts
	$(VENV)/bin/mypy

clean:
	rm -rf build $(VENV) .kafka .tools feedhandler/_ext/*.so ext/feedhandler/_ext/*.cpp
