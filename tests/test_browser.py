"""The web pages, opened in a real browser: the docs' landing page, a notebook page, the API
page and a sweep's ``report.html``, in headless Chromium driven by Playwright.

Each page is served over HTTP from its folder (as a host would serve it; ``file://`` pages are
barred from some of what the theme's scripts do). On each: every image has loaded
(``naturalWidth > 0``), the console shows no error, no page resource failed, and every local
link answers 200 (same-page anchors exist). The machine has no internet, so requests to other
hosts (the CDN that serves MathJax) get an empty answer instead of a network error; the test
judges the site's own files. A last test reads the built API and CLI pages for every public
name and every option.

Chromium is the system's (Debian: ``apt-get install chromium``), passed to Playwright as
``executable_path``: no browser download. Run with ``python -m pytest -m browser``; the docs
are built first if ``docs/_build/html`` holds none (``.ci/run`` builds them).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
DOCS_HTML = ROOT / "docs" / "_build" / "html"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

SWEEP_CONFIG = """
[sweep]
name = "browser"
seeds = [0]
comparison = "map_vs_mle"
[data]
n = [30, 60]
d = 2
test_n = 200
[model]
likelihood = "gaussian"
estimator = ["mle", "map"]
prior = "normal"
prior_scale = 1.0
"""


def _chromium() -> str | None:
    explicit = os.environ.get("BAYESLOSS_CHROMIUM")
    if explicit:
        return explicit
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium on this machine (apt-get install -y chromium, or set "
                    "BAYESLOSS_CHROMIUM to a Chromium executable)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install '.[docs]'")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox"])  # CI runs as root
        yield chromium
        chromium.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request would drown the test's output
        pass


@pytest.fixture(scope="module")
def serve():
    """``serve(folder)`` → the base URL of an HTTP server on 127.0.0.1 serving ``folder``."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def docs_html() -> Path:
    if not (DOCS_HTML / "index.html").exists():
        subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                        str(ROOT / "docs"), str(DOCS_HTML)], check=True, cwd=ROOT)
    return DOCS_HTML


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory) -> Path:
    """A sweep of four tiny runs, made in-process by ``bayesloss sweep`` (the CLI)."""
    from bayesloss.cli import main

    folder = tmp_path_factory.mktemp("sweep")
    config = folder / "browser.toml"
    config.write_text(SWEEP_CONFIG, encoding="utf-8")
    out = folder / "out"
    assert main(["sweep", str(config), "--out", str(out), "--workers", "1"]) == 0
    assert (out / "report.html").exists()
    return out


def check_page(browser, url: str, *, min_images: int = 0) -> dict:
    """Open ``url`` and assert what the module docstring lists; returns what was seen."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    page = browser.new_page()
    errors, failed, outside = [], [], []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("requestfailed", lambda req: failed.append(f"{req.url}: {req.failure}"))
    page.on("response", lambda res: failed.append(f"{res.url}: {res.status}")
            if res.status >= 400 else None)

    def route(r):
        if r.request.url.startswith(origin):
            r.continue_()
        else:  # no internet here: answer other hosts empty rather than fail the network
            outside.append(r.request.url)
            r.fulfill(status=200, body="")

    page.route("**/*", route)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, url
    # lazy images load only when scrolled into view: load them all, then wait for each
    images = page.evaluate("""async () => {
        const imgs = Array.from(document.images);
        imgs.forEach(img => { img.loading = "eager"; });
        await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
            img.addEventListener("load", done); img.addEventListener("error", done); })));
        return imgs.map(img => [img.currentSrc || img.src, img.naturalWidth]);
    }""")
    page.wait_for_load_state("networkidle")
    broken = [src for src, width in images if width == 0]
    assert not broken, f"{url}: images that did not load: {broken}"
    assert len(images) >= min_images, f"{url}: {len(images)} images, expected ≥ {min_images}"
    assert not failed, f"{url}: resources that failed to load: {failed}"
    assert not errors, f"{url}: console errors: {errors}"

    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    anchors = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
    here = urldefrag(page.url).url
    local = {urldefrag(h).url for h in hrefs if h.startswith(origin)}
    missing_anchors = [h for h in hrefs if h.startswith(here + "#")
                       and urldefrag(h).fragment not in anchors and urldefrag(h).fragment]
    assert not missing_anchors, f"{url}: links to anchors the page lacks: {missing_anchors}"
    dead = []
    for link in sorted(local):
        status = page.request.get(link).status
        if status != 200:
            dead.append(f"{link}: {status}")
    assert not dead, f"{url}: local links that do not resolve: {dead}"
    page.close()
    return {"images": len(images), "links": len(local), "outside": outside}


def test_docs_landing_page(browser, serve, docs_html):
    seen = check_page(browser, serve(docs_html) + "index.html", min_images=1)
    assert seen["links"] >= 8  # the table of contents: guide, notebooks, API, CLI, …


def test_docs_notebook_page_shows_its_figures(browser, serve, docs_html):
    pages = sorted((docs_html / "notebooks").glob("02_*.html"))
    assert pages, "the posterior-diagnostics notebook page was not built"
    check_page(browser, serve(docs_html) + f"notebooks/{pages[0].name}", min_images=1)


def test_docs_api_page(browser, serve, docs_html):
    seen = check_page(browser, serve(docs_html) + "api.html")
    assert seen["links"] >= 20  # a page per public module and name


def test_sweep_report(browser, serve, sweep_report):
    figures = list((sweep_report / "figures").glob("*.png"))
    check_page(browser, serve(sweep_report) + "report.html", min_images=len(figures))


@pytest.mark.parametrize("body, fault", [
    ('<img src="missing.png" alt="">', "images that did not load"),
    ('<a href="nowhere.html">x</a>', "local links that do not resolve"),
    ('<a href="#nothing">x</a>', "anchors the page lacks"),
    ('<script>console.error("boom")</script>', "console errors"),
    ('<link rel="stylesheet" href="missing.css">', "resources that failed to load"),
])
def test_the_check_finds_each_fault(browser, serve, tmp_path, body, fault):
    (tmp_path / "page.html").write_text(f"<!doctype html><title>t</title>{body}",
                                        encoding="utf-8")
    with pytest.raises(AssertionError, match=fault):
        check_page(browser, serve(tmp_path) + "page.html")


def test_api_and_cli_pages_list_every_public_name_and_option(docs_html):
    """Every public function and class (each module's ``__all__``) has its API page, and the CLI
    page shows every subcommand and option of the parser."""
    import argparse
    import importlib

    from bayesloss.cli import build_parser

    missing = []
    for module_name in ("bayesloss", "bayesloss.sklearn", "bayesloss.experiments",
                        "bayesloss.plots", "bayesloss.io"):
        module = importlib.import_module(module_name)
        missing += [f"{module_name}.{name}" for name in module.__all__
                    if callable(getattr(module, name))  # constants have no page of their own
                    and not (docs_html / "generated" / f"{module_name}.{name}.html").exists()]
    assert not missing, f"public names without an API page: {missing}"

    cli = (docs_html / "cli.html").read_text(encoding="utf-8")
    subparsers = next(a for a in build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    absent = []
    for command, parser in subparsers.choices.items():
        if f"<h3>{command}<" not in cli:
            absent.append(command)
        absent += [f"{command} {option}" for action in parser._actions
                   for option in action.option_strings
                   if option not in ("-h", "--help") and f"<kbd>{option}</kbd>" not in cli]
    assert not absent, f"missing from the CLI page: {absent}"
