"""The documentation site as a reader sees it: pages opened in headless Chromium.

Checks the built site (``docs/_build/html``, from the command in ``docs/conf.py``), served on
localhost: the landing page, an API page and a notebook page each render with their figures
loaded, their math typeset by MathJax without a TeX error, nothing logged to the browser's
console at the error level (a failed request logs there), and every internal link of the page
leads to a file of the build (and to an element of it, for a link with a fragment).
Screenshots go to ``docs/_build/screenshots/`` (CI artefacts, not in git).

Skipped unless the site is built or ``GATEJAX_DOCS=1``; with ``GATEJAX_DOCS=1`` (CI) a
missing site, Chromium or selenium is a failure, not a skip.
"""

import functools
import http.server
import os
import pathlib
import shutil
import threading
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).parent.parent
SITE = ROOT / "docs" / "_build" / "html"
SCREENSHOTS = ROOT / "docs" / "_build" / "screenshots"
REQUIRED = os.environ.get("GATEJAX_DOCS") == "1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# One page of each kind: the landing page (its figure), an API page (the docstrings' math),
# a notebook (committed outputs: figures, markdown tables, math).
PAGES = {
  "landing": "index.html",
  "api": "api/gatejax.analysis.html",
  "notebook": "notebooks/02_vanishing_gradients.html",
}


def _unavailable(reason: str) -> None:
  if REQUIRED:
    pytest.fail(f"GATEJAX_DOCS=1 but {reason}")
  pytest.skip(reason)


@pytest.fixture(scope="module")
def site():
  """The built site, served on a free localhost port for the module's tests."""
  if not (SITE / "index.html").is_file():
    _unavailable(f"the site is not built ({SITE}; see docs/conf.py for the command)")
  handler = functools.partial(_QuietHandler, directory=str(SITE))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}/"
  server.shutdown()
  server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, format, *args):
    pass  # a request log per file would bury the test output


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
  try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
  except ImportError:
    _unavailable("selenium is not installed (pip install -e '.[docs]')")
  if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    _unavailable(
      "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    )
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1600",
    f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
  ):
    options.add_argument(flag)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
  driver.set_page_load_timeout(60)
  driver.set_script_timeout(60)
  yield driver
  driver.quit()


@pytest.fixture(scope="module", params=sorted(PAGES))
def page(request, site, browser):
  """A page loaded, its math typeset and its images settled, with what the browser saw."""
  name = request.param
  browser.get_log("browser")  # what earlier pages logged is theirs
  browser.get(site + PAGES[name])
  # MathJax typesets after the load event; its startup promise settles when it is done.
  typeset = browser.execute_async_script(
    """
    const done = arguments[arguments.length - 1];
    if (!window.MathJax || !MathJax.startup) { done("no MathJax"); return; }
    MathJax.startup.promise.then(() => done("ok"), (e) => done("failed: " + e));
    """
  )
  images = browser.execute_async_script(
    """
    const done = arguments[arguments.length - 1];
    const images = Array.from(document.images);
    Promise.all(images.map((img) => img.complete ? null
      : new Promise((r) => { img.onload = img.onerror = r; })))
      .then(() => done(images.map((img) => [img.currentSrc, img.naturalWidth])));
    """
  )
  math = browser.execute_script(
    "return [document.querySelectorAll('mjx-container').length,"
    " document.querySelectorAll('mjx-merror, mjx-container [data-mjx-error]').length,"
    " document.querySelectorAll('.math').length]"
  )
  links = browser.execute_script(
    "return Array.from(document.querySelectorAll('a[href]'), (a) => a.href)"
  )
  _screenshot(browser, SCREENSHOTS / f"{name}.png")
  return {
    "name": name,
    "title": browser.title,
    "typeset": typeset,
    "images": images,
    "math": math,
    "links": links,
    "console": browser.get_log("browser"),
    "origin": site,
  }


def _screenshot(browser, path: pathlib.Path) -> None:
  """The whole page (up to 16000 pixels down), the window stretched to its height."""
  path.parent.mkdir(parents=True, exist_ok=True)
  width, height = browser.get_window_size().values()
  full = browser.execute_script("return document.documentElement.scrollHeight")
  browser.set_window_size(width, min(full, 16000))
  try:
    browser.save_screenshot(str(path))
  finally:
    browser.set_window_size(width, height)


def test_the_page_renders_with_its_figures(page):
  assert "gatejax" in page["title"]
  broken = [src for src, width in page["images"] if width == 0]
  assert not broken, f"{page['name']}: images that did not load: {broken}"
  figures = [src for src, _ in page["images"] if "/_static/" not in src or "_generated" in src]
  if page["name"] in ("landing", "notebook"):
    assert figures, f"{page['name']}: no figure on the page"


def test_the_math_is_typeset(page):
  assert page["typeset"] == "ok", f"{page['name']}: MathJax: {page['typeset']}"
  typeset, errors, sources = page["math"]
  assert sources > 0, f"{page['name']}: no math on the page to typeset"
  assert typeset >= sources, f"{page['name']}: {sources} math elements, {typeset} typeset"
  assert errors == 0, f"{page['name']}: {errors} TeX errors"


def test_nothing_goes_wrong_in_the_console(page):
  errors = [entry for entry in page["console"] if entry["level"] == "SEVERE"]
  assert not errors, f"{page['name']}: console errors: {errors}"


def test_every_internal_link_leads_into_the_build(page):
  broken = []
  for href in page["links"]:
    if not href.startswith(page["origin"]):
      continue  # outside the site (a paper, a repository): not this test's to fetch
    url = urllib.parse.urlsplit(href)
    path = SITE / urllib.parse.unquote(url.path).lstrip("/")
    if path.is_dir():
      path = path / "index.html"
    if not path.is_file():
      broken.append(href)
    elif url.fragment and path.suffix == ".html":
      fragment = urllib.parse.unquote(url.fragment)
      if f'id="{fragment}"' not in path.read_text(encoding="utf-8"):
        broken.append(href)
  assert page["links"], f"{page['name']}: no links at all"
  assert not broken, f"{page['name']}: links to nothing in the build: {broken}"
