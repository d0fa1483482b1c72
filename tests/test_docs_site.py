"""The documentation site works in a real browser: Debian's chromium, driven by selenium.

The site is built (``mkdocs build --strict``, as ``make docs`` does) into a temporary
directory, or taken from ``STRATACACHE_DOCS_SITE`` (``make pytest`` gives the site the docs
target has just built), served from a local ``http.server`` on a port the system picks, and
read by one headless chromium session, page by page. Every page must load without a JavaScript error
(a failed request counts: a missing script, stylesheet or image), its mermaid diagrams must
render as SVG from the vendored mermaid (no request leaves the local server: the site reads
offline), the search must find ``at_most_once`` with the decorator page first, and no
internal link or image may be broken (a link's ``#anchor`` included).

chromium and chromedriver come from Debian (``make chromium`` installs them); without them
the tests fail, they never skip.
"""

from __future__ import annotations

import contextlib
import functools
import html
import http.server
import os
import shutil
import sys
import threading
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple
from urllib.parse import urldefrag

import pytest

from .conftest import ROOT
from .test_docs import _generator
from .test_packaging import run_in

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
RESULT = "li.md-search-result__item a"
WAIT = 15.0  # seconds for a page's scripts (mermaid, the search index) to finish


def _build(site: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.fail(f"mkdocs is not installed next to {sys.executable}: the dev group has it")
    result = run_in(ROOT, mkdocs, "build", "--strict", "--site-dir", str(site))
    assert result.returncode == 0, result.stderr


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a failed request shows in the browser's log instead."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as ``make docs`` builds it (``make pytest`` gives that build's)."""
    if built := os.environ.get("STRATACACHE_DOCS_SITE"):
        return ROOT / built
    site = tmp_path_factory.mktemp("site")
    _build(site)
    return site


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """The site served on 127.0.0.1, at a port the system picks: its URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium session for every check of this module."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail(
            "chromium or chromedriver is not on PATH: `make chromium` installs Debian's chromium"
            " and chromium-driver (as root), or run apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1024")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


# -- site_url ------------------------------------------------------------------------------


def _hook() -> ModuleType:
    return _generator("site_url")  # docs/site_url.py


def test_site_url_is_the_root_of_docs_url() -> None:
    hook = _hook()
    assert hook.site_url("https://example.org/stratacache") == "https://example.org/stratacache/"
    assert hook.site_url("https://example.org/stratacache/") == "https://example.org/stratacache/"
    assert hook.site_url("") is None, "no public URL yet: no site_url"


def test_the_build_takes_site_url_from_pyproject() -> None:
    from mkdocs.config.defaults import MkDocsConfig

    hook = _hook()
    docs_url = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["stratacache"]
    assert hook.on_config(MkDocsConfig()).site_url == hook.site_url(docs_url["docs_url"])


# -- reading every page ------------------------------------------------------------------

_PAGE_STATE = """
return {
  diagrams: document.querySelectorAll('div.mermaid').length,
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  images: [...document.querySelectorAll('img')].map(i => ({
    src: i.currentSrc || i.src, loaded: i.complete && i.naturalWidth > 0})),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  wide_tables: [...document.querySelectorAll('article table')]
    .filter(t => t.scrollWidth > t.closest('article').clientWidth + 1)
    .map(t => [...t.querySelectorAll('th')].map(th => th.textContent.trim()).join(' | ')),
};
"""
MERMAID_BLOCK = '<pre class="mermaid">'  # what the build writes; Material turns each into a div


class Page(NamedTuple):
    url: str
    errors: list[str]
    diagrams: int  # in the built page
    svg_diagrams: int  # rendered by mermaid as SVG
    links: list[str]
    images: list[dict[str, Any]]
    resources: list[str]
    wide_tables: list[str]  # the header of each table wider than the page's column


def _svg_diagrams(browser: Any) -> int:
    """Count the diagrams rendered as SVG (not mermaid's error picture).

    Material puts each diagram in a closed shadow root, which page scripts cannot read:
    the DevTools protocol can (``pierce``).
    """
    tree = browser.execute_cdp_cmd("DOM.getDocument", {"depth": -1, "pierce": True})

    def attributes(node: dict[str, Any]) -> dict[str, str]:
        flat = node.get("attributes", [])
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in [*node.get("children", []), *node.get("shadowRoots", [])]:
            yield from walk(child)

    rendered = 0
    for node in walk(tree["root"]):
        if node.get("nodeName") == "DIV" and attributes(node).get("class") == "mermaid":
            svgs = [n for n in walk(node) if n.get("nodeName", "").lower() == "svg"]
            if svgs and attributes(svgs[0]).get("aria-roledescription") != "error":
                rendered += 1
    return rendered


