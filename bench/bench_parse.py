"""Parser benchmark: ns per message to parse a frame and store its record(s), per stream kind.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest bench/bench_parse.py \
        --benchmark-columns=min,median,rounds

(OPENBLAS_NUM_THREADS=1: numpy's idle BLAS threads otherwise spin on one of the 2 cores.)

(pytest-benchmark; not part of the test run, whose testpaths is tests/.) Side by side:

  cpp         the C++ decoder, fed as the listener feeds it: Decoder.decode_many(frames), a C
              loop over feed() with one numpy batch per 4096 rows
  cpp-call    the same decoder with one Python-level Decoder.decode(frame) call per frame
  orjson      (a) orjson.loads + the same record built in Python: decimals converted with
              str.partition + int (no Decimal, no validation: a fast, generous baseline),
              written as one tuple per row into a numpy structured array (4096-row batches)
  pysimdjson  (b) simdjson.Parser().parse (pysimdjson's Python API) + the same record building

Every implementation's records are checked equal to the C++ decoder's before timing. Frames
are realistic and sequence-consistent (no gap rows). At the end a table of ns/message
(the fastest of 15 rounds) and the ratios to cpp is printed; BENCH_PARSE_MD=<file> also writes it
as markdown (bench/BENCHMARKS.md "Parser" quotes it).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import simdjson

from feedhandler._ext.decoder import Decoder
from feedhandler.records import SCHEMAS

TS_RECV = 1_700_000_000_000_000_000
BATCH = 4096
MASK64 = (1 << 64) - 1
SCALE = 100_000_000


# --- frames ----------------------------------------------------------------------------------


def _px(rng: random.Random, low: float, high: float) -> str:
    return f"{rng.uniform(low, high):.8f}"


def frames_book_ticker(n: int, rng: random.Random) -> list[bytes]:
    return [
        b'{"u":%d,"s":"BNBUSDT","b":"%s","B":"%s","a":"%s","A":"%s"}'
        % (400900217 + i, *(_px(rng, 1, 1000).encode() for _ in range(4)))
        for i in range(n)
    ]


def frames_trade(n: int, rng: random.Random) -> list[bytes]:
    return [
        b'{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,"p":"%s","q":"%s","T":%d,"m":%s,"M":true}'
        % (1672515782136 + i, 3000000000 + i, _px(rng, 20000, 70000).encode(),
           _px(rng, 0, 2).encode(), 1672515782135 + i, b"true" if i % 3 else b"false")
        for i in range(n)
    ]  # fmt: skip


def frames_trade_symbols(n: int, rng: random.Random) -> list[bytes]:
    """frames_trade's over 400 symbols in random order, ids continuous per symbol: a busy
    connection's lookups of per-symbol sequence state."""
    last = [3000000000] * 400
    frames = []
    for i, frame in enumerate(frames_trade(n, rng)):
        k = rng.randrange(400)
        last[k] += 1
        frames.append(frame.replace(b'"s":"BTCUSDT","t":%d' % (3000000000 + i),
                                    b'"s":"S%03dUSDT","t":%d' % (k, last[k])))
    return frames


def frames_agg_trade(n: int, rng: random.Random) -> list[bytes]:
    return [
        b'{"e":"aggTrade","E":%d,"s":"BTCUSDT","a":%d,"p":"%s","q":"%s","f":%d,"l":%d,'
        b'"T":%d,"m":%s,"M":true}'
        % (1672515782136 + i, 2000000000 + i, _px(rng, 20000, 70000).encode(),
           _px(rng, 0, 2).encode(), 3000000000 + 3 * i, 3000000002 + 3 * i,
           1672515782135 + i, b"true" if i % 3 else b"false")
        for i in range(n)
    ]  # fmt: skip


def _levels(rng: random.Random, n: int) -> list[list[str]]:
    return [[_px(rng, 20000, 70000), _px(rng, 0, 5)] for _ in range(n)]


