"""CPU pinning for the benchmarks: the measured thread on one CPU, other processes (every
thread of them) on the rest, and the mask restored after a run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from feedhandler.bench.pinning import pin_process, pin_self, restored_affinity, split_cpus

CPUS = sorted(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(CPUS) < 2, reason="pinning needs two CPUs")


@needs_two
def test_the_first_cpu_is_the_measured_ones_and_the_rest_are_the_others() -> None:
    assert split_cpus() == (CPUS[0], set(CPUS[1:]))


def test_one_cpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    with pytest.raises(ValueError, match="two CPUs; this process may use 1"):
        split_cpus()


@needs_two
def test_every_thread_of_another_process_is_moved() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import threading, time\n"
                              "threading.Thread(target=time.sleep, args=(30,)).start()\n"
                              "print('ready', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        pin_process(child.pid, {CPUS[1]})
        threads = os.listdir(f"/proc/{child.pid}/task")
        assert len(threads) == 2
        assert all(os.sched_getaffinity(int(tid)) == {CPUS[1]} for tid in threads)
    finally:
        child.kill()
        child.wait()


@needs_two
def test_a_pinned_thread_gets_its_mask_back() -> None:
    seen: list[set[int]] = []

    def run() -> None:  # a thread of its own: the test session's stays as it is
        with restored_affinity():
            pin_self(CPUS[0])
            seen.append(os.sched_getaffinity(0))
        seen.append(os.sched_getaffinity(0))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [{CPUS[0]}, set(CPUS)]
