"""Sphinx configuration: pydata-sphinx-theme, myst-nb (executing ../notebooks through the
``notebooks`` symlink, each in its own folder), numpydoc + autosummary for the API, and
sphinx-argparse for the CLI.

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import datetime
import inspect
import os

import bayesloss

project = "bayesloss"
author = "the bayesloss authors"
copyright = f"{datetime.date.today().year}, {author}"
release = version = bayesloss.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "sphinxarg.ext",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "benchmarks/generated"]
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# API: one page per public name, listed from each module's __all__ (so a name added there
# appears without editing the docs)
autosummary_generate = True
autosummary_imported_members = True
autosummary_ignore_module_all = False
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # autosummary lists methods; numpydoc's table would repeat them
numpydoc_xref_param_type = False

# notebooks: executed at build time (cached between local builds), in their own folder as
# Jupyter runs them; an error or a timeout fails the build
nb_execution_mode = os.environ.get("BAYESLOSS_DOCS_EXECUTE", "cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = False  # a failure is a warning (so -W fails the build) naming the cell, and --keep-going runs every notebook
nb_execution_show_tb = True
nb_execution_in_temp = False
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = f"bayesloss {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# without a default mode the theme logs "Got invalid theme mode" as a console error on every page
html_context = {"default_mode": "auto"}
html_sidebars = {"index": [], "getting-started": []}
html_show_sourcelink = False


def _skip_foreign_routines(app, what, name, obj, skip, options):
    """Leave out methods that scikit-learn or pydantic define (metadata-routing setters,
    ``model_dump``, …): their docstrings link into those projects' own docs."""
    module = getattr(obj, "__module__", None)
    if what == "class" and inspect.isroutine(obj) and isinstance(module, str) \
            and not module.startswith("bayesloss"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_routines)
