"""llama.cpp's default thread count leaves busy cores alone (its threads spin at barriers, so a
thread more than the free cores slows decoding many-fold)."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from symbolic_moe.engines.llama_cpp import busy_cores, free_cores

SPIN = [sys.executable, "-c", "while True: pass"]


def _state(process: subprocess.Popen[bytes]) -> str:
    return Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _signal_and_wait(processes: list[subprocess.Popen[bytes]], sig: int, state: str) -> None:
    """Send `sig` to every process and wait until each shows `state` in /proc (no time window)."""
    for process in processes:
        process.send_signal(sig)
    deadline = time.monotonic() + 60
    while not all(_state(p) == state for p in processes):
        assert time.monotonic() < deadline, f"children never reached state {state}"
        time.sleep(0.005)


def test_free_cores_is_within_the_allowed_cores():
    cores = len(os.sched_getaffinity(0))
    assert 1 <= free_cores() <= cores


def test_busy_cores_are_left_alone():
    """With as many busy processes as cores, one thread is what is left; the processes are
    waited for (runnable in /proc/loadavg), not given a time window."""
    cores = len(os.sched_getaffinity(0))
    busy = [subprocess.Popen(SPIN) for _ in range(cores)]
    try:
        deadline = time.monotonic() + 60
        while free_cores() != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert free_cores() == 1
    finally:
        for process in busy:
            process.kill()
            process.wait()


def test_each_busy_child_counts_once_on_a_busy_machine_too():
    """Two spinning children this test controls are paused (SIGSTOP: not runnable) and resumed in
    turn; the busy count with them running exceeds the count with them paused by exactly two.
    The median of many such paired differences cancels whatever else the machine is running, so
    this checks the count even where the machine is already fully busy (free_cores() == 1)."""
    children = [subprocess.Popen(SPIN) for _ in range(2)]
    try:
        differences = []
        for _ in range(41):
            _signal_and_wait(children, signal.SIGSTOP, "T")
            paused = busy_cores()
            _signal_and_wait(children, signal.SIGCONT, "R")
            running = busy_cores()
            assert paused is not None and running is not None
            differences.append(running - paused)
        assert statistics.median(differences) == 2, differences
    finally:
        for process in children:
            process.kill()
            process.wait()
