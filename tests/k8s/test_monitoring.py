"""The alerts and the Grafana dashboard only use metrics the handler exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from feedhandler.app.handler import Handler
from feedhandler.app.metrics import METRICS, SINK_METRICS, exposition
from feedhandler.config import load_config
from tests.app.prometheus_text import parse_metrics

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
METRIC = re.compile(r"\b((?:feedhandler|process|python)_[a-z0-9_]+)")


def exported() -> set[str]:
    """Every sample name /metrics can show (histogram series included)."""
    names = set()
    for name, spec in METRICS.items():
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} \
            if spec.type == "histogram" else {name}
    names |= {f"feedhandler_sink_{suffix}" for suffix, _ in SINK_METRICS.values()}
    handler = Handler(load_config(None, {"url": "ws://127.0.0.1:9", "sink": "null"}, environ={}))
    names |= {name for name, _ in parse_metrics(exposition(handler))[0]}  # process_*, python_*
    return names


def test_alerts_cover_the_operational_risks_with_real_metrics() -> None:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    rules = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"FeedhandlerDown", "FeedhandlerShardStale", "FeedhandlerGaps",
            "FeedhandlerDeliveryFailures", "FeedhandlerKafkaStalled",
            "FeedhandlerBacklog"} <= rules.keys()
    names = exported()
    for alert, expr in rules.items():
        used = set(METRIC.findall(expr))
        assert used <= names, (alert, used - names)
        # a pod that exports nothing is seen from outside: its scrape target, its StatefulSet
        assert used or alert == "FeedhandlerDown", alert
    assert "up{" in rules["FeedhandlerDown"] and "kube_statefulset" in rules["FeedhandlerDown"]


def test_dashboard_queries_use_real_metrics() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    names = exported()
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used <= names, used - names
    assert {"feedhandler_latency_seconds_bucket", "feedhandler_frames_total",
            "process_cpu_seconds_total"} <= used
