"""The Sphinx extension of gatejax's site: what conf.py's settings cannot say.

* every public name has a docstring, or the build warns (and ``-W`` fails it): autodoc
  alone skips an undocumented name in silence;
* ``gatejax.scan`` and the other re-exports of a package (``gatejax.train.fit``) resolve
  as cross-references to the object where it is defined and documented
  (``gatejax.run.scan.scan``, ``gatejax.train.fitting.fit``), and so do the type aliases
  a module names locally in its signatures (``Params``, ``Carry``);
* a NamedTuple's fields are documented once, by its ``Attributes`` section, not again as
  the "Alias for field number N" members Python generates;
* ``gatejax-reexports [PACKAGE]``: the table of a package's names, read from its
  ``__all__``, each linked to the module that documents it; a package's page is that
  table (the templates' ``packages`` lists the packages);
* ``gatejax-notebook-link NAME``: a link to ``notebooks/NAME.ipynb`` once it exists;
* the API index lists every public module of the package (each gets a generated page);
* the landing page's figure is taken from a committed notebook output (no second copy of
  it in the repository), and MathJax is copied into the build (no CDN).
"""

from __future__ import annotations

import base64
import functools
import importlib
import importlib.resources
import inspect
import json
import pkgutil
import re
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

import gatejax

logger = logging.getLogger(__name__)

# The landing figure: the output of the notebook cell that draws it.
FIGURE_NOTEBOOK = "02_vanishing_gradients.ipynb"
FIGURE_CELL = "plots.contribution_curves("
FIGURE_FILE = "_generated/contribution_curves.png"

# What of MathJax's es5 build the pages need: TeX in, CommonHTML out, and what they load.
_MATHJAX_PARTS = ("tex-chtml.js", "input", "output", "ui", "a11y", "adaptors")


def public_modules() -> list[str]:
  """Every module of the package a user may import: no ``_private`` one, no ``__main__``."""
  names = ["gatejax"]
  for info in pkgutil.walk_packages(gatejax.__path__, "gatejax."):
    if not any(part.startswith("_") for part in info.name.split(".")):
      names.append(info.name)
  return sorted(names)


def _own_docstring(obj: Any) -> str:
  doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
  doc = (doc or "").strip()
  fields = getattr(obj, "_fields", None)
  if inspect.isclass(obj) and fields is not None and doc == f"{obj.__name__}({', '.join(fields)})":
    return ""  # the docstring Python writes for a NamedTuple without one
  return doc


def check_docstrings(app: Sphinx) -> None:
  """Warn for every public name (``__all__``) without a docstring of its own."""
  for name in public_modules():
    module = importlib.import_module(name)
    if not _own_docstring(module):
      logger.warning(f"module {name} has no docstring", type="gatejax", subtype="docstring")
    exported = getattr(module, "__all__", None)
    if exported is None:
      # Without __all__ the public names are those defined here and not _private.
      exported = [
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and (inspect.isfunction(v) or inspect.isclass(v))
        and v.__module__ == name
      ]
    attribute_docs = ModuleAnalyzer.for_module(name).find_attr_docs()
    for member in exported:
      obj = getattr(module, member)
      if inspect.ismodule(obj) or _home(name, member, obj) != name:
        continue  # documented in its own module
      if inspect.isclass(obj) or inspect.isroutine(obj):
        if not _own_docstring(obj):
          logger.warning(f"{name}.{member} has no docstring", type="gatejax", subtype="docstring")
      elif ("", member) not in attribute_docs:
        logger.warning(
          f"{name}.{member} (a constant) has no #: comment or docstring",
          type="gatejax",
          subtype="docstring",
        )


def _public(module: str, name: str, obj: Any) -> str:
  """``module`` if it is public, else its nearest public parent that exports ``obj`` as
  ``name`` (``gatejax.cells._kit`` -> ``gatejax.cells`` for ``Cell``): a package split
  into private files documents their names on its own page."""
  parts = module.split(".")
  if not any(part.startswith("_") for part in parts):
    return module
  for cut in range(len(parts) - 1, 0, -1):
    parent = ".".join(parts[:cut])
    if any(part.startswith("_") for part in parts[:cut]):
      continue
    package = importlib.import_module(parent)
    if name in getattr(package, "__all__", ()) and getattr(package, name, None) is obj:
      return parent
  return module


