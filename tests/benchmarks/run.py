"""`make bench`: run every benchmark, print one table, write bench-results/bench.json.

Targets (issue 3) on 2 cores: indicators + all four strategies for 5,000
symbols x 300 days under 1 s, the model fit reported on its own line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SIZES = (36, 500, 5_000)
TARGET_5000_S = 1.0


def run_size(symbols: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_strategies", "--symbols", str(symbols)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    rows = [run_size(n) for n in SIZES]
    header = (
        f"{'symbols':>8} {'bars s':>8} {'indic s':>8} {'strat s':>8} {'cycle s':>8}"
        f" {'ML fit s':>9} {'fit rows':>9} {'peak MB':>8}  target"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        target = ""
        if r["symbols"] == 5_000:
            ok = float(r["cycle_compute_s"]) < TARGET_5000_S  # type: ignore[arg-type]
            target = f"< {TARGET_5000_S:g} s {'met' if ok else 'MISSED'}"
        print(
            f"{r['symbols']:>8} {r['bars_s']:>8.3f} {r['indicators_s']:>8.3f}"
            f" {r['strategies_s']:>8.3f} {r['cycle_compute_s']:>8.3f} {r['ml_fit_s']:>9.3f}"
            f" {r['ml_fit_rows']:>9} {r['peak_rss_mb']:>8.0f}  {target}"
        )
    out_dir = Path(os.environ.get("BENCH_OUT", "bench-results"))
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps({"strategies": rows}, indent=2))
    print(f"\nwritten: {out_dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
