"""Regenerate docs/viewer.png and docs/viewer_env.png: the viewer of a small generated environment
(22 pages, with its Env-Noise variant) and a log of the random reference policy, in headless Chromium.

    python scripts/viewer_screenshots.py [--chromium /usr/bin/chromium]

Needs Debian's chromium and Playwright for Python (requirements.lock); never downloads a browser.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from gelab.cli import main
from gelab.env.envdir import RenderSettings, write_environment
from gelab.env.generate import generate
from gelab.env.variants import make_variant
from gelab.params import EnvParams

DOCS = Path(__file__).resolve().parents[1] / "docs"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def build(work: Path) -> Path:
    params = EnvParams(branching=[3, 2, 2])
    structure, art = generate(params)
    base = write_environment(work / "env" / "base", structure, art, RenderSettings(params.model_image_size))
    vs, va = make_variant("noise", structure, art, 1, params)
    write_environment(work / "env" / "noise", vs, va, base.settings)
    os.chdir(work)  # relative paths in the site, as under `dvc repro`
    assert main(["eval", "interactive", "--policy", "random", "--env", "env/base", "--subtree", "page_1",
                 "--attempts", "2", "--trajectories", "eval/random/interactive/trajectories.jsonl",
                 "--out", "eval/random/interactive.json"]) == 0
    assert main(["view", "--env", "env/base", "--variant", "noise=env/noise",
                 "--run", "random=eval/random/interactive/trajectories.jsonl", "--out", "site"]) == 0
    return work / "site"


def shoot(site: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{site.as_uri()}/index.html#/env/base/page_4")
        page.wait_for_function("window.gelabReady === true")
        page.screenshot(path=str(DOCS / "viewer_env.png"))
        page.goto(f"{site.as_uri()}/index.html#/episodes?model=random&kind=loop")
        page.click("#results tr[data-episode] a")
        page.wait_for_selector("#episode-body[data-key] #steps")
        page.screenshot(path=str(DOCS / "viewer.png"))
        browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shoot(build(Path(tmp)), args.chromium)
    print(f"wrote {DOCS / 'viewer.png'} and {DOCS / 'viewer_env.png'}")
