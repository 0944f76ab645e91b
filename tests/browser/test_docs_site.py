"""Build the documentation site and look at it in headless Chromium, offline.

The site is built into a temporary directory with ``mkdocs build --strict`` and served on a
loopback port; every request to any other host is refused and recorded, so the test fails if a
page still reaches for a CDN. Each page that holds Mermaid diagrams must show every one of them
as a rendered SVG, which also proves the diagrams parse (a diagram that does not parse stays a
``<pre>`` of text).
"""

from __future__ import annotations

import functools
import http.server
import importlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.test_demo_browser import CHROMIUM, CHROMIUM_ARGS, REPO
from tests.test_api_docstrings import MODULES

pytestmark = pytest.mark.browser

#: Material puts each rendered diagram in a *closed* shadow root; opening it lets the test look.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attach.call(this, {...init, mode: "open"});
};
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", site_dir],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site_dir


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def offline_page(browser: Browser, site_url: str) -> Iterator[tuple[Page, list[str]]]:
    """A page that may only reach the site's own server; other requests are listed."""
    context = browser.new_context(base_url=site_url)
    context.add_init_script(OPEN_SHADOW_ROOTS)
    elsewhere: list[str] = []
    own_host = urlsplit(site_url).netloc

    def route(r: object) -> None:
        request = r.request  # type: ignore[attr-defined]  # playwright's Route, untyped here
        if urlsplit(request.url).netloc == own_host or request.url.startswith("data:"):
            r.continue_()  # type: ignore[attr-defined]
        else:
            elsewhere.append(request.url)
            r.abort()  # type: ignore[attr-defined]

    context.route("**/*", route)
    try:
        yield context.new_page(), elsewhere
    finally:
        context.close()


def _diagram_pages(site: Path) -> dict[str, int]:
    """Site path -> number of Mermaid diagrams on it, read from the built HTML."""
    pages = {}
    for html in sorted(site.rglob("index.html")):
        count = html.read_text().count('<pre class="mermaid">')
        if count:
            pages["/" + str(html.parent.relative_to(site)).strip(".") + "/"] = count
    return {path.replace("//", "/"): n for path, n in pages.items()}


def test_home_page_loads_with_navigation_and_search(
    offline_page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    page, elsewhere = offline_page
    page.goto("/")
    expect(page).to_have_title("crudauth")
    expect(page.locator("nav.md-nav").first).to_contain_text("Tutorial")
    expect(page.locator("nav.md-nav").first).to_contain_text("API reference")
    expect(page.locator("input.md-search__input")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "home.png"), full_page=False)
    assert (tmp_path / "home.png").stat().st_size > 10_000
    assert elsewhere == []


def test_every_diagram_is_rendered_from_the_sites_own_mermaid(
    offline_page: tuple[Page, list[str]], site: Path, tmp_path: Path
) -> None:
    page, elsewhere = offline_page
    pages = _diagram_pages(site)
    assert "/architecture/" in pages  # the sign-in pipeline and the request
    assert sum(pages.values()) >= 7
    for path, expected in pages.items():
        page.goto(path)
        rendered = page.locator("div.mermaid svg")
        expect(rendered).to_have_count(expected, timeout=30_000)
        expect(page.locator("pre.mermaid")).to_have_count(0)  # nothing left unparsed
        box = rendered.first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50, path
    page.goto("/architecture/")
    diagram = page.locator("div.mermaid").first
    expect(diagram.locator("svg")).to_have_count(1, timeout=30_000)
    diagram.scroll_into_view_if_needed()
    shot = tmp_path / "sign-in-pipeline.png"
    diagram.screenshot(path=str(shot))
    assert shot.stat().st_size > 5_000
    assert elsewhere == []


def test_every_exported_name_has_an_entry_in_the_api_reference(site: Path) -> None:
    anchors: set[str] = set()
    for page in (site / "reference").rglob("index.html"):
        anchors |= set(re.findall(r'id="(crudauth[\w.]*)"', page.read_text()))
    missing = [
        f"{module}.{name}"
        for module in MODULES
        for name in importlib.import_module(module).__all__
        # A name exported lazily is documented where it is defined.
        if f"{module}.{name}" not in anchors and not any(a.endswith(f".{name}") for a in anchors)
    ]
    assert missing == []
