"""Shared benchmark helpers: calibrated loops, latency percentiles, one output format.

Every bench script measures a figure and, in the same run and the same way, its baseline, and
reports both through `Report`: a human table by default, one JSON object per line with `--json`:
{"name", "value", "unit", "baseline_name", "baseline_value", "ratio", "p50_ms", "p99_ms"}.
No test asserts speed; these scripts are how speed is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    ratio: float
    p50_ms: float | None = None
    p99_ms: float | None = None


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `samples`, nearest-rank."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def ops_per_second(fn: Callable[[], object], *, seconds: float = 0.4, repeats: int = 5) -> float:
    """Median ops/s of `fn` over `repeats` runs, each calibrated to about `seconds`."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or loops >= 1 << 22:
            break
        loops *= 2
    loops = max(1, int(loops * seconds / max(elapsed, 1e-9)))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        rates.append(loops / (time.perf_counter() - start))
    return statistics.median(rates)


def timed_batch(fn: Callable[[int], int], *, seconds: float = 1.0, repeats: int = 3) -> float:
    """Median items/s of `fn(n) -> items done`, called with growing n until ~`seconds`."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = 0
        while time.perf_counter() - start < seconds:
            done += fn(done)
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates)


class Report:
    """Collects figures and prints them as a table or as JSON lines."""

    def __init__(self, title: str, argv: Sequence[str] | None = None) -> None:
        parser = argparse.ArgumentParser(description=title)
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
        self.args, _ = parser.parse_known_args(argv)
        self.title = title
        self.figures: list[Figure] = []

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        baseline_name: str,
        baseline_value: float,
        *,
        p50_ms: float | None = None,
        p99_ms: float | None = None,
    ) -> Figure:
        ratio = value / baseline_value if baseline_value else float("nan")
        figure = Figure(name, value, unit, baseline_name, baseline_value, ratio, p50_ms, p99_ms)
        self.figures.append(figure)
        if self.args.json:
            print(json.dumps(asdict(figure)), flush=True)
        return figure

    def print_table(self, stream=sys.stdout) -> None:  # type: ignore[no-untyped-def]
        if self.args.json:
            return
        print(f"\n{self.title}", file=stream)
        header = (
            f"{'figure':<44} {'value':>12} {'unit':<10} {'baseline':<40} "
            f"{'base value':>12} {'ratio':>7} {'p50 ms':>8} {'p99 ms':>8}"
        )
        print(header, file=stream)
        print("-" * len(header), file=stream)
        for f in self.figures:
            p50 = f"{f.p50_ms:.2f}" if f.p50_ms is not None else ""
            p99 = f"{f.p99_ms:.2f}" if f.p99_ms is not None else ""
            print(
                f"{f.name:<44} {f.value:>12,.1f} {f.unit:<10} {f.baseline_name:<40} "
                f"{f.baseline_value:>12,.1f} {f.ratio:>7.2f} {p50:>8} {p99:>8}",
                file=stream,
            )
