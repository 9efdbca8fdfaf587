"""Notebook 01 as a student runs it: JupyterLab from .venv on 127.0.0.1, Debian's Chromium driven headless by
Playwright, the notebook opened from notebooks/, Run > Run All Cells, no error output, its record written under the
results folder, a screenshot kept under results/browser/.

Runs with `make test-browser` (and `make test-slow`, and in CI): it needs the system Chromium (`apt-get install
chromium`) and the `playwright` package (`pip install playwright`; never a downloaded browser build). Where either
is missing it skips, saying which.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lmm_r1.results import REPO_ROOT

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = REPO_ROOT / "results" / "browser"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, tiny_model):
    """A JupyterLab server rooted at the repository, with autosave off and checkpoints outside the checkout, and
    kernels whose results root is a temporary folder (they inherit the server's environment)."""
    if CHROMIUM is None:
        pytest.skip("no system Chromium: apt-get install chromium")
    pytest.importorskip("playwright", reason="pip install playwright (the browser itself comes from apt)")
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    notebook = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True)  # render every cell (no windowing), so the error check sees them all
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                        "checkForUpdates": False}))
    port, token = _free_port(), "lmm-r1-test"
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), LMM_R1_RESULTS=str(tmp_path / "results"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    jupyter = Path(sys.executable).parent / "jupyter"
    server = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}", "--allow-root",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO_ROOT}",
         f"--FileCheckpoints.checkpoint_dir={tmp_path / 'checkpoints'}"],
        cwd=REPO_ROOT / "notebooks", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield url, token, tmp_path / "results"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_notebook_01_runs_in_jupyterlab(lab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    url, token, results = lab
    before = set((REPO_ROOT / "notebooks").iterdir())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{url}/lab/tree/notebooks/01_reward_design.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        # JupyterLab asks which kernel to start for a notebook opened from a link: the student picks the kit's
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        try:
            accept.wait_for(timeout=20_000)
            accept.click()
        except PlaywrightTimeout:
            pass
        page.wait_for_function("() => [...document.querySelectorAll('.jp-Toolbar-kernelName, .jp-KernelName')]"
                               ".some(e => e.textContent.includes('Python 3'))", timeout=60_000)
        time.sleep(3)  # the kernel connects
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        # done when the last cell has written the record and no cell is queued or running ("[*]")
        record = results / "tiny" / "reward_design" / "metrics.json"
        deadline = time.time() + 300
        while time.time() < deadline:
            prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
            if record.is_file() and not any(t.strip() == "[*]:" for t in prompts):
                break
            time.sleep(2)
        else:
            page.screenshot(path=str(SCREENSHOTS / "notebook01_timeout.png"), full_page=True)
            pytest.fail(f"Run All did not finish in 5 minutes; prompts: {prompts}")
        errors = page.locator("[data-mime-type='application/vnd.jupyter.error']").count()
        page.screenshot(path=str(SCREENSHOTS / "notebook01.png"), full_page=False)
        browser.close()
    assert errors == 0, f"{errors} error output(s); see {SCREENSHOTS / 'notebook01.png'}"
    assert record.is_file()  # where `lmm-r1 run` writes it (the kernel started in notebooks/)
    assert not [t for t in prompts if t.strip() in ("[ ]:", "[*]:")], prompts  # every cell ran
    assert set((REPO_ROOT / "notebooks").iterdir()) == before  # no notebooks/results/, nothing saved beside
