# Handler image: build the extensions for a portable x86-64-v3 target (AVX2: simdjson's
# On-Demand kernel is chosen at compile time), then ship a slim non-root runtime.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY constraints.txt pyproject.toml setup.py README.md ./
COPY ext ext
COPY feedhandler feedhandler
ENV FEEDHANDLER_MARCH=x86-64-v3
RUN pip install --no-cache-dir -c constraints.txt cython==3.3.1 setuptools==84.2.1 numpy==2.4.6 \
        pysimdjson==7.0.2 picows==2.3.1 \
 && pip wheel --no-cache-dir --no-build-isolation --no-deps -w /wheels .

FROM python:3.11-slim
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir -c /tmp/constraints.txt /wheels/*.whl && rm -rf /wheels \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin feedhandler
USER 10001
# numpy's BLAS is never used here; its idle worker threads would spin on a core the handler needs
ENV OPENBLAS_NUM_THREADS=1
# /livez /readyz /metrics when health_port is set (k8s/base/feedhandler.yaml sets 8080)
EXPOSE 8080
ENTRYPOINT ["feedhandler"]
CMD ["run", "--config", "/etc/feedhandler/feedhandler.yaml"]
