"""Seen in a real browser: the monitoring run page and its report in the MLflow UI, in headless Chromium.

The MLflow UI shows an HTML artifact in a sandboxed iframe loaded from a blob: URL, which
``--dump-dom`` does not reach, so the test drives Chromium over the DevTools protocol (a small
websocket client on aiohttp, which MLflow already depends on) and reads the report's own frame.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from mlflow_ext.model_check import check_model
from tests.backends import start_mlflow_server, stop_process_group
from tests.model_fixtures import ID, make_batch

pytest_plugins = ["tests.model_fixtures"]

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-site-isolation-trials", "--window-size=1400,1000")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary, installed with apt-get where missing; the test is skipped if that fails."""
    found = shutil.which("chromium")
    if found:
        return found
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ,
                              "DEBIAN_FRONTEND": "noninteractive"}, check=False)
        if done.returncode != 0:
            reason = f"Chromium is missing and '{' '.join(argv)}' failed: {done.stderr.strip()[-300:]}"
            print(reason)
            pytest.skip(reason)
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no 'chromium' is on PATH")
    return found


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[str]:
    """A headless Chromium with the DevTools protocol on a local port; yields its websocket URL."""
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, "--remote-debugging-port=0",
                             f"--user-data-dir={tmp_path / 'chromium-profile'}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stderr is not None
        deadline, lines = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            line = proc.stderr.readline().decode(errors="replace")
            lines.append(line)
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                break
            if not line and proc.poll() is not None:
                break
        else:
            match = None
        if match is None:
            pytest.fail("Chromium did not start its DevTools endpoint:\n" + "".join(lines[-20:]))
        yield match.group(1)
    finally:
        stop_process_group(proc)  # type: ignore[arg-type]


class _Page:
    """One browser tab driven over the DevTools protocol (flattened sessions)."""

    def __init__(self, ws: Any, session: str) -> None:
        self.ws, self.session, self.ids = ws, session, itertools.count(1)
        self.contexts: dict[str, int] = {}  # frame id -> its default execution context

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        await self.ws.send_json({"id": ident, "method": method, "params": params, "sessionId": self.session})
        while True:
            message = json.loads((await self.ws.receive()).data)
            if message.get("method") == "Runtime.executionContextCreated":
                context = message["params"]["context"]
                if context.get("auxData", {}).get("isDefault"):
                    self.contexts[context["auxData"]["frameId"]] = context["id"]
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def evaluate(self, expression: str, frame: str | None = None) -> Any:
        params: dict[str, Any] = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if frame is not None:
            params["contextId"] = self.contexts[frame]
        return (await self.call("Runtime.evaluate", **params)).get("result", {}).get("value")

    async def wait_for(self, expression: str, frame_url_prefix: str | None = None, timeout: float = 60) -> Any:
        """Poll until ``expression`` is truthy in the page (or in the first frame whose URL has the prefix)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = None
            if frame_url_prefix is not None:
                tree = (await self.call("Page.getFrameTree"))["frameTree"]
                frames = [c["frame"] for c in tree.get("childFrames", [])
                          if c["frame"].get("url", "").startswith(frame_url_prefix)]
                frame = frames[0]["id"] if frames and frames[0]["id"] in self.contexts else None
            if frame_url_prefix is None or frame is not None:
                value = await self.evaluate(expression, frame)
                if value:
                    return value
            await asyncio.sleep(0.5)
        raise AssertionError(f"not true within {timeout} s: {expression}")

    async def screenshot(self, path: Path) -> None:
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        path.write_bytes(base64.b64decode(data))


async def _visit(ws_url: str, run_page: str, shots: Path) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        await ws.send_json({"id": 0, "method": "Target.createTarget", "params": {"url": "about:blank"}})
        target = json.loads((await ws.receive()).data)["result"]["targetId"]
        await ws.send_json({"id": -1, "method": "Target.attachToTarget",
                            "params": {"targetId": target, "flatten": True}})
        session = ""
        while not session:
            message = json.loads((await ws.receive()).data)
            session = message.get("result", {}).get("sessionId", "")
        page = _Page(ws, session)
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        await page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1,
                        mobile=False)
        await page.call("Page.navigate", url=run_page)
        description = await page.wait_for(
            "[...document.querySelectorAll('body *')].map(e => e.innerText || '').find(t => t.startsWith('ALERT:'))"
            " || ''")
        await page.screenshot(shots / "run-page.png")
        await page.call("Page.navigate", url=f"{run_page}/artifacts/report.html")
        report = await page.wait_for(
            "(() => { const v = document.getElementById('verdict'); if (!v) return null;"
            " const imgs = [...document.images].filter(i => i.src.startsWith('data:image/png;base64,'));"
            " if (!imgs.length || !imgs.every(i => i.complete && i.naturalWidth > 0)) return null;"
            " const box = v.getBoundingClientRect();"
            " return {verdict: v.innerText, images: imgs.length, width: imgs[0].naturalWidth,"
            " shown: imgs[0].getBoundingClientRect().width > 0,"
            " visible: box.width > 0 && box.height > 0 && getComputedStyle(v).visibility === 'visible',"
            " text: document.body.innerText}; })()", frame_url_prefix="blob:")
        await asyncio.sleep(1)  # let the viewer finish its layout before the picture is taken
        await page.screenshot(shots / "report.png")
        return {"description": description, **report}


def test_run_page_and_report_render_in_chromium(model_store: str, browser: str, tmp_path: Path) -> None:
    outcome = check_model("churn", make_batch(800, seed=41, shift=1.0, flip=0.35), id_column=ID)
    assert outcome.status == "alert" and outcome.run_id is not None
    experiment = mlflow.MlflowClient().get_experiment_by_name("mlflow-ext/churn")
    assert experiment is not None
    proc, url = start_mlflow_server(model_store, tmp_path / "server-artifacts")
    try:
        run_page = f"{url}/#/experiments/{experiment.experiment_id}/runs/{outcome.run_id}"
        seen = asyncio.run(asyncio.wait_for(_visit(browser, run_page, tmp_path), timeout=240))
    finally:
        stop_process_group(proc)
    print(f"screenshots: {tmp_path / 'run-page.png'} {tmp_path / 'report.png'}")
    assert seen["description"].startswith("ALERT: ") and "columns drifted" in seen["description"]
    assert seen["verdict"] == "ALERT" and seen["visible"]
    assert seen["images"] >= 3 and seen["width"] > 300 and seen["shown"]  # drift overlays, performance, trend
    assert "Columns by drift" in seen["text"] and "accuracy" in seen["text"]
    for shot in ("run-page.png", "report.png"):
        assert (tmp_path / shot).read_bytes().startswith(b"\x89PNG") and (tmp_path / shot).stat().st_size > 20_000
