"""Run the `regularization_path` comparison (scripts/configs/regularization_path.toml) and write its report.

    python scripts/regularization_path.py                         # into out/regularization_path
    python scripts/regularization_path.py --out DIR --workers 2   # any option of `bayesloss sweep`
    python scripts/regularization_path.py --set 'sweep.seeds=[0]'

A thin wrapper of `bayesloss sweep`: the config is the experiment.
"""

import sys
from pathlib import Path

from bayesloss.cli import main

CONFIG = Path(__file__).resolve().parent / "configs" / "regularization_path.toml"

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", "out/regularization_path"]
    sys.exit(main(["sweep", str(CONFIG), *args]))