def _home(module: str, name: str, obj: Any) -> str:
  """The module that documents ``module.name``: where a class or function is defined (a
  private file's names: its public package, :func:`_public`); for a constant of a package,
  the public submodule that documents it (``#:``), else ``module``."""
  if inspect.isclass(obj) or inspect.isroutine(obj):
    defined = getattr(obj, "__module__", None) or module
    return _public(defined, getattr(obj, "__name__", name), obj)
  package = importlib.import_module(module)
  for info in pkgutil.iter_modules(getattr(package, "__path__", []), f"{module}."):
    if info.name.rpartition(".")[2].startswith("_"):
      continue
    room = importlib.import_module(info.name)
    if getattr(room, name, None) is obj and ("", name) in _attr_docs(info.name):
      return info.name
  return module


@functools.cache
def _attr_docs(module: str) -> dict[tuple[str, str], Any]:
  return ModuleAnalyzer.for_module(module).find_attr_docs()


def _scopes(obj: Any) -> list[str]:
  """Where a reference in ``obj``'s docstring is looked up: its class, then its module."""
  module = getattr(obj, "__module__", None)
  if module is None:
    return []
  module = _public(module, getattr(obj, "__name__", ""), obj)
  return [f"{module}.{obj.__qualname__}", module] if inspect.isclass(obj) else [module]


def _qualified(summary: str, scopes: list[str]) -> str:
  """``summary`` (a docstring's first line) with its cross-references made absolute.

  A reexport table shows it on another page than the object's, where ``:func:`fit``` or
  ``:meth:`to_dict``` would no longer resolve: each target is looked up in ``scopes`` (the
  object's class and module), as on its own page.
  """

  def absolute(match: re.Match) -> str:
    role, tilde, target = match.group(1), match.group(2), match.group(3)
    if target.startswith("gatejax.") or "<" in target:
      return match.group(0)
    for scope in scopes:
      if _resolves(f"{scope}.{target}"):
        return f":{role}:`{tilde or '~'}{scope}.{target}`"
    return match.group(0)

  return re.sub(r":([\w:]+):`(~?)([^`]+)`", absolute, summary)


def _resolves(dotted: str) -> bool:
  parts = dotted.split(".")
  for cut in range(len(parts), 0, -1):
    try:
      obj: Any = importlib.import_module(".".join(parts[:cut]))
    except ImportError:
      continue
    try:
      for part in parts[cut:]:
        obj = getattr(obj, part)
    except AttributeError:
      return False
    return True
  return False


def public_packages() -> list[str]:
  """The public modules that are packages: each one's page is the table of its names."""
  return [n for n in public_modules() if hasattr(importlib.import_module(n), "__path__")]


def _reexports(package: str) -> list[tuple[str, Any]]:
  """``(name, object)`` for each name of ``package.__all__`` defined in another module."""
  module = importlib.import_module(package)
  out = []
  for name in getattr(module, "__all__", ()):
    obj = getattr(module, name)
    if inspect.ismodule(obj) or _home(package, name, obj) != package:
      out.append((name, obj))
  return out


@functools.cache
def _aliases() -> dict[str, str]:
  """``<package>.<name>`` -> the name's defining module and name, for the re-exports."""
  out = {}
  for package in public_packages():
    for name, obj in _reexports(package):
      if not inspect.ismodule(obj):
        out[f"{package}.{name}"] = (
          f"{_home(package, name, obj)}.{getattr(obj, '__qualname__', name)}"
        )
  return out


# Type aliases that modules name locally in their signatures (``Params = Any``), each
# documented once: where a signature says ``Params``, the link goes there.
TYPE_ALIASES = {
  "Params": "gatejax.protocol.Params",
  "Carry": "gatejax.protocol.Carry",
  "Activation": "gatejax.cells.Activation",
  "Bias": "gatejax.cells.Bias",
  "Cell": "gatejax.cells.Cell",
}


