"""Every kustomization renders with kustomize and validates offline against the Kubernetes
schemas of the oldest supported (1.28: the pod-index label) and the newest bundled version;
the Prometheus Operator kinds against the schema below. Then what each overlay promises."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from feedhandler.config import load_config
from tests.k8s.render import OVERLAYS, build, find

MIN_VERSION = "1.28.0"
CRDS = {"PodMonitor", "PrometheusRule"}
# The fields of the monitoring.coreos.com/v1 kinds that these manifests use: kubernetes-validate
# bundles only the built-in kinds, and the operator's CRDs cannot be fetched here.
CRD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
    },
    "oneOf": [
        {"properties": {"kind": {"const": "PodMonitor"}, "spec": {
            "type": "object", "additionalProperties": False,
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": {"type": "object", "required": ["matchLabels"]},
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                   "interval": {"type": "string",
                                                "pattern": "^[0-9]+(ms|s|m|h)$"}}}}}}}},
        {"properties": {"kind": {"const": "PrometheusRule"}, "spec": {
            "type": "object", "additionalProperties": False, "required": ["groups"],
            "properties": {"groups": {"type": "array", "items": {
                "type": "object", "required": ["name", "rules"],
                "properties": {"rules": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["alert", "expr"],
                    "properties": {"alert": {"type": "string", "pattern": "^[A-Za-z_]+$"},
                                   "expr": {"type": "string"},
                                   "for": {"type": "string", "pattern": "^[0-9]+(s|m|h)$"},
                                   "labels": {"type": "object"},
                                   "annotations": {"type": "object"}}}}}}}}}}},
    ],
}


def pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in docs
            if d["kind"] in ("StatefulSet", "Deployment")]


def handler_env(container: dict[str, Any], pod_index: int) -> dict[str, str]:
    """The variables the kubelet would set (service links are off: none of those)."""
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "secretKeyRef" in source:
            env[var["name"]] = "from-a-secret"
        else:
            path = source["fieldRef"]["fieldPath"]
            env[var["name"]] = str(pod_index) if "pod-index" in path else f"feedhandler-{pod_index}"
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_renders_and_validates_offline(overlay: str) -> None:
    docs = build(overlay)
    assert docs
    for doc in docs:
        if doc["kind"] in CRDS:
            jsonschema.validate(doc, CRD_SCHEMA)
            continue
        for version in (MIN_VERSION, kubernetes_validate.latest_version()):
            kubernetes_validate.validate(doc, version, strict=True)  # raises on any error
    for pod in pod_specs(docs):
        assert pod["enableServiceLinks"] is False  # FEEDHANDLER_*_SERVICE_HOST never appears
        assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shard_count_is_the_replica_count_and_every_pod_loads_its_config(overlay: str) -> None:
    docs = build(overlay)
    sts = find(docs, "StatefulSet", "feedhandler")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    config_map = next(d for d in docs if d["kind"] == "ConfigMap"
                      and d["metadata"]["name"].startswith("feedhandler-config"))
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    replicas = sts["spec"]["replicas"]
    text = config_map["data"]["feedhandler.yaml"]
    for index in range(replicas):
        env = handler_env(container, index)
        assert env["FEEDHANDLER_SHARD_COUNT"] == str(replicas)
        config = _load(text, env)
        assert (config.shard_index, config.shard_count) == (index, replicas)


def _load(text: str, env: dict[str, str]) -> Any:
    """The handler's config as the pod loads it: the ConfigMap's file under the pod's env,
    with a stand-in for each file a `_FILE` variable names (a mounted Secret's)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feedhandler.yaml"
        path.write_text(text)
        env = dict(env)
        for name, value in env.items():
            if name.endswith("_FILE"):
                env[name] = str(Path(tmp) / Path(value).name)
                Path(env[name]).write_text("from-a-secret\n")
        return load_config(path, environ=env)


def test_no_service_named_feedhandler_injects_variables() -> None:
    for overlay in OVERLAYS:
        for doc in build(overlay):
            if doc["kind"] == "Service" and doc["metadata"]["name"].startswith("feedhandler"):
                assert doc["spec"]["clusterIP"] == "None", overlay


def test_production_is_guaranteed_monitored_and_takes_sasl_from_a_secret() -> None:
    docs = build("overlays/production")
    sts = find(docs, "StatefulSet", "feedhandler")
    assert sts["spec"]["replicas"] == 3 and sts["metadata"]["namespace"] == "market-data"
    for pod in pod_specs(docs):
        for container in pod["containers"]:
            resources = container["resources"]
            assert resources["requests"] == resources["limits"]  # Guaranteed QoS
            assert set(resources["limits"]) == {"cpu", "memory"}
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/market-data/feedhandler:0.1.0"
    env = {e["name"]: e for e in container["env"]}
    username = env["FEEDHANDLER_KAFKA__PRODUCER__SASL_USERNAME"]
    assert username["valueFrom"]["secretKeyRef"]["name"] == "feedhandler-kafka"
    # the password as a file of the Secret, readable by the handler's group alone
    assert "FEEDHANDLER_KAFKA__PRODUCER__SASL_PASSWORD" not in env
    password = Path(env["FEEDHANDLER_KAFKA__PRODUCER__SASL_PASSWORD_FILE"]["value"])
    pod = sts["spec"]["template"]["spec"]
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == password.parent]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] and volume["secret"]["secretName"] == "feedhandler-kafka"
    assert volume["secret"]["items"] == [{"key": "password", "path": password.name}]
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    config_map = next(d for d in docs if d["metadata"]["name"].startswith("feedhandler-config"))
    config = _load(config_map["data"]["feedhandler.yaml"], handler_env(container, 0))
    producer = config.kafka.producer
    assert (producer["sasl.username"], producer["sasl.password"]) == ("from-a-secret",) * 2
    assert not any("password" in str(d.get("data", "")).lower() for d in docs
                   if d["kind"] == "ConfigMap" and d["metadata"]["name"] != "feedhandler-dashboard")
    monitor = find(docs, "PodMonitor", "feedhandler")
    # (an annotation-based scrape config too would take every pod twice: duplicate alerts)
    assert sts["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "false"
    for kind in CRDS:  # what kube-prometheus-stack's selectors ask for, set in one place
        (doc,) = [d for d in docs if d["kind"] == kind]
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    ports = {p["name"] for p in container["ports"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        sts["spec"]["template"]["metadata"]["labels"].items()
    policy = find(docs, "NetworkPolicy", "feedhandler")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= \
        sts["spec"]["template"]["metadata"]["labels"].items()
    assert {p["port"] for p in policy["spec"]["ingress"][0]["ports"]} == \
        {container["ports"][0]["containerPort"]}
    assert {d["kind"] for d in docs} >= {"PrometheusRule", "ConfigMap", "PodDisruptionBudget"}


def test_demo_wires_the_handler_to_its_simulator_and_kafka() -> None:
    docs = build("overlays/demo")
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == \
        {"feedhandler-demo"}
    config_map = next(d for d in docs if d["metadata"]["name"].startswith("feedhandler-config"))
    config = _load(config_map["data"]["feedhandler.yaml"],
                   {"FEEDHANDLER_SHARD_INDEX": "0", "FEEDHANDLER_SHARD_COUNT": "1"})
    services = {d["metadata"]["name"]: {p["port"] for p in d["spec"].get("ports", [])}
                for d in docs if d["kind"] == "Service"}
    host, port = re.fullmatch(r"ws://([^:/]+):(\d+)", config.url).groups()  # type: ignore[union-attr]
    assert int(port) in services[host]
    kafka_host, kafka_port = config.kafka.bootstrap.split(":")
    assert int(kafka_port) in services[kafka_host]
    sim = find(docs, "Deployment", "binance-sim")["spec"]["template"]["spec"]["containers"][0]
    assert sim["args"][:1] == ["simulate"] and sim["args"][sim["args"].index("--port") + 1] == port
    images = {c["image"] for p in pod_specs(docs) for c in p["containers"]}
    assert images == {"feedhandler:0.1.0", "apache/kafka:4.1.1"}
