"""bench/procstat.py: the CPU and memory figures the benchmarks read from /proc."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

from bench.procstat import cpu_seconds, cpu_split, machine_cpu_seconds, peak_rss_mb, rss_mb, status_mb


def test_status_fields_are_read_in_mb_and_absent_ones_are_zero() -> None:
    status = "Name:\tpython\nVmHWM:\t  262144 kB\nVmRSS:\t    1024 kB\n"
    assert status_mb(status, "VmHWM") == 256.0
    assert status_mb(status, "VmRSS") == 1.0
    assert status_mb("Name:\tpython\n", "VmHWM") == 0.0


def test_peak_rss_keeps_a_child_processes_high_water_mark_after_it_freed_the_memory() -> None:
    grow_and_free = (
        "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); del b; print('ok', flush=True); input()"
    )
    child = subprocess.Popen([sys.executable, "-c", grow_and_free], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ok"
        assert peak_rss_mb(child.pid) >= 200 > rss_mb(child.pid)
        assert cpu_seconds(child.pid) > 0
    finally:
        child.kill()
        child.wait()


def test_no_process_or_a_gone_one_reads_as_no_figure() -> None:
    assert math.isnan(peak_rss_mb(None)) and cpu_seconds(None) == 0.0
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    assert math.isnan(peak_rss_mb(pid)) and rss_mb(pid) == 0.0 and cpu_seconds(pid) == 0.0
    assert peak_rss_mb(os.getpid()) >= rss_mb(os.getpid()) > 0


def test_the_machine_is_busy_at_least_as_long_as_a_process_that_spins_on_it() -> None:
    machine, mine = machine_cpu_seconds(), cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    split = cpu_split({"me": os.getpid(), "none": None})
    assert split["none"] == 0.0
    assert split["me"] - mine >= 0.29
    assert split["machine"] - machine >= split["me"] - mine - 0.02  # tick granularity
