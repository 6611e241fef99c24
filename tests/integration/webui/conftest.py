"""Browser tests: the app served by uvicorn on a loopback port, driven by Debian's
Chromium through Playwright (never `playwright install`: no browser downloads here).

Every page request is recorded; a test fails if any request leaves the app's origin.
Screenshots go to artifacts/web/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.async_api import BrowserContext, Page, Request, async_playwright

from tests.support.serving import served

CHROMIUM = os.environ.get("POLYSHOP_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts" / "web"
AXE = (
    Path(__file__).resolve().parents[3]
    / "web"
    / "assets"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)

# The closed network refuses Chromium's background connections: switch them all off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The test's app (lifespan already started by the `app` fixture) on a real port."""
    async with served(app) as url:
        yield url


@pytest.fixture
async def browser_context() -> AsyncIterator[BrowserContext]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: `make install` installs Debian's chromium")
    with tempfile.TemporaryDirectory(prefix="polyshop-chromium-") as profile:
        async with async_playwright() as pw:
            # a persistent context is the only way to give Chromium a fresh user-data-dir
            # of our own; launch() with --user-data-dir is refused by Playwright
            ctx = await pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            yield ctx
            await ctx.close()


@dataclass
class Web:
    """A browser pointed at the live app, with the requests it made."""

    context: BrowserContext
    base: str
    foreign: list[str] = field(default_factory=list)

    async def page(self, width: int = 1100) -> Page:
        page = await self.context.new_page()
        await page.set_viewport_size({"width": width, "height": 900})
        return page

    async def screenshot(self, page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    async def sign_in(self, page: Page, key: str, next_path: str = "") -> None:
        await page.goto(f"{self.base}/signin?next={next_path}")
        await page.get_by_label("API key").fill(key)
        await page.get_by_role("button", name="Sign in with the key").click()
        await page.wait_for_load_state()

    async def axe(self, page: Page) -> list[dict[str, object]]:
        """axe-core's serious and critical violations on the current page."""
        await page.add_script_tag(path=str(AXE))
        result = await page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))"
        )
        assert isinstance(result, list)
        return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keep each phase's report on the test, so `web` knows at teardown if it failed."""
    report = yield
    setattr(item, f"report_{call.when}", report)
    return report


@pytest.fixture
async def web(
    browser_context: BrowserContext, live_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Web]:
    w = Web(browser_context, live_url)

    def record(request: Request) -> None:
        url = request.url
        # blob: URLs of this origin are the upload preview (the file never left the page)
        if not url.startswith((live_url + "/", f"blob:{live_url}/", "data:")):
            w.foreign.append(url)

    browser_context.on("request", record)
    yield w
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        # what each open page showed when the test failed, beside the chosen screenshots
        for n, page in enumerate(browser_context.pages):
            await w.screenshot(page, f"failed-{request.node.name}-{n}")
    assert w.foreign == [], f"requests outside the origin: {w.foreign}"
