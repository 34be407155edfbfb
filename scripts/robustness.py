"""Run the `robustness` comparison (scripts/configs/robustness.toml) and write its report.

    python scripts/robustness.py                         # into out/robustness
    python scripts/robustness.py --out DIR --workers 2   # any option of `bayesloss sweep`
    python scripts/robustness.py --set 'sweep.seeds=[0]'

A thin wrapper of `bayesloss sweep`: the config is the experiment.
"""

import sys
from pathlib import Path

from bayesloss.cli import main

CONFIG = Path(__file__).resolve().parent / "configs" / "robustness.toml"

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", "out/robustness"]
    sys.exit(main(["sweep", str(CONFIG), *args]))
