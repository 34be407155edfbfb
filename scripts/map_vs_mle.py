"""Run the `map_vs_mle` comparison (scripts/configs/map_vs_mle.toml) and write its report.

    python scripts/map_vs_mle.py                         # into out/map_vs_mle
    python scripts/map_vs_mle.py --out DIR --workers 2   # any option of `bayesloss sweep`
    python scripts/map_vs_mle.py --set 'sweep.seeds=[0]'

A thin wrapper of `bayesloss sweep`: the config is the experiment.
"""

import sys
from pathlib import Path

from bayesloss.cli import main

CONFIG = Path(__file__).resolve().parent / "configs" / "map_vs_mle.toml"

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", "out/map_vs_mle"]
    sys.exit(main(["sweep", str(CONFIG), *args]))
