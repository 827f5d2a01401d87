"""CPU pinning for benchmarks on one host: the measured process on a core of its own, the
rest (broker, simulator, consumer) on the others, as a colocated deployment isolates its
handler's core. Threads inherit the mask, so pin a process before it starts its threads, or
pin every thread it has (`taskset -a`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def split_cpus() -> tuple[int, str]:
    """(the measured process's CPU, the others as a taskset list); ValueError with fewer
    than two CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise ValueError(f"pinning needs two CPUs; this process may use {len(cpus)}")
    return cpus[0], ",".join(map(str, cpus[1:]))


def pin_self(cpu: int) -> None:
    """This thread, and every thread it starts from now on, on `cpu`."""
    os.sched_setaffinity(0, {cpu})


def pin_process(pid: int, cpus: str) -> None:
    """Every thread of process `pid` on `cpus` (a taskset list such as "1" or "1-3")."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


@contextmanager
def restored_affinity(mask: set[int]) -> Iterator[None]:
    """This thread back on `mask` when the block ends (a benchmark run inside a longer-lived
    process, such as a test session)."""
    try:
        yield
    finally:
        os.sched_setaffinity(0, mask)
