"""llama.cpp's default thread count leaves busy cores alone (its threads spin at barriers, so a
thread more than the free cores slows decoding many-fold)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from symbolic_moe.engines.llama_cpp import free_cores


def test_free_cores_is_within_the_allowed_cores():
    cores = len(os.sched_getaffinity(0))
    assert 1 <= free_cores() <= cores


def test_busy_cores_are_left_alone():
    """With as many busy processes as cores, one thread is what is left; the processes are
    waited for (runnable in /proc/loadavg), not given a time window."""
    cores = len(os.sched_getaffinity(0))
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        deadline = time.monotonic() + 60
        while free_cores() != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert free_cores() == 1
    finally:
        for process in busy:
            process.kill()
            process.wait()
