"""Offline validation of the Kubernetes base: structure, hardening, and a loadable config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from feedhandler.config import load_config
from feedhandler.supervisor.plan import plan

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "k8s" / "base"
ENV = {"FEEDHANDLER_SHARD_INDEX": "0", "FEEDHANDLER_SHARD_COUNT": "1"}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((BASE / name).read_text())


def test_kustomization_lists_existing_files() -> None:
    kustomization = load("kustomization.yaml")
    files = kustomization["resources"] + kustomization["configMapGenerator"][0]["files"]
    assert files == ["statefulset.yaml", "service.yaml", "pdb.yaml", "feedhandler.yaml"]
    assert all((BASE / f).is_file() for f in files)


def test_statefulset_is_hardened_and_sharded() -> None:
    sts = load("statefulset.yaml")
    assert sts["kind"] == "StatefulSet" and sts["spec"]["serviceName"] == "feedhandler"
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"]["memory"] == "1Gi"
    env = {e["name"]: e for e in container["env"]}
    assert env["FEEDHANDLER_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['apps.kubernetes.io/pod-index']"
    assert container["args"][-1] == "/etc/feedhandler/feedhandler.yaml"


def test_pdb_and_service() -> None:
    pdb = load("pdb.yaml")["spec"]
    assert (pdb["maxUnavailable"], pdb["unhealthyPodEvictionPolicy"]) == (1, "AlwaysAllow")
    assert load("service.yaml")["spec"]["clusterIP"] == "None"


def test_configmap_is_a_valid_handler_config() -> None:
    config = load_config(BASE / "feedhandler.yaml", environ=ENV)
    assert config.sink == "kafka" and len(config.streams) == 8
    assert config.batch.per_kind["bookTicker"] == {"rows": 512, "linger_ms": 1}
    shards = plan(config.url, config.streams, config.connection.streams_per_connection)
    assert [len(s.streams) for s in shards] == [8]
    assert shards[0].url.startswith("wss://stream.binance.com:9443/stream?streams=")


def test_probes_and_scrape_target_use_the_configured_health_port() -> None:
    config = load_config(BASE / "feedhandler.yaml", environ=ENV)
    port = config.health_port
    assert port > 0 and config.health_host == "0.0.0.0"  # the kubelet probes the pod IP
    template = load("statefulset.yaml")["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": port}
    paths: dict[str, str] = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert ports.get(get["port"], get["port"]) == port, probe  # by name or by number
        paths[probe] = get["path"]
    assert paths == {"startupProbe": "/livez", "livenessProbe": "/livez",
                     "readinessProbe": "/readyz"}
    annotations = template["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                           "prometheus.io/path": "/metrics"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^EXPOSE (\d+)$", dockerfile, re.M) == [str(port)]