def frames_depth(n: int, rng: random.Random) -> list[bytes]:
    """Diff depth events with 20 levels (10 bids + 10 asks): 20 rows each."""
    out = []
    for i in range(n):
        event = {"e": "depthUpdate", "E": 1672515782136 + i, "s": "BTCUSDT",
                 "U": 100 + 10 * i, "u": 109 + 10 * i, "b": _levels(rng, 10),
                 "a": _levels(rng, 10)}  # fmt: skip
        out.append(json.dumps(event, separators=(",", ":")).encode())
    return out


# Real captures (../shared/corpus, beside the repo): a recorded depthUpdate gives the event's
# shape, REST depth snapshots of the same market the level strings, as Binance formats them.
CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "binance"


def _real_levels() -> tuple[dict[str, Any], list[list[str]], list[list[str]]]:
    """(a recorded depthUpdate event, real bid levels, real ask levels), all from captures."""
    if not CORPUS.is_dir():
        pytest.skip(f"Binance corpus not found at {CORPUS}")
    event = json.loads((CORPUS / "depthUpdate.jsonl").read_text().splitlines()[0])
    bids: list[list[str]] = []
    asks: list[list[str]] = []
    for line in (CORPUS / "rest_depth.jsonl").read_text().splitlines():
        snapshot = json.loads(line)
        bids += snapshot["bids"]
        asks += snapshot["asks"]
    return event, bids, asks


def frames_depth_real(levels: int) -> Callable[[int, random.Random], list[bytes]]:
    """Diff depth events with `levels` real levels a side (2 x levels rows each), consecutive
    update ids: the heavy updates real books send (100-325 levels a side)."""

    def make(n: int, rng: random.Random) -> list[bytes]:
        event, bids, asks = _real_levels()
        out = []
        for i in range(n):
            start = rng.randrange(0, min(len(bids), len(asks)) - levels)
            out.append(json.dumps({**event, "E": event["E"] + i, "U": 100 + 1000 * i,
                                   "u": 1099 + 1000 * i, "b": bids[start:start + levels],
                                   "a": asks[start:start + levels]},
                                  separators=(",", ":")).encode())
        return out

    return make


def frames_depth20(n: int, rng: random.Random) -> list[bytes]:
    """Partial depth top-20 snapshots (20 bids + 20 asks) in the combined wrapper: 1 row."""
    out = []
    for i in range(n):
        data = {"lastUpdateId": 160 + i, "bids": _levels(rng, 20), "asks": _levels(rng, 20)}
        out.append(json.dumps({"stream": "btcusdt@depth20@100ms", "data": data},
                              separators=(",", ":")).encode())  # fmt: skip
    return out


def frames_kline(n: int, rng: random.Random) -> list[bytes]:
    out = []
    for i in range(n):
        bar = {"t": 1672515780000, "T": 1672515839999, "s": "BTCUSDT", "i": "1m",
               "f": 100 + i, "L": 200 + i, "o": _px(rng, 1, 9), "c": _px(rng, 1, 9),
               "h": _px(rng, 1, 9), "l": _px(rng, 1, 9), "v": _px(rng, 0, 1e6), "n": 100 + i,
               "x": False, "q": _px(rng, 0, 1e9), "V": _px(rng, 0, 1e6),
               "Q": _px(rng, 0, 1e9), "B": "0"}  # fmt: skip
        event = {"e": "kline", "E": 1672515782136 + i, "s": "BTCUSDT", "k": bar}
        out.append(json.dumps(event, separators=(",", ":")).encode())
    return out


def _ticker(rng: random.Random, symbol: str, i: int) -> dict[str, Any]:
    return {
        "e": "24hrTicker", "E": 1672515782136 + i, "s": symbol,
        **{k: _px(rng, 0, 100) for k in "pPwxcQbBaAohl"}, "v": _px(rng, 0, 1e8),
        "q": _px(rng, 0, 1e11), "O": 1672429382136, "C": 1672515782136, "F": 0,
        "L": 18150 + i, "n": 18151 + i,
    }  # fmt: skip


