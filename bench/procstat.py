"""What the benchmarks read of a process from /proc: CPU time so far and resident memory, peak included.

Peak is VmHWM, the kernel's high-water mark of the process's resident set: it needs no sampling to catch a
short spike, only one read before the process exits.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def status_mb(status: str, field: str) -> float:
    """A `VmHWM:`-style field of /proc/<pid>/status in MB (0 when absent)."""
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid: int | None) -> float:
    """The process's peak resident set (VmHWM) in MB; NaN for no process or one that is gone."""
    if pid is None:
        return math.nan
    try:
        return status_mb(Path(f"/proc/{pid}/status").read_text(), "VmHWM")
    except OSError:
        return math.nan


def rss_mb(pid: int) -> float:
    """The process's resident set now (VmRSS) in MB; 0 for one that is gone."""
    try:
        return status_mb(Path(f"/proc/{pid}/status").read_text(), "VmRSS")
    except OSError:
        return 0.0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process and its threads so far (0 for no process, or one that is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int | None) -> list[int]:
    """The process and its descendants now (a router's worker processes): /proc scanned for parent links."""
    if pid is None:
        return []
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(parents.get(current, []))
    return tree


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has been busy so far, all cores together (/proc/stat's first line less idle
    and iowait): over a window, the share no listed process accounts for is other work on the machine."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def cpu_split(pids: dict[str, int | None]) -> dict[str, float]:
    """The CPU seconds so far of each named process, and the machine's (`machine`): two such snapshots,
    subtracted, say where a window's CPU went."""
    return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, "machine": machine_cpu_seconds()}
