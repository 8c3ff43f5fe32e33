"""The viewer in a real headless Chromium, opened from disk (file://, no server, no network).

Sites are built from a generated environment and trajectory logs written by the interactive harness
with the reference policies. Screenshots are saved under pytest's tmp dir (``viewer-shots*``), with
the measured load and filter times of the 10,810-episode site (``timings.json``).
Needs Debian's ``chromium`` (``/usr/bin/chromium``; .ci/run installs it) and Playwright for Python
(``requirements.lock``); Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import pytest

from gelab.cli import main
from gelab.env.navigation import Navigator
from gelab.io import read_jsonl
from gelab.report.viewer.aggregate import SUCCESS, summarize

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
BIG_EPISODES = 2162 * 5  # one test subtree, k = 5: the paper's interactive run

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} not installed (apt-get install chromium; .ci/run does)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("viewer-shots")


@pytest.fixture(scope="module")
def site(small_env, small_logs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base, variants = small_env
    out = tmp_path_factory.mktemp("viewer") / "site"
    argv = ["view", "--env", str(base.root), "--out", str(out), "--quiet"]
    argv += [a for kind, env in variants.items() for a in ("--variant", f"{kind}={env.root}")]
    argv += [a for model, log in small_logs.items() for a in ("--run", f"{model}={log}")]
    assert main(argv) == 0
    return out


def open_site(browser: Any, site: Path, route: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors
    page.goto(f"{site.as_uri()}/index.html{route}")
    page.wait_for_function("window.gelabReady === true")
    return page


def test_environment_browser_moves_like_the_app(browser, site, small_env, shots):
    base, variants = small_env
    s = base.structure
    page = open_site(browser, site, "#/env/base/page_0")
    main_screen = ".page-row .screen"
    assert page.inner_text("#page-id") == "page_0"
    here = "page_0"
    for _ in range(3):  # three pages down the tree, each by clicking its content icon on the screenshot
        child = s.children(here)[0]
        icon = next(t.action for t in s.pages[here].transitions if t.target == child)
        page.click(f'{main_screen} .hotspot[data-name="{icon}"]')
        page.wait_for_function("p => document.getElementById('page-id').textContent === p", arg=child)
        assert page.url.endswith(f"#/env/base/{child}")
        here = child
    parent = next(p for p in s.pages if here in s.children(p))
    page.click(f'{main_screen} .hotspot[data-name="back"]')
    page.wait_for_function("p => document.getElementById('page-id').textContent === p", arg=parent)
    page.click(f'{main_screen} .hotspot[data-name="home"]')
    page.wait_for_function("document.getElementById('page-id').textContent === 'page_0'")
    page.click('#graph .node[data-page="page_2"]')  # the page graph navigates too
    page.wait_for_function("document.getElementById('page-id').textContent === 'page_2'")
    figures = page.locator("#variants figure")  # the same page in every environment, side by side
    assert figures.count() == 1 + len(variants)
    noise = page.locator('#variants figure[data-env="noise"] .hotspot.dead')
    assert noise.count() == sum(1 for e in variants["noise"].structure.pages["page_2"].elements
                                if e.name not in {t.action for t in variants["noise"].structure.pages["page_2"].transitions})
    noise.first.click()
    assert "leads nowhere" in page.inner_text("#nav-message")
    assert page.inner_text("#page-id") == "page_2"
    page.screenshot(path=str(shots / "environment.png"), full_page=True)
    assert page.errors == []
    page.close()


def episodes_of(log: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in read_jsonl(log):
        out[row["episode"]].append(row)
    return out


def failed(rows: list[dict[str, Any]]) -> bool:
    start, target = rows[0]["task"].split(":")[1].split("->")
    return summarize(start, target, rows).outcome != SUCCESS


@pytest.mark.parametrize("model, kind, mark", [("home-then-complete", "miss", "miss"), ("random", "loop", "loop")])
def test_failed_episode_shows_the_logged_steps(browser, site, small_env, small_logs, shots, model, kind, mark):
    logged = episodes_of(small_logs[model])
    page = open_site(browser, site, "#/episodes")
    page.select_option("#f-model", model)
    page.select_option("#f-success", "strict-fail")
    page.select_option("#f-kind", kind)
    shown = int(page.inner_text("#result-count").split()[0])
    expected = [k for k, rows in logged.items() if failed(rows) and _has(rows, mark)]
    assert shown == len(expected) > 0
    page.click("#results tr[data-episode] a")
    page.wait_for_selector("#episode-body[data-key] #steps")
    key = page.get_attribute("#episode-body", "data-key")
    rows = logged[key]
    assert failed(rows)
    cards = page.locator("#steps .step[data-step]")
    assert cards.count() == len(rows)
    for k, row in enumerate(rows):
        card = cards.nth(k)
        assert card.locator("pre.raw-output").inner_text() == row["output"]
        assert card.locator(".step-error").inner_text() == (row["error"] or "—")
        assert card.locator(".new-page").inner_text() == row["new_page"]
        marker = card.locator(".click-marker")
        if row["click"] is None:
            assert marker.count() == 0
            continue
        assert [int(marker.get_attribute("data-x")), int(marker.get_attribute("data-y"))] == row["click"]
        shot, dot = card.locator(".screen").bounding_box(), marker.bounding_box()
        cx, cy = dot["x"] + dot["width"] / 2, dot["y"] + dot["height"] / 2  # drawn where the model clicked
        assert cx - shot["x"] == pytest.approx(row["click"][0] / 1000 * shot["width"], abs=2)
        assert cy - shot["y"] == pytest.approx(row["click"][1] / 1000 * shot["height"], abs=2)
    start, target = rows[0]["task"].split(":")[1].split("->")
    optimal = Navigator(small_env[0].structure).shortest_path(start, target)
    assert page.locator("#optimal-path li").count() == len(optimal) + 1  # the clicks, then complete
    assert page.locator("#agent-path li").count() == len(rows)
    page.screenshot(path=str(shots / f"episode-{model}.png"), full_page=True)
    assert page.errors == []
    page.close()


def _has(rows: list[dict[str, Any]], mark: str) -> bool:
    start = rows[0]["task"].split(":")[1].split("->")[0]
    s = summarize(start, "", rows)
    return s.misses > 0 if mark == "miss" else s.loop


def test_failure_summary_page(browser, site, small_env, small_logs):
    page = open_site(browser, site, "#/failures/random")
    episodes = episodes_of(small_logs["random"])
    ends = [r[0]["task"].split(":")[1].split("->") for r in episodes.values()]
    outcomes = [summarize(start, target, r).outcome for (start, target), r in zip(ends, episodes.values())]
    row = page.locator('#outcomes tr[data-kind="premature_complete"] td').nth(1)
    assert int(row.inner_text()) == outcomes.count("premature_complete")
    assert page.locator("#models-overview tr").count() == 1 + len(small_logs)
    nav = Navigator(small_env[0].structure)
    lengths = {nav.distances_to(target)[start] for start, target in ends}
    assert page.locator("#by-length tr").count() == 1 + len(lengths)  # header + one row per path length
    assert page.errors == []
    page.close()


# --- a 10,810-episode log ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Env-Base (231 pages, stand-in screenshots) and 2,162 tasks x 5 attempts of the random policy,
    written by the harness."""
    from evalkit import navigator, tasks, write_env_folder

    from gelab.env.envdir import load_environment
    from gelab.eval.interactive import run_episodes
    from gelab.eval.policies import reference_policy
    from gelab.eval.records import AppendLog
    from gelab.report.viewer.logs import read_episodes
    from gelab.report.viewer.site import build_site

    root = tmp_path_factory.mktemp("viewer-big")
    env_dir = write_env_folder(root / "env", images=True)
    nav = navigator()
    log = root / "trajectories.jsonl"
    with AppendLog(log) as out:
        run_episodes(nav, tasks(), reference_policy("random", nav, 0), attempts=5, max_steps=12,
                     image_of=lambda page: page, log=out)
    build_site(root / "site", load_environment(env_dir), {"random": read_episodes("random", log)}, progress=False)
    return root / "site"


