"""CPU pinning for benchmarks on one host: the measured process on a core of its own, the
rest (broker, simulator, consumer) on the others, as a colocated deployment isolates its
handler's core. A thread inherits its creator's mask, so pin a process's every thread
(`pin_process`), and pin this one (`pin_self`) before it starts the threads to measure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def split_cpus() -> tuple[int, set[int]]:
    """(the measured process's CPU, the others); ValueError with fewer than two CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise ValueError(f"pinning needs two CPUs; this process may use {len(cpus)}")
    return cpus[0], set(cpus[1:])


def cpu_list(cpus: set[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


def pin_self(cpu: int) -> None:
    """This thread, and every thread it starts from now on, on `cpu`."""
    os.sched_setaffinity(0, {cpu})


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` on `cpus`."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


@contextmanager
def restored_affinity() -> Iterator[None]:
    """This thread back on its CPUs of now when the block ends (a benchmark run inside a
    longer-lived process, such as a test session). Threads started meanwhile keep theirs."""
    mask = os.sched_getaffinity(0)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mask)
