"""Shared by the Python peers of the benchmarks: timed runs and the process's memory."""
import time


def timed_runs(step, warmup, runs):
    """Calls step() `warmup` times, then `runs` times; returns those runs' seconds."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def status_mib(key):
    """A /proc/self/status figure in MiB ("VmHWM": peak). Not ru_maxrss, which keeps the
    high-water mark of the process before exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")
