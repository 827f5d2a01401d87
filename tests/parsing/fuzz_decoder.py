"""Coverage-guided fuzzing of the C++ decoder with atheris. Run by hand, never collected by
pytest; the same properties as test_parse_fuzz.py, for as long as you like:

    .venv/bin/pip install atheris==3.0.0
    PYTHONPATH=. .venv/bin/python tests/parsing/fuzz_decoder.py -atheris_runs=500000

Extra arguments go to libFuzzer (-max_total_time=600, a corpus directory to keep finds, ...).
It seeds itself from the spot corpus lines. A crash or a broken property stops the run and
libFuzzer writes the input to ./crash-<sha1>; replay it with the same command plus that file.

Each input is [option byte][frame]: the option byte picks the time unit and a stream hint. The
decoder runs the frame between two good neighbours and must either reject it (exactly one
counted error; the neighbours' rows exactly as without it) or accept it with exactly the pure
Python reference's rows; it accepts exactly when the reference does.

With a g++ build atheris sees only Python coverage (the reference steers it); for native
coverage build the extensions with clang and `-fsanitize=fuzzer-no-link` (optionally plus
address,undefined and LD_PRELOAD of the sanitizer runtime, as for the ASan build in setup.py).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

STREAM_HINTS = [None, "btcusdt@depth20@100ms", "ethusdt@kline_1m@+08:00", "btcusdt@depth5"]
BEFORE = b'{"u":1,"s":"FUZZ","b":"1","B":"1","a":"2","A":"1"}'
AFTER = b'{"u":2,"s":"FUZZ","b":"1","B":"1","a":"2","A":"1"}'


def check(data: bytes) -> None:
    from tests.parsing.helpers import assert_same, run_decoder, run_reference
    from tests.parsing.reference import decides

    if not data:
        return
    option, frame = data[0], data[1:]
    options = {"stream": STREAM_HINTS[option % len(STREAM_HINTS)],
               "time_unit": "us" if option & 0x80 else "ms"}  # fmt: skip
    frames = [BEFORE, frame, AFTER]
    decoded = run_decoder(frames, **options)
    assert len(decoded.errors) <= 1 and sum(decoded.error_counts.values()) == len(decoded.errors)
    if decoded.errors:
        assert decoded.errors[0][3] == frame
        assert_same(decoded, run_reference([BEFORE, AFTER], **options))
    if decides(frame):
        expected = run_reference(frames, **options)
        assert bool(decoded.errors) == bool(expected.errors), (decoded.errors, expected.errors)
        if not decoded.errors:
            assert_same(decoded, expected)


def seeds() -> Path:
    from tests.parsing.helpers import corpus_lines, spot_files

    directory = Path(tempfile.mkdtemp(prefix="fh-fuzz-seeds-"))
    for name in spot_files():
        for i, line in enumerate(corpus_lines(name)):
            (directory / f"{name}-{i}").write_bytes(b"\x00" + line)
    return directory


def main() -> None:
    import atheris

    with atheris.instrument_imports():
        import tests.parsing.reference  # noqa: F401  (instrumented: its branches guide atheris)
    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(seeds()))
    atheris.Setup(args, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
