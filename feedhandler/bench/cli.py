"""`feedhandler bench latency`: the latency benchmark (see feedhandler/bench/latency.py).

One host (default): starts a broker, a simulator per offered rate and a consumer, and writes
results.json and two PNG plots into --out. Two hosts: start
`feedhandler simulate --host 0.0.0.0 --rate R --wall-clock` on the exchange host, then run
this with --url ws://THAT_HOST:PORT --rates R: the clock offset is measured by round trips to
that simulator's WS API, or given with --clock-offset-us (PTP, chrony; see bench/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from feedhandler.argtypes import key_value, number
from feedhandler.bench.latency import MAX_SYMBOLS, SETTLE_S, BenchError, BenchStopped, Options
from feedhandler.bench.pinning import split_cpus
from feedhandler.config import ConfigError, load_config
from feedhandler.contract.streams import normalize_streams


def _rates(text: str) -> list[int]:
    """"1000,10000,max" -> [1000, 10000, 0] (0: saturation)."""
    try:
        rates = [0 if item in ("max", "saturation") else int(number(int)(item))
                 for item in filter(None, (r.strip() for r in text.split(",")))]
    except argparse.ArgumentTypeError:
        rates = []
    if not rates:
        raise argparse.ArgumentTypeError(
            f"rates: whole events/s of 1 or more, or 'max', not {text!r}")
    return rates


def _counts(text: str) -> list[int]:
    """"1,4" -> [1, 4]."""
    try:
        counts = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"counts of 1 or more, not {text!r}")
    return counts


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", required=True)
    lat = sub.add_parser("latency", help="stage latencies exchange -> Kafka consumer",
                         description=__doc__.splitlines()[0])
    lat.add_argument("--rates", type=_rates, default=_rates("1000,10000,100000,max"),
                     help="offered events/s, 'max' = saturation (default: %(default)s)")
    lat.add_argument("--profiles", default="latency,throughput",
                     help="kafka.profile values to run (default: %(default)s)")
    lat.add_argument("--duration", type=number(float), default=5.0,
                     help=f"seconds per paced run, the first {SETTLE_S:g} not counted "
                     "(connecting, topic metadata) (default: %(default)s)")
    lat.add_argument("--symbols", type=number(int), default=8,
                     help=f"symbols, each with every kind, at most {MAX_SYMBOLS:,} "
                     "(default: %(default)s)")
    lat.add_argument("--kinds", default="trade,aggTrade,bookTicker,depth@100ms",
                     help="stream kinds per symbol: the mix (default: %(default)s)")
    lat.add_argument("--saturation-frames", type=number(int), default=300_000,
                     help="frames per saturation run (default: %(default)s)")
    lat.add_argument("--tick-us", type=int, default=None,
                     help="the paced simulator sends the events due every US µs; 1000: its "
                     "loop's timers, bursts of a millisecond (default: ~10 events a tick, "
                     "100-1000 µs)")
    lat.add_argument("--warmup", type=number(float, zero=True), default=15.0,
                     help="seconds of unrecorded run at 20k/s first (a fresh broker "
                     "JIT-compiles; with --url: at that simulator's rate)")
    lat.add_argument("--no-null", action="store_true", help="skip the null-sink runs")
    lat.add_argument("--no-floor", action="store_true", help="skip the bare-producer floor")
    lat.add_argument("--floor-topics", type=_counts, default=[1],
                     help="a floor run per N given, its events round-robin over N topics (the "
                     "handler uses one per kind), e.g. 1,4 (default: 1)")
    lat.add_argument("--url", help="a running simulator (two hosts): ws://HOST:PORT")
    lat.add_argument("--bootstrap", help="a running broker instead of a local one")
    lat.add_argument("--clock-offset-us", type=float, default=None,
                     help="the simulator host's clock minus this host's (two hosts), e.g. from "
                     "PTP or chrony; default with --url: measured by round trips to the "
                     "simulator's WS API (the result says how, and its error)")
    lat.add_argument("--clock-note", default=None, help="how the clocks were aligned")
    lat.add_argument("--out", type=Path, default=Path("bench/results/latency"),
                     help="directory for results.json and the plots (default: %(default)s)")
    lat.add_argument("--no-ack-stamps", action="store_true",
                     help="no per-message delivery reports: no produce->ack / ack->consumer, "
                     "and no thread taking the GIL from the handler")
    lat.add_argument("--pin", action="store_true",
                     help="the handler (and the floor's producer) on a CPU of its own; the local "
                     "broker and simulator and the consumer on the others, as a colocated host "
                     "isolates them")
    lat.add_argument("--no-plots", action="store_true")
    lat.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     type=key_value,
                     help="a handler setting for every handler run (e.g. batch.linger_ms=0.05); "
                     "it wins over the benchmark's own")


def run(args: argparse.Namespace) -> int:
    from feedhandler.bench.latency import run_bench  # (heavy: the handler, numpy, hdrh)
    from feedhandler.bench.report import markdown

    profiles = [p for p in args.profiles.split(",") if p]
    if bad := [p for p in profiles if p not in ("latency", "throughput")]:
        print(f"feedhandler bench: unknown profile {bad[0]!r}", file=sys.stderr)
        return 2
    if not (profiles or not args.no_null or not args.no_floor):
        print("feedhandler bench: nothing to run: no --profiles, --no-null and --no-floor",
              file=sys.stderr)
        return 2
    url = urlsplit(args.url or "")
    if args.url and (url.scheme not in ("ws", "wss") or url.path not in ("", "/") or url.query):
        print(f"feedhandler bench: --url {args.url!r}: expected ws://HOST:PORT or "
              "wss://HOST:PORT (the benchmark names the streams)", file=sys.stderr)
        return 2
    if args.url and len(args.rates) != 1:
        print("feedhandler bench: with --url give the simulator's rate: --rates R",
              file=sys.stderr)
        return 2
    if args.duration <= SETTLE_S:
        print(f"feedhandler bench: --duration must be over the {SETTLE_S:g} s not counted at "
              f"the start of each run, got {args.duration:g}", file=sys.stderr)
        return 2
    if args.symbols > MAX_SYMBOLS:
        print(f"feedhandler bench: --symbols: the simulator's market has {MAX_SYMBOLS}, got "
              f"{args.symbols}", file=sys.stderr)
        return 2
    try:  # before the run, not after it: minutes of results would be lost
        args.out.mkdir(parents=True, exist_ok=True)
        if not os.access(args.out, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        print(f"feedhandler bench: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.tick_us is not None and not 0 < args.tick_us <= 1000:
        print(f"feedhandler bench: --tick-us must be 1..1000, got {args.tick_us}",
              file=sys.stderr)
        return 2
    kinds = [k for k in args.kinds.split(",") if k]
    try:
        normalize_streams([f"btcusdt@{kind}" for kind in kinds] or ["--kinds"])
    except ValueError as exc:
        print(f"feedhandler bench: --kinds: {exc}", file=sys.stderr)
        return 2
    settings = dict(item.split("=", 1) for item in args.set)
    try:  # the values too, before anything is started (each run applies them to its own)
        load_config(None, settings, environ={}, flag_names={k: f"--set {k}" for k in settings})
    except ConfigError as exc:
        print(f"feedhandler bench: {exc}", file=sys.stderr)
        return 2
    if args.pin:
        try:
            split_cpus()
        except ValueError as exc:
            print(f"feedhandler bench: --pin: {exc}", file=sys.stderr)
            return 2
    options = Options(
        rates=args.rates, profiles=profiles, duration_s=args.duration, symbols=args.symbols,
        kinds=kinds,
        saturation_frames=args.saturation_frames, tick_us=args.tick_us, warmup_s=args.warmup,
        null=not args.no_null, floor=not args.no_floor, floor_topics=args.floor_topics,
        url=args.url, bootstrap=args.bootstrap,
        clock_offset_us=args.clock_offset_us, clock_note=args.clock_note,
        ack_stamps=not args.no_ack_stamps,
        pin=args.pin,
        settings=settings,
    )
    def stopped(sig: int, _frame: object) -> None:
        raise BenchStopped(sig)

    # Between handler runs (each takes SIGINT/SIGTERM while it runs): unwind, so that the
    # broker, simulator and consumer stop and the temporary directories go
    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = run_bench(options)
    except (ConfigError, BenchError) as exc:  # (a broker or simulator it cannot reach, ...)
        print(f"feedhandler bench: {exc}", file=sys.stderr)
        return 2
    except BenchStopped as exc:
        print(f"feedhandler bench: stopped by {exc}", file=sys.stderr)
        return 128 + exc.signal
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    options_json = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
    (args.out / "results.json").write_bytes(orjson.dumps(result, option=options_json))
    (args.out / "results.md").write_text(markdown(result))
    if not args.no_plots:
        from feedhandler.bench.plots import cdf_plot, rate_plot

        cdf_plot(result, args.out / "latency_cdf.png")
        rate_plot(result, args.out / "latency_rates.png")
    print(f"results: {args.out / 'results.json'}")
    return 0
