"""Sphinx configuration of the gatejax documentation site.

Build (the command CI runs; warnings are errors, cross-references nitpicky):

  pip install -e ".[docs]" && sphinx-build -W --keep-going -n -b html docs docs/_build/html

Nothing is executed at build time: the notebooks are rendered from their committed outputs,
the report page shows a committed report, and the API pages are read from the docstrings.
The site works offline: MathJax is served from the build itself (django-static-mathjax's
copy of MathJax 3), and no extension fetches anything.
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import gatejax  # noqa: E402

project = "gatejax"
author = "the gatejax authors"
copyright = "the gatejax authors, Apache-2.0"
release = version = gatejax.__version__

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  "gatejax_docs",  # docs/_ext: the notebooks, the landing figure, the API checks
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "jupyter_execute"]
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# -- MyST and the notebooks --------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# The committed outputs are the full-size runs; executing here would need minutes and an
# environment with every optional dependency.
nb_execution_mode = "off"
# Notebook cells print progress to stderr at times; it is not part of the argument.
nb_output_stderr = "remove"

# -- API pages ---------------------------------------------------------------------------
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
# Defaults as written in the source (jnp.float32), not their repr (<class 'jax.numpy.float32'>),
# which Sphinx cannot parse back into a signature.
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attributes sections of NamedTuples become the attribute entries (gatejax_docs drops
# the generated "Alias for field number N" members, so each field is described once).
napoleon_use_ivar = False

# -- Cross-references --------------------------------------------------------------------
# Nitpicky mode (-n) makes every unresolved reference a warning, and -W an error. The
# patterns below are the names the build cannot resolve because they are documented
# elsewhere and no inventory can be fetched offline (no intersphinx); each was seen
# unresolved in a build without it. Nothing of gatejax's own is ignored: a gatejax name that
# does not resolve fails the build (docs/_ext/gatejax_docs.py resolves the re-exports
# ``gatejax.scan`` and the local aliases ``Params``, ``Carry`` to where they are documented).
_EXTERNAL_CLASSES = [
  # jaxtyping's annotations (Float[Array, "time *batch input"], PRNGKeyArray): Sphinx reads
  # each part, the shape string included, as a class name.
  r"jaxtyping\..*",
  r"Float|Int|Bool|Array|PRNGKeyArray",
  r"'.*'",
  # JAX and jaxlib types, by their public and their internal paths (jax.Array is
  # jaxlib._jax.Array at run time).
  r"jax\..*",
  r"jaxlib\..*",
  r"Mesh",
  # NumPy, optax and Flax types in signatures.
  r"numpy\..*",
  r"np\.ndarray|ndarray",
  r"optax\..*",
  r"flax\..*",
  # The standard library beyond builtins, which the Python domain resolves by itself.
  r"collections\.abc\..*",
  r"types\..*",
  r"os\.PathLike",
  r"pathlib\.Path",
  r"argparse\..*",
]
nitpicky = True
nitpick_ignore_regex = [("py:class", pattern) for pattern in _EXTERNAL_CLASSES] + [
  ("py:func", r"jax\..*"),  # jax.nn.hard_sigmoid, named in a docstring
]

# -- HTML --------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"gatejax {release}"
html_static_path = ["_static"]
html_theme_options = {"show_toc_level": 2, "navigation_with_keys": False}
html_last_updated_fmt = None
html_favicon = "_static/favicon.svg"
# The theme's colour mode on a first visit (empty, its script logs an error and resets it).
html_context = {"default_mode": "light"}
# MathJax 3 from this build (copied by gatejax_docs), not from a CDN.
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {"tex": {"tags": "ams"}}

os.environ.setdefault("MPLBACKEND", "Agg")