def test_large_log_loads_and_filters_within_a_second(browser, big_site, shots):
    t0 = time.perf_counter()
    page = open_site(browser, big_site, "#/episodes")
    load_s = time.perf_counter() - t0
    assert page.inner_text("#result-count").startswith(f"{BIG_EPISODES} of {BIG_EPISODES} episodes")
    timings: dict[str, Any] = {"episodes": BIG_EPISODES, "load_s": round(load_s, 3), "filters": []}
    for select, value in [("#f-length", "5"), ("#f-kind", "loop"), ("#f-success", "lenient-fail"),
                          ("#f-start", "page_5"), ("#f-kind", ""), ("#f-length", "")]:
        runs = page.evaluate("window.gelabFilterRuns")
        t0 = time.perf_counter()
        page.select_option(select, value)
        page.wait_for_function("n => window.gelabFilterRuns > n", arg=runs)
        wall = time.perf_counter() - t0
        timings["filters"].append({"filter": f"{select}={value}", "wall_s": round(wall, 3),
                                   "in_page_ms": round(page.evaluate("window.gelabLastFilterMs"), 1),
                                   "result": page.inner_text("#result-count")})
        assert wall < 1.0, timings["filters"][-1]
    last = page.locator("#results tr[data-episode]").last  # an episode of a later chunk, loaded on demand
    index = int(last.get_attribute("data-episode"))
    last.locator("a").click()
    page.wait_for_selector("#episode-body[data-key] #steps")
    steps = page.evaluate(f"window.GELAB_INDEX.episodes.steps[{index}]")
    assert page.locator("#steps .step[data-step]").count() == steps
    page.screenshot(path=str(shots / "large-log-episode.png"))
    (shots / "timings.json").write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
    print(f"\n10,810-episode site: load {load_s:.2f} s; filters "
          + ", ".join(f"{f['filter']} {f['wall_s']:.3f} s" for f in timings["filters"]) + f"; artefacts in {shots}")
    assert page.errors == []
    page.close()
