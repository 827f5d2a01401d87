# Handler image. Build stage: g++ compiles the extensions into a wheel (the producer against
# librdkafka-dev's header; at run time it uses confluent-kafka's librdkafka), installed with
# its locked dependencies (constraints.txt) into a virtualenv. Runtime stage: that virtualenv
# on a slim Python, no compiler, no pip cache, non-root.
#   podman build -t feedhandler:0.1.0 .                       # portable baseline (setup.py)
#   podman build --build-arg FEEDHANDLER_MARCH=x86-64-v3 ...  # opt in to AVX2 (haswell kernel)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# librdkafka-dev: the header the producer compiles against (the library is confluent-kafka's)
RUN apt-get update && apt-get install -y --no-install-recommends g++ librdkafka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY constraints.txt ./
# build requirements, at the versions of the lock
RUN python3 -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir -c constraints.txt \
        cython setuptools numpy pysimdjson picows
COPY pyproject.toml setup.py README.md ./
COPY ext ext
COPY feedhandler feedhandler
ARG FEEDHANDLER_MARCH=
RUN FEEDHANDLER_MARCH="${FEEDHANDLER_MARCH}" /opt/build/bin/pip wheel --no-cache-dir \
        --no-build-isolation --no-deps -w /wheels . \
 && python3 -m venv /opt/feedhandler \
 && /opt/feedhandler/bin/pip install --no-cache-dir -c constraints.txt /wheels/*.whl

FROM ${PYTHON_IMAGE}
# tini as PID 1: it passes signals on and reaps; the handler as PID 1 would ignore SIGTERM until
# it installs its own handler, i.e. through start-up's Kafka check (up to 30 s)
RUN apt-get update && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/feedhandler /opt/feedhandler
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin feedhandler
USER 10001
# OPENBLAS_NUM_THREADS: numpy's BLAS is never used here; its idle threads would spin on a core
ENV PATH=/opt/feedhandler/bin:$PATH OPENBLAS_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
# /livez /readyz /metrics when health_port is set (k8s/base/feedhandler.yaml sets 8080)
EXPOSE 8080
ENTRYPOINT ["tini", "--", "feedhandler"]
CMD ["run", "--config", "/etc/feedhandler/feedhandler.yaml"]