def frames_ticker(n: int, rng: random.Random) -> list[bytes]:
    return [json.dumps(_ticker(rng, "BNBBTC", i), separators=(",", ":")).encode()
            for i in range(n)]  # fmt: skip


MINI_PER_ARRAY = 100


def frames_mini_arr(n: int, rng: random.Random) -> list[bytes]:
    """`!miniTicker@arr` frames of 100 symbols each (100 rows per message)."""
    out = []
    for i in range(n):
        items = [{"e": "24hrMiniTicker", "E": 1672515782136 + i, "s": f"SYM{j}USDT",
                  "c": _px(rng, 0, 100), "o": _px(rng, 0, 100), "h": _px(rng, 0, 100),
                  "l": _px(rng, 0, 100), "v": _px(rng, 0, 1e8), "q": _px(rng, 0, 1e11)}
                 for j in range(MINI_PER_ARRAY)]  # fmt: skip
        out.append(json.dumps(items, separators=(",", ":")).encode())
    return out


# --- the fast pure-Python record builders (shared by baselines a and b) -----------------------


def fx(s: str) -> int:
    """Decimal string -> 1e-8 units without Decimal (and without validating anything)."""
    if s[0] == "-":
        return -fx(s[1:])
    whole, _, frac = s.partition(".")
    return int(whole) * SCALE + (int(frac.ljust(8, "0")) if frac else 0)


def wide(s: str) -> tuple[int, int]:
    v = fx(s)
    return v & MASK64, v >> 64


class Table:
    """One kind's batches: a preallocated structured array, replaced when full."""

    def __init__(self, kind: str) -> None:
        self.dtype = SCHEMAS[kind].dtype
        self.rows = np.empty(BATCH, self.dtype)
        self.n = 0
        self.done: list[np.ndarray] = []

    def add(self, row: tuple) -> None:
        self.rows[self.n] = row
        self.n += 1
        if self.n == BATCH:
            self.done.append(self.rows)
            self.rows = np.empty(BATCH, self.dtype)
            self.n = 0

    def result(self) -> np.ndarray:
        return np.concatenate([*self.done, self.rows[: self.n]])


def build_book_ticker(m: Any, t: Table) -> None:
    t.add((TS_RECV, m["u"], fx(m["b"]), wide(m["B"]), fx(m["a"]), wide(m["A"]), m["s"].encode()))


def build_trade(m: Any, t: Table) -> None:
    t.add((TS_RECV, m["E"] * 1_000_000, m["T"] * 1_000_000, m["t"], fx(m["p"]), fx(m["q"]),
           m["m"], m["s"].encode()))  # fmt: skip


def build_agg_trade(m: Any, t: Table) -> None:
    t.add((TS_RECV, m["E"] * 1_000_000, m["T"] * 1_000_000, m["a"], m["f"], m["l"],
           fx(m["p"]), fx(m["q"]), m["m"], m["s"].encode()))  # fmt: skip


def build_depth(m: Any, t: Table) -> None:
    e, s, first, last = m["E"] * 1_000_000, m["s"].encode(), m["U"], m["u"]
    rows = [(0, p, q) for p, q in m["b"]] + [(1, p, q) for p, q in m["a"]]
    for i, (side, p, q) in enumerate(rows):
        flags = (1 if i == 0 else 0) | (2 if i == len(rows) - 1 else 0)
        t.add((TS_RECV, e, first, last, fx(p), wide(q), side, flags, s))


def build_depth20(m: Any, t: Table) -> None:
    stream, data = m["stream"], m["data"]
    symbol, _, name = stream.partition("@")
    bids = [(fx(p), wide(q)) for p, q in data["bids"]]
    asks = [(fx(p), wide(q)) for p, q in data["asks"]]
    pad = [(0, (0, 0))] * 20
    b, a = (bids + pad)[:20], (asks + pad)[:20]
    t.add((TS_RECV, data["lastUpdateId"], [x[0] for x in b], [x[1] for x in b],
           [x[0] for x in a], [x[1] for x in a], int(name[5:].partition("@")[0]), len(bids),
           len(asks), symbol.upper().encode()))  # fmt: skip