def _read(browser: Any, url: str, diagrams: int) -> Page:
    """Load ``url``; wait for its ``diagrams`` to render (or the wait to run out); read it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    if diagrams:
        with contextlib.suppress(TimeoutException):  # counted below, reported by its test
            WebDriverWait(browser, WAIT).until(lambda b: _svg_diagrams(b) == diagrams)
    state: dict[str, Any] = browser.execute_script(_PAGE_STATE)
    errors = [
        entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
    ]
    return Page(
        url,
        errors,
        diagrams,
        _svg_diagrams(browser) if diagrams else 0,
        state["links"],
        state["images"],
        state["resources"],
        state["wide_tables"],
    )


@pytest.fixture(scope="module")
def pages(browser: Any, site: Path, base_url: str) -> list[Page]:
    """Every page of the site (each built ``index.html``), read in the browser."""
    read = []
    for built in sorted(site.rglob("index.html")):
        path = built.parent.relative_to(site).as_posix()
        url = base_url if path == "." else f"{base_url}{path}/"
        read.append(_read(browser, url, built.read_text().count(MERMAID_BLOCK)))
    return read


# -- the checks ----------------------------------------------------------------------------


def test_every_page_loads_without_javascript_errors(pages: list[Page]) -> None:
    assert len(pages) > 30, [p.url for p in pages]
    failing = {p.url: p.errors for p in pages if p.errors}
    assert not failing, failing


def test_the_mermaid_diagrams_render_as_svg_from_the_vendored_mermaid(
    pages: list[Page], base_url: str
) -> None:
    with_diagrams = {p.url: (p.svg_diagrams, p.diagrams) for p in pages if p.diagrams}
    assert base_url in with_diagrams, "the overview has the layers diagram"
    assert base_url + "decorator/" in with_diagrams, "the decorator page has diagrams"
    unrendered = {url: counts for url, counts in with_diagrams.items() if counts[0] != counts[1]}
    assert not unrendered, f"(rendered, diagrams) per page: {unrendered}"
    elsewhere = {r for p in pages for r in p.resources if not r.startswith(base_url)}
    assert not elsewhere, f"the site must read offline; it loaded {sorted(elsewhere)}"


def test_search_finds_at_most_once_on_the_decorator_page_first(browser: Any, base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base_url)
    query = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
    query.click()
    query.send_keys("at_most_once")

    def results_for_the_whole_query(b: Any) -> list[str]:
        # The results follow each keystroke; a section's link highlights its query (?h=).
        links = [a.get_attribute("href") for a in b.find_elements(By.CSS_SELECTOR, RESULT)]
        return links if any("h=at_most_once" in link for link in links) else []

    first = WebDriverWait(browser, WAIT).until(results_for_the_whole_query)[0]
    assert first.split("?")[0] == base_url + "decorator/", f"results: {first}"


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name in ("id", "name") and value)


@functools.cache
def _fetch(url: str) -> tuple[int, frozenset[str]]:
    """The HTTP status of ``url`` and, for a page, the ids its anchors may name."""
    try:
        with urllib.request.urlopen(url) as response:
            body = response.read()
            status: int = response.status
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        return exc.code, frozenset()
    if kind != "text/html":
        return status, frozenset()
    parser = _Ids()
    parser.feed(body.decode())
    return status, frozenset(parser.ids)


def test_every_table_fits_the_column_at_1280_px(pages: list[Page]) -> None:
    """No table scrolls sideways in a 1280 px window: every column, the verdicts too, shows."""
    wide = {p.url: p.wide_tables for p in pages if p.wide_tables}
    assert not wide, "\n".join(f"{url}: {headers}" for url, headers in wide.items())


def test_no_internal_link_or_image_is_broken(pages: list[Page], base_url: str) -> None:
    broken = []
    anchors = 0
    for page in pages:
        broken += [f"{page.url}: image {i['src']}" for i in page.images if not i["loaded"]]
        for link in page.links:
            if not link.startswith(base_url):
                continue  # another site: not checked (the tests run offline)
            target, anchor = urldefrag(link)
            anchors += bool(anchor)
            status, ids = _fetch(target)
            if status != 200:
                broken.append(f"{page.url}: {link} ({status})")
            elif anchor and anchor not in ids:
                broken.append(f"{page.url}: {link} (no #{anchor} there)")
    assert not broken, "\n".join(broken)
    assert anchors > 1000, "the API reference alone links to hundreds of anchors"


def test_the_hook_page_documents_every_hook_spec(base_url: str) -> None:
    from stratacache import hookspecs

    specs = [name for name, f in vars(hookspecs).items() if hasattr(f, "stratacache_spec")]
    assert len(specs) >= 10
    status, ids = _fetch(base_url + "hookspecs/")
    assert status == 200
    missing = [name for name in specs if f"stratacache.hookspecs.{name}" not in ids]
    assert not missing, f"docs/hookspecs.md does not render {missing}"


def test_the_cli_reference_shows_the_epilog_of_stratacache_help(site: Path) -> None:
    """mkdocs-click leaves click's epilog out: docs/cli_epilog.py puts it on the page."""
    from stratacache.cli import EPILOG

    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert _generator("cli_epilog").MARKER not in page
    for line in EPILOG.splitlines():
        if line.strip() and line.strip() != "\b":
            assert html.escape(line.strip(), quote=False) in page, line