def _private_target(target: str) -> str | None:
  """``gatejax.cells._kit.Cell`` -> ``gatejax.cells.Cell``: a name of a private file, as the
  public package that documents it; ``None`` for any other target."""
  parts = target.split(".")
  if parts[0] != "gatejax" or not any(p.startswith("_") for p in parts[1:-1]):
    return None
  for cut in range(len(parts) - 1, 0, -1):
    try:
      obj: Any = importlib.import_module(".".join(parts[:cut]))
    except ImportError:
      continue
    try:
      for part in parts[cut:]:
        obj = getattr(obj, part)
    except AttributeError:
      return None
    module, name = ".".join(parts[:cut]), parts[cut]
    home = _public(module, name, getattr(importlib.import_module(module), name))
    return ".".join([home, *parts[cut:]]) if home != module else None
  return None


def resolve_alias(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
  """Resolve ``gatejax.scan`` (and every re-export, with its attributes) to where it is documented."""
  if node.get("refdomain") != "py":
    return None
  target = node.get("reftarget", "")
  if target in TYPE_ALIASES:
    node = node.deepcopy()
    node["reftarget"] = TYPE_ALIASES[target]
    return env.get_domain("py").resolve_xref(
      env, node["refdoc"], app.builder, node["reftype"], node["reftarget"], node, contnode
    )
  private = _private_target(target)
  if private is not None:
    node = node.deepcopy()
    node["reftarget"] = private
    return env.get_domain("py").resolve_xref(
      env, node["refdoc"], app.builder, node["reftype"], private, node, contnode
    )
  module = node.get("py:module")
  if module == "gatejax" and not target.startswith("gatejax."):
    target = f"gatejax.{target}"  # an unqualified name on the gatejax page (the re-exports)
  elif module and not target.startswith("gatejax."):
    # An unqualified name in a package (or one of its modules) that the package re-exports:
    # ``gradient_horizon`` in gatejax.analysis' docstring, ``contribution_norms`` in
    # gatejax.analysis.curves'.
    for scope in (module, module.rpartition(".")[0]):
      if f"{scope}.{target}" in _aliases():
        target = f"{scope}.{target}"
        break
  for alias, canonical in _aliases().items():
    if target == alias or target.startswith(alias + "."):
      domain = env.get_domain("py")
      node = node.deepcopy()
      node["reftarget"] = canonical + target[len(alias) :]
      return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], node["reftarget"], node, contnode
      )
  return None


def skip_field_aliases(app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any):
  """NamedTuple fields: described by the class's Attributes section, not as members again."""
  if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
    return True
  return None


class Reexports(Directive):
  """A table of a package's names (default ``gatejax``), each linked to where it is documented."""

  has_content = False
  optional_arguments = 1

  def run(self) -> list[nodes.Node]:
    package = self.arguments[0] if self.arguments else "gatejax"
    names = _reexports(package)
    if not names:
      return []
    shown = "gj" + package[len("gatejax") :]
    if package == "gatejax":
      lines = ["The top-level names, each documented in the module that defines it:", ""]
    else:
      lines = [f"The names of ``{package}``, each documented in the module that defines it:", ""]
    lines += [".. list-table::", "   :header-rows: 1", "   :widths: 30 70", ""]
    lines += ["   * - name", "     - what it is"]
    for name, obj in names:
      if inspect.ismodule(obj):
        role, target, summary = "mod", obj.__name__, _own_docstring(obj)
      elif inspect.isclass(obj) or inspect.isroutine(obj):
        role = "class" if inspect.isclass(obj) else "func"
        target = f"{_home(package, name, obj)}.{obj.__qualname__}"
        summary = _qualified(_own_docstring(obj), _scopes(obj))
      else:  # a constant, documented by its #: comment where it is defined
        home = _home(package, name, obj)
        role, target = "data", f"{home}.{name}"
        summary = _qualified("\n".join(_attr_docs(home).get(("", name), [])), [home])
      first = summary.strip().splitlines()[0] if summary else ""
      lines += [f"   * - :py:{role}:`{shown}.{name} <{target}>`", f"     - {first}"]
    return _parse(self, lines)


