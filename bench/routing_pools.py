"""Routed vs per-topic oracle vs best-single accuracy on the simulated pools of `tests/routing/pools.py`,
measured through the real router and the official `openai` client on each pool's held-out split, next to the
`routedAccuracy` that calibration publishes for the same questions.

    python bench/routing_pools.py [--seed 1000] [--report DIR]

`--report DIR` writes each pool's calibration report (report.md + report.png) under DIR/<pool>/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quorum.routing.embedding import shared_embedder
from tests.routing.measure import measure
from tests.routing.pools import POOLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="base seed of the served requests (default none)")
    parser.add_argument("--report", type=Path, default=None, help="write each pool's calibration report here")
    args = parser.parse_args()
    embedder = shared_embedder("sentence-transformers/all-MiniLM-L6-v2")
    for pool in POOLS:
        with tempfile.TemporaryDirectory() as directory:
            served = asyncio.run(measure(pool, Path(directory), embedder, seed=args.seed))
        if args.report is not None:
            from quorum.routing.report import write_report

            write_report(served.artifact, args.report / pool.name)
        figures = served.figures()
        figures["routedOverOracle"] = round(served.routed / served.oracle, 4) if served.oracle else None
        figures["models"] = {m: round(a, 4) for m, a in served.models.items()}
        print(json.dumps({"pool": pool.name, **figures, "loadavg": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
