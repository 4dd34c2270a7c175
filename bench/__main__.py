"""Run every benchmark and print one JSON document: `make bench` (or `python -m bench`).

BENCH_SCALE shrinks the data for quick runs (1.0 = a million members).
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from bench import registry

    scale = float(os.environ.get("BENCH_SCALE", "1"))
    results = {"scale": scale, "registry_list": registry.run(scale)}
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
