"""`python -m bench` (make bench): run every bench script and print one table of all figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import Figure, Report

HERE = Path(__file__).resolve().parent
SKIP = {"__init__", "__main__", "common"}


def scripts() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in SKIP)


def main(argv: list[str]) -> int:
    report = Report("FinCore benchmarks (each figure beside its same-run baseline)", argv)
    failed: list[str] = []
    extra = ["--quick"] if report.quick else []
    for name in scripts():
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        result = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", "--json", *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            failed.append(name)
            print(result.stderr[-2000:], file=sys.stderr)
        for line in result.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                figure = Figure(**json.loads(line))
                report.add(
                    f"{name}: {figure.name}",
                    figure.value,
                    figure.unit,
                    figure.baseline_name,
                    figure.baseline_value,
                    p50_ms=figure.p50_ms,
                    p99_ms=figure.p99_ms,
                )
    report.print_table()
    if failed:
        print(f"\nbench scripts that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
