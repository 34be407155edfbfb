"""Run the `classification` comparison (scripts/configs/classification.toml) and write its report.

    python scripts/classification.py                         # into out/classification
    python scripts/classification.py --out DIR --workers 2   # any option of `bayesloss sweep`
    python scripts/classification.py --set 'sweep.seeds=[0]'

A thin wrapper of `bayesloss sweep`: the config is the experiment.
"""

import sys
from pathlib import Path

from bayesloss.cli import main

CONFIG = Path(__file__).resolve().parent / "configs" / "classification.toml"

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", "out/classification"]
    sys.exit(main(["sweep", str(CONFIG), *args]))
