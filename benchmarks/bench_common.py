"""Helpers shared by the benchmark scripts (not a benchmark itself): machine facts with the
load average, waiting for a quiet machine, cold page cache, writing results."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def machine(threads: int | None = None) -> dict[str, Any]:
    """What the figures depend on: cores, load average now (1, 5, 15 min), Python, llama.cpp."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if threads is not None:
        info["threads"] = threads
    try:
        import llama_cpp

        info["llama_cpp_python"] = llama_cpp.__version__
    except ImportError:  # pragma: no cover - base dependency
        pass
    return info


def cpu_busy(seconds: float = 5.0) -> dict[str, float]:
    """Cores kept busy over `seconds` (from /proc/stat): at normal priority (user + system)
    and by niced processes. Niced background jobs count in the load average but take little
    CPU from a normal-priority benchmark, so the quiet check looks at normal-priority work."""

    def sample() -> list[int]:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        return [int(x) for x in fields]

    first = sample()
    time.sleep(seconds)
    delta = [b - a for a, b in zip(first, sample(), strict=True)]
    tick = os.sysconf("SC_CLK_TCK") * seconds
    user, nice, system, _idle, _iowait, irq, softirq = delta[:7]
    return {"normal_cores": round((user + system + irq + softirq) / tick, 2), "nice_cores": round(nice / tick, 2)}


def wait_for_quiet(max_load: float, timeout: float, max_busy: float = 0.5) -> dict[str, Any]:
    """Poll until other normal-priority work keeps fewer than `max_busy` cores busy and the
    1-minute load average less the cores niced work uses is below `max_load` (or `timeout`
    seconds pass). Returns what the machine looked like when timing starts; `quiet` False
    means the timing that follows is under load. Call it while this process tree is idle;
    `max_load` <= 0 skips the waiting (the state is still recorded)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = cpu_busy()
        load = os.getloadavg()[0]
        quiet = busy["normal_cores"] < max_busy and load - busy["nice_cores"] < max_load
        if max_load <= 0 or quiet or time.monotonic() >= deadline:
            break
        print(f"waiting for a quiet machine: load {load:.2f}, busy {busy}", file=sys.stderr)
        time.sleep(10)
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], **busy, "quiet": quiet}


def under_load(state: dict[str, Any]) -> bool:
    """True when the timing that followed `wait_for_quiet` did not start on a quiet machine."""
    return not state.get("quiet", False)


def drop_page_cache() -> bool:
    """Flush dirty pages and drop the page cache (root only); False when not permitted."""
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain fixed-width table for the terminal."""
    cells = [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


class CpuMeter:
    """CPU use during a timed section: this process's own CPU seconds, and how many cores
    other normal-priority and niced work kept busy meanwhile (a timing is only clean when
    `others_normal_cores` stays near 0)."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, list[int], float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return time.perf_counter(), fields, cpu

    def stop(self) -> dict[str, float]:
        t1, f1, c1 = self._sample()
        t0, f0, c0 = self.start
        wall = t1 - t0
        delta = [b - a for a, b in zip(f0, f1, strict=True)]
        tick = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq = delta[:7]
        normal = (user + system + irq + softirq) / tick
        own = c1 - c0
        return {
            "wall_seconds": round(wall, 3),
            "own_cpu_seconds": round(own, 2),
            "own_cores": round(own / wall, 2) if wall else 0.0,
            "others_normal_cores": round(max(0.0, normal - own) / wall, 2) if wall else 0.0,
            "nice_cores": round(nice / tick / wall, 2) if wall else 0.0,
        }