def build_kline(m: Any, t: Table) -> None:
    k = m["k"]
    t.add((TS_RECV, m["E"] * 1_000_000, k["t"] * 1_000_000, k["T"] * 1_000_000, k["f"], k["L"],
           k["n"], fx(k["o"]), fx(k["h"]), fx(k["l"]), fx(k["c"]), wide(k["v"]), wide(k["q"]),
           wide(k["V"]), wide(k["Q"]), k["x"], k["i"].encode(), 0, m["s"].encode()))  # fmt: skip


def build_ticker(m: Any, t: Table) -> None:
    # book-level quantities (B, A) and volumes are 128-bit
    t.add((TS_RECV, m["E"] * 1_000_000, *((wide if k in "BA" else fx)(m[k])
                                         for k in "pPwxcQbBaAohl"),
           wide(m["v"]), wide(m["q"]), m["O"] * 1_000_000, m["C"] * 1_000_000, m["F"], m["L"],
           m["n"], m["s"].encode()))  # fmt: skip


def build_mini_arr(m: Any, t: Table) -> None:
    for x in m:
        t.add((TS_RECV, x["E"] * 1_000_000, fx(x["c"]), fx(x["o"]), fx(x["h"]), fx(x["l"]),
               wide(x["v"]), wide(x["q"]), x["s"].encode()))  # fmt: skip


# kind label -> (frames, frame count, record table, rows per message, Python builder)
CASES: dict[str, tuple[Callable[..., list[bytes]], int, str, int, Callable[[Any, Table], None]]] = {
    "bookTicker": (frames_book_ticker, 5000, "bookTicker", 1, build_book_ticker),
    "trade": (frames_trade, 5000, "trade", 1, build_trade),
    "trade (400 symbols)": (frames_trade_symbols, 5000, "trade", 1, build_trade),
    "aggTrade": (frames_agg_trade, 5000, "aggTrade", 1, build_agg_trade),
    "depth (20 levels)": (frames_depth, 1000, "depth", 20, build_depth),
    "depth (2 x 100 real levels)": (frames_depth_real(100), 200, "depth", 200, build_depth),
    "depth (2 x 300 real levels)": (frames_depth_real(300), 100, "depth", 600, build_depth),
    "depth20 partial": (frames_depth20, 1000, "depthPartial", 1, build_depth20),
    "kline": (frames_kline, 2000, "kline", 1, build_kline),
    "ticker": (frames_ticker, 2000, "ticker", 1, build_ticker),
    "miniTicker arr (100)": (frames_mini_arr, 50, "miniTicker", MINI_PER_ARRAY, build_mini_arr),
}
IMPLS = ["cpp", "cpp-call", "orjson", "pysimdjson"]


def run_cpp(frames: list[bytes], table: str) -> np.ndarray:
    batches: list[np.ndarray] = []
    decoder = Decoder(lambda kind, records: batches.append(records), linger_ms=None,
                      batch_rows=BATCH)  # fmt: skip
    decoder.decode_many(frames, TS_RECV)
    decoder.flush()
    assert not decoder.error_counts and {"gap"}.isdisjoint(decoder.row_counts)
    return np.concatenate(batches)


def run_cpp_call(frames: list[bytes], table: str) -> np.ndarray:
    batches: list[np.ndarray] = []
    decoder = Decoder(lambda kind, records: batches.append(records), linger_ms=None,
                      batch_rows=BATCH)  # fmt: skip
    decode = decoder.decode
    for frame in frames:
        decode(frame, TS_RECV)
    decoder.flush()
    return np.concatenate(batches)


