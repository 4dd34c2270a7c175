"""Run the benchmarks and print one JSON document: `make bench` (or `python -m bench`).

BENCH_SCALE shrinks the data for quick runs (1.0 = the sizes the issues name).
BENCH_ONLY=registry,imports runs some of them; BENCH_ONLY=dues also runs
dues_report (issue 14 names both under "dues"). Each benchmark module has
``run(scale) -> dict`` and measures its own baseline in the same run.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

# name -> module in bench/; add new benchmarks here.
BENCHMARKS = {
    "registry_list": "bench.registry",
    "import_export": "bench.imports",
    "cards": "bench.cards",
    "checkin": "bench.checkin",
    "concurrency": "bench.concurrency",
    "schema_libs": "bench.schema_libs",
    "queue": "bench.queue",
    "lifecycle": "bench.lifecycle",
    "portal": "bench.portal",
    "referrals": "bench.referrals",
    "dues": "bench.dues",
    "dues_report": "bench.dues_report",
}


def main() -> int:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    only = {name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip()}
    results: dict = {"scale": scale}
    if "dues" in only:
        only.add("dues_report")
    for name, module in BENCHMARKS.items():
        if only and name not in only:
            continue
        results[name] = importlib.import_module(module).run(scale)
        print(f"{name}: done", file=sys.stderr)
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
