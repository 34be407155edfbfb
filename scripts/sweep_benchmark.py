"""Runs per second of a sweep of linear fits, per executor: 1 local worker (in process),
2 local worker processes, and a Dask LocalCluster of 2 processes.

    python scripts/sweep_benchmark.py                 # 500 gaussian fits, n = 100 … 5,000
    python scripts/sweep_benchmark.py --seeds 10 --out bench.csv

Each executor runs the same grid into a fresh store, start-up included (process pool or
cluster), and the tables are checked to agree (up to timing columns). The machine's load
average is printed with the numbers: on a shared machine they move with it.
"""

import argparse
import os
import tempfile
import time

import pandas as pd

from bayesloss.experiments import TIMING_COLUMNS, expand, run_sweep, validate_config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--out", default=None, help="write the timings here (CSV)")
    args = parser.parse_args(argv)
    config = validate_config({
        "sweep": {"name": "benchmark", "seeds": list(range(args.seeds))},
        "data": {"n": [100, 500, 1000, 2000, 5000], "d": 10, "test_n": 1000},
        "model": {"likelihood": "gaussian", "estimator": ["mle", "map"], "prior_scale": 1.0},
    })
    runs = len(expand(config))
    rows, tables = [], []
    for backend, workers in [("local", 1), ("local", 2), ("dask", 2)]:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            table = run_sweep(config, out, workers=workers, backend=backend, progress=False,
                              export=())
        seconds = time.perf_counter() - start
        tables.append(table.drop(columns=list(TIMING_COLUMNS)))
        rows.append(dict(backend=backend, workers=workers, runs=runs, seconds=seconds,
                         runs_per_s=runs / seconds, fit_seconds=table["seconds"].sum(),
                         load_before=load, load_after=os.getloadavg()[0]))
        print(rows[-1], flush=True)
    for other in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], other)
    result = pd.DataFrame(rows)
    print(result.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out:
        result.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