def run_orjson(frames: list[bytes], table: str, build: Callable[[Any, Table], None]) -> np.ndarray:
    t = Table(table)
    loads = orjson.loads
    for frame in frames:
        build(loads(frame), t)
    return t.result()


def run_pysimdjson(
    frames: list[bytes], table: str, build: Callable[[Any, Table], None]
) -> np.ndarray:
    t = Table(table)
    parse = simdjson.Parser().parse

    def one(frame: bytes) -> None:
        build(parse(frame), t)  # the document dies with this frame, freeing the parser

    for frame in frames:
        one(frame)
    return t.result()


def runner(impl: str, kind: str) -> Callable[[list[bytes]], np.ndarray]:
    _, _, table, _, build = CASES[kind]
    return {
        "cpp": lambda f: run_cpp(f, table),
        "cpp-call": lambda f: run_cpp_call(f, table),
        "orjson": lambda f: run_orjson(f, table, build),
        "pysimdjson": lambda f: run_pysimdjson(f, table, build),
    }[impl]


# --- benchmarks --------------------------------------------------------------------------------

RESULTS: dict[tuple[str, str], float] = {}  # (kind, impl) -> ns per message (median)


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    lines = table_markdown()
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)
    if os.environ.get("BENCH_PARSE_MD"):
        with open(os.environ["BENCH_PARSE_MD"], "w") as out:
            out.write("\n".join(lines) + "\n")


def table_markdown() -> list[str]:
    head = ("| kind | rows/msg | cpp ns/msg | cpp ns/row | cpp-call ns/msg | orjson (a) ns/msg | "
            "pysimdjson (b) ns/msg | (a) / cpp | (b) / cpp |")  # fmt: skip
    lines = [head, "|" + "---|" * 9]
    for kind, (_, _, _, rows, _) in CASES.items():
        got = {impl: RESULTS.get((kind, impl)) for impl in IMPLS}
        cpp = got["cpp"]
        if cpp is None:
            continue
        ns = {impl: "-" if v is None else f"{v:,.0f}" for impl, v in got.items()}
        ratio = {impl: "-" if v is None else f"{v / cpp:.1f}x" for impl, v in got.items()}
        lines.append(
            f"| {kind} | {rows} | {ns['cpp']} | {cpp / rows:,.1f} | {ns['cpp-call']} | "
            f"{ns['orjson']} | "
            f"{ns['pysimdjson']} | {ratio['orjson']} | {ratio['pysimdjson']} |"
        )
    return lines


_FRAMES: dict[str, list[bytes]] = {}
_REFERENCE: dict[str, np.ndarray] = {}


def frames_for(kind: str) -> list[bytes]:
    if kind not in _FRAMES:
        make, n, *_ = CASES[kind]
        _FRAMES[kind] = make(n, random.Random(kind))
        _REFERENCE[kind] = run_cpp(_FRAMES[kind], CASES[kind][2])
    return _FRAMES[kind]


def _same_records(a: np.ndarray, ref: np.ndarray, kind: str) -> None:
    # Field by field (np.concatenate packs a padded struct dtype, so bytes would differ).
    assert len(a) == len(ref), kind
    for name in ref.dtype.names:
        assert np.array_equal(a[name], ref[name]), (kind, name)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CASES))
def test_parse(benchmark: Any, kind: str, impl: str) -> None:
    benchmark.group = kind
    frames = frames_for(kind)
    run = runner(impl, kind)
    _same_records(run(frames), _REFERENCE[kind], kind)  # same output before any timing
    benchmark.extra_info["messages"] = len(frames)
    benchmark.pedantic(run, args=(frames,), rounds=15, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        # The minimum: on a shared 2-core machine the median mostly measures the neighbours.
        best = benchmark.stats.stats.min
        RESULTS[(kind, impl)] = best / len(frames) * 1e9
        benchmark.extra_info["ns_per_msg"] = round(RESULTS[(kind, impl)], 1)