def check_api_index(app: Sphinx) -> None:
  """The API index (api.rst) lists every public module, so each gets its generated page."""
  index = Path(app.confdir) / "api.rst"
  listed = [
    line.strip() for line in index.read_text().splitlines() if line.strip().startswith("gatejax")
  ]
  missing = sorted(set(public_modules()) - set(listed))
  unknown = sorted(set(listed) - set(public_modules()))
  if missing or unknown:
    logger.warning(
      f"api.rst must list every public module: missing {missing}, unknown {unknown}",
      type="gatejax",
      subtype="modules",
    )


class NotebookLink(Directive):
  """A pointer to a notebook of ``notebooks/`` when it is there; nothing while it is not."""

  required_arguments = 1

  def run(self) -> list[nodes.Node]:
    name = self.arguments[0]
    notebook = Path(self.state.document.settings.env.app.confdir) / "notebooks" / f"{name}.ipynb"
    if not notebook.exists():
      return []
    lines = [
      f"The notebook :doc:`notebooks/{name}` builds one step by step and runs it through the library."
    ]
    return _parse(self, lines)


def _parse(directive: Directive, lines: list[str]) -> list[nodes.Node]:
  container = nodes.container()
  directive.state.nested_parse(StringList(lines), directive.content_offset, container)
  return container.children


def extract_figure(app: Sphinx) -> None:
  """Write the landing figure from the committed output of the notebook that draws it."""
  notebook = Path(app.confdir).parent / "notebooks" / FIGURE_NOTEBOOK
  cells = json.loads(notebook.read_text())["cells"]
  for cell in cells:
    if cell["cell_type"] == "code" and FIGURE_CELL in "".join(cell["source"]):
      for output in cell.get("outputs", []):
        png = output.get("data", {}).get("image/png")
        if png:
          target = Path(app.confdir) / FIGURE_FILE
          target.parent.mkdir(exist_ok=True)
          data = base64.b64decode("".join(png) if isinstance(png, list) else png)
          if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
          return
  logger.warning(
    f"{FIGURE_NOTEBOOK} has no committed figure output of a cell calling {FIGURE_CELL}",
    type="gatejax",
    subtype="figure",
  )


def copy_mathjax(app: Sphinx, exception: BaseException | None) -> None:
  """Serve MathJax 3 from the build: the site is read offline and tested offline."""
  if exception is not None or app.builder.format != "html":
    return
  source = importlib.resources.files("mathjax") / "static" / "mathjax" / "es5"
  target = Path(app.outdir) / "_static" / "mathjax"
  for part in _MATHJAX_PARTS:
    path = Path(str(source / part))
    if path.is_dir():
      shutil.copytree(path, target / part, dirs_exist_ok=True)
    else:
      target.mkdir(parents=True, exist_ok=True)
      shutil.copy2(path, target / part)


def package_members(package: str) -> list[tuple[str, str]]:
  """``(directive, name)`` for each name of ``package.__all__`` that its page documents: those
  defined in its private files (``autoclass``, ``autofunction``, ``autodata``)."""
  module = importlib.import_module(package)
  out = []
  for name in getattr(module, "__all__", ()):
    obj = getattr(module, name)
    if inspect.ismodule(obj) or _home(package, name, obj) != package:
      continue
    if inspect.isclass(obj):
      out.append(("autoclass", name))
    elif inspect.isroutine(obj):
      out.append(("autofunction", name))
    else:
      out.append(("autodata", name))
  return out


def template_context(app: Sphinx, config: Any) -> None:
  """Tell the API page template which modules are packages (their page is a table of names)
  and which names each package's page documents itself."""
  packages = public_packages()
  config.autosummary_context = {
    **config.autosummary_context,
    "packages": packages,
    "package_members": {p: package_members(p) for p in packages},
  }


def setup(app: Sphinx) -> dict[str, Any]:
  app.connect("config-inited", template_context)
  app.connect("builder-inited", check_docstrings)
  app.connect("builder-inited", check_api_index)
  app.connect("builder-inited", extract_figure)
  app.connect("missing-reference", resolve_alias)
  app.connect("autodoc-skip-member", skip_field_aliases)
  app.connect("build-finished", copy_mathjax)
  app.add_directive("gatejax-reexports", Reexports)
  app.add_directive("gatejax-notebook-link", NotebookLink)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
