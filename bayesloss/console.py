"""Progress bars where someone watches: on a terminal, or as a widget in a notebook.

A bar redraws itself with carriage returns; written into a pipe or a log file it piles up
(53 kB from one ``which-loss``). In a Jupyter kernel without ipywidgets, ``tqdm.auto`` falls
back to text after a ``TqdmWarning``; there a bar is left off instead.
"""

from __future__ import annotations

import sys
import warnings
from typing import Optional

from tqdm import TqdmWarning

with warnings.catch_warnings():
    # Pyro's MCMC module imports tqdm.auto, which warns at import in a notebook kernel without
    # ipywidgets ("IProgress not found"); imported here first, quietly, it does not warn there
    warnings.filterwarnings("ignore", category=TqdmWarning)
    import tqdm.auto  # noqa: F401


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where a bar is a widget)."""
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401  (tqdm's notebook bar draws with it)
    except ImportError:
        return False
    return True


def interactive() -> bool:
    """Whether a progress bar can be shown: stderr is a terminal, or a notebook kernel with
    ipywidgets."""
    if _in_notebook():
        return _widgets()
    return sys.stderr.isatty()


def show_progress(progress: Optional[bool]) -> bool:
    """``progress`` as given; None (the default) means :func:`interactive`."""
    return interactive() if progress is None else bool(progress)


def progress_bar(iterable=None, **kwargs):
    """A tqdm bar: the notebook widget in a kernel that has ipywidgets, the text bar
    elsewhere (never ``tqdm.auto``'s warning fallback)."""
    if _in_notebook() and _widgets():
        from tqdm.notebook import tqdm
    else:
        from tqdm import tqdm
    return tqdm(iterable, **kwargs)


__all__ = ["interactive", "show_progress", "progress_bar"]
