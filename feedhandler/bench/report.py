"""A `feedhandler bench latency` result as Markdown tables (results.md, BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

from feedhandler.bench.latency import STAGES, run_name

SHORT = {"exchange_to_receive": "send→recv", "receive_to_produce": "recv→produce",
         "produce_to_ack": "produce→ack", "ack_to_consumer": "ack→consumer",
         "end_to_end": "end to end"}


def _offered(run: dict[str, Any]) -> str:
    offered = run["offered"]
    return f"{offered:,}" if isinstance(offered, int) else str(offered)


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    connections = meta.get("connections", 1)
    mix = (f"- Mix: {meta['symbols']} symbols x {', '.join(meta['kinds'])} ({meta['streams']} "
           f"streams, {connections} connection{'s' * (connections != 1)}); "
           f"{meta['duration_s']:g} s per paced run, the first {meta['settle_s']:g} s not "
           "counted; send→recv and end to end: events with an event time (not bookTicker)")
    if ticks := meta.get("simulator_tick_us"):
        mix += "; the paced simulator sends the events due every " + ", ".join(
            f"{tick} µs at {int(rate):,}/s" for rate, tick in ticks.items())
    notes = [f"- Clock: {meta['clock']}"]
    if meta.get("clock_offset_given"):
        notes.append(f"- Clock offset applied: {meta['clock_offset_us']:+,.1f} µs (given by "
                     "--clock-offset-us)")
    if rt := meta.get("clock_round_trip"):
        notes.append(f"- Clock round trip: {rt['offset_us']:+,.0f} µs ± {rt['error_us']:,.0f} "
                     f"µs (the simulator host's clock minus ours, shortest of {rt['samples']})")
    if meta.get("pinned"):
        notes.append(f"- Pinned: {meta['pinned']}")
    lines = [f"- Command: `{meta['command']}`",
             f"- Date: {meta['date']}; machine: {meta['machine']}", mix, *notes, "",
             "Latency percentiles in µs, p50 / p99 / p99.9 (`-`: not measured in that run):", "",
             "| run | offered/s | handled/s | " + " | ".join(SHORT[s] for s in STAGES) + " |",
             "|---|---:|---:|" + "---:|" * len(STAGES)]
    for run in result["runs"]:
        cells = []
        for stage in STAGES:
            s = run["stages"].get(stage, {})
            cells.append(f"{s['p50_us']:,.0f} / {s['p99_us']:,.0f} / {s['p99_9_us']:,.0f}"
                         if s.get("count") else "-")
        handled = f"{run['throughput_fps']:,.0f}" if run.get("throughput_fps") else "-"
        lines.append(f"| {run_name(run)} | {_offered(run)} | {handled} | " + " | ".join(cells)
                     + " |")
    halves = [f"{run_name(run)} at {_offered(run)}/s: " + " then ".join(
        f"{h['p50_us']:,.0f} / {h['p99_us']:,.0f}" if h.get("count") else "-"
        for h in run["halves"]) for run in result["runs"] if run.get("halves")]
    if halves:
        lines += ["", "The floor ran in two halves, before and after the handler's runs at its "
                  "rate, pooled above; end to end p50 / p99 in µs of each half (the broker's "
                  "drift meanwhile): " + "; ".join(halves) + "."]
    lines += ["", "CPU µs per frame (handler process incl. librdkafka threads, from a batch's "
              "hand-over once every connection has sent frames to the run's end; broker JVM; "
              "floor: the producer process, from its first send through its flush):", "",
              "| run | offered/s | CPU µs per frame |", "|---|---:|---|"]
    for run in result["runs"]:
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in run["cpu_us_per_frame"].items())
        lines.append(f"| {run_name(run)} | {_offered(run)} | {cpu} |")
    return "\n".join(lines) + "\n"
