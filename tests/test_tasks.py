"""Task universe and shortest paths (SPEC §2): exact counts, the tie rule, the tasks CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator
from gelab.tasks.universe import subtree_roots, task_pages, task_universe

PATH_COUNTS = {1: 137, 2: 147, 3: 222, 4: 324, 5: 492, 6: 456, 7: 384}  # paper Table 6


def test_every_subtree_has_the_paper_task_universe(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    for root in subtree_roots(base_env.structure):
        tasks = task_universe(base_env.structure, root, nav)
        assert len(tasks) == 47 * 46 == 2162
        assert Counter(t.path_length for t in tasks) == PATH_COUNTS
        assert sum(t.path_length + 1 for t in tasks) == 12439
        assert sum(2 for t in tasks if t.path_length == 1) == 274


def test_longest_shortest_path_is_seven(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    assert max(max(nav.distances_to(t).values()) for t in base_env.structure.pages) == 7


def test_ties_are_back_or_home_and_labels_prefer_back(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    for root in subtree_roots(base_env.structure):
        pages = task_pages(base_env.structure, root)
        ties = [(p, t) for p in pages for t in pages if p != t and len(nav.optimal_actions(p, t)) > 1]
        assert len(ties) == 282
        for p, t in ties:
            assert set(nav.optimal_actions(p, t)) == {"back", "home"}
            assert nav.label_action(p, t) == "back"


def test_shortest_path_follows_edges(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    path = nav.shortest_path("page_230", "page_5")
    page = "page_230"
    for at, action in path:
        assert at == page
        page = nav.edges[page][action]
    assert page == "page_5" and len(path) == nav.distances_to("page_5")["page_230"]


def test_tasks_cli(base_env: Environment, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "tasks.jsonl"
    run_cli("tasks", "--env", base_env.root, "--subtree", "page_5", "--out", out, check=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2162
    assert {"start", "target", "path_length"} <= set(rows[0])
    assert Counter(r["path_length"] for r in rows) == PATH_COUNTS
    pages = set(base_env.structure.subtree("page_5")) | {"page_0"}
    assert all(r["start"] in pages and r["target"] in pages for r in rows)


def test_tasks_cli_rejects_a_non_root(base_env: Environment, tmp_path: Path, run_cli) -> None:
    proc = run_cli("tasks", "--env", base_env.root, "--subtree", "page_17", "--out", tmp_path / "t.jsonl")
    assert proc.returncode == 2 and "page_17" in proc.stderr and not (tmp_path / "t.jsonl").exists()
