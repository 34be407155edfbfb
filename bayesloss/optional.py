"""Optional engines: Dask for clustered sweeps, pyarrow for Parquet. The default install runs
without them; asking for one that is missing is a :class:`MissingExtraError` that names the
extra to install (the command line exits with code 2 and writes nothing)."""

from __future__ import annotations

import importlib
from types import ModuleType

#: the module each extra provides → the extra that installs it
EXTRAS = {"distributed": "dask", "dask": "dask", "pyarrow": "parquet"}


# the one place optional packages are imported (a test replaces it to simulate one missing)
_import = importlib.import_module


class MissingExtraError(ImportError):
    """An optional package is not installed; the message says which extra installs it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` or raise :class:`MissingExtraError` naming the
    extra, e.g. ``pip install "bayesloss[dask]"``."""
    try:
        return _import(module)
    except ImportError:
        raise MissingExtraError(
            f"{purpose} needs the optional package {module!r}, which is not installed: "
            f"pip install \"bayesloss[{EXTRAS[module]}]\"") from None


def available(module: str) -> bool:
    """Whether ``module`` imports (a missing optional engine is then simply skipped)."""
    try:
        _import(module)
    except ImportError:
        return False
    return True


__all__ = ["EXTRAS", "MissingExtraError", "require", "available"]
