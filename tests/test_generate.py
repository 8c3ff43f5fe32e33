"""Env-Base generation (SPEC §1): the tree, the system buttons, the grid, determinism."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import REPO

from gelab.env import icons
from gelab.env.envdir import Environment
from gelab.env.generate import generate
from gelab.io import tree_digest
from gelab.params import EnvParams
from gelab.tasks.universe import subtree_roots


def test_env_base_tree(base_env: Environment) -> None:
    s = base_env.structure
    assert list(s.pages) == [f"page_{i}" for i in range(231)]
    assert Counter(p.depth for p in s.pages.values()) == {0: 1, 1: 5, 2: 15, 3: 30, 4: 60, 5: 60, 6: 60}
    assert sum(len(p.transitions) for p in s.pages.values()) == 685
    assert s.metadata["nodes_per_level"] == [5, 3, 2, 2, 1, 1] and s.metadata["total_pages"] == 231


def test_breadth_first_numbering(base_env: Environment) -> None:
    s = base_env.structure
    assert s.children("page_0") == ["page_1", "page_2", "page_3", "page_4", "page_5"]
    assert s.children("page_1") == ["page_6", "page_7", "page_8"]
    assert s.children("page_2") == ["page_9", "page_10", "page_11"]


def test_system_buttons(base_env: Environment) -> None:
    for p in base_env.structure.pages.values():
        actions = {t.action: t.target for t in p.transitions}
        assert ("back" in actions) == (p.depth >= 1), p.id
        assert ("home" in actions) == (p.depth >= 2), p.id
        if "home" in actions:
            assert actions["home"] == "page_0"
            assert p.element("home").bbox == (919, 60, 1119, 260)
        if "back" in actions:
            assert p.element("back").bbox == (60, 60, 260, 260)
            assert p.id in base_env.structure.children(actions["back"])


def test_content_icons_in_distinct_grid_slots(base_env: Environment) -> None:
    xs, ys = {244, 474, 704, 934}, {568, 798, 1028, 1258, 1488, 1718, 1948, 2178}
    names = []
    for p in base_env.structure.pages.values():
        content = [e for e in p.elements if e.type == "normal"]
        assert len({e.bbox for e in content}) == len(content)
        for e in content:
            x1, y1, x2, y2 = e.bbox
            assert x1 in xs and y1 in ys and (x2 - x1, y2 - y1) == (200, 200)
            assert " " not in e.name
            names.append(e.name)
    assert len(names) == len(set(names)) == 230


def test_subtrees_found_by_walking_interleave(base_env: Environment) -> None:
    s = base_env.structure
    roots = subtree_roots(s)
    trees = [s.subtree(r) for r in roots]
    assert [len(t) for t in trees] == [46] * 5
    assert set().union(*map(set, trees)) == set(s.pages) - {"page_0"}
    ids = sorted(int(p.split("_")[1]) for p in trees[0])
    assert ids[-1] - ids[0] + 1 > 46  # ids of one subtree are not a contiguous range


def test_icon_library_size_and_names() -> None:
    lib = icons.load_library()
    assert len(lib) >= 230 and len({i.category for i in lib}) >= 20
    assert all(" " not in i.name and i.name.rsplit("_", 1)[1].isdigit() for i in lib)
    assert len({i.name for i in lib}) == len(lib)


def test_generate_uses_many_categories() -> None:
    structure, _ = generate(EnvParams())
    categories = {n.rsplit("_", 1)[0] for n in structure.content_names()}
    assert len(categories) >= 20


def test_other_trees_and_seeds() -> None:
    small, _ = generate(EnvParams(branching=[2, 2], seed=5))
    assert len(small.pages) == 7 and sum(len(p.transitions) for p in small.pages.values()) == 6 + 6 + 4
    a, _ = generate(EnvParams(seed=1))
    b, _ = generate(EnvParams(seed=2))
    assert a.content_names() != b.content_names()


def test_generation_is_byte_identical_across_hash_seeds(tmp_path: Path, base_env: Environment) -> None:
    """Same parameters and seed => the same bytes, whatever PYTHONHASHSEED is."""
    digests = []
    for hash_seed, workers in (("1", "1"), ("12345", "2")):
        out = tmp_path / f"env{hash_seed}"
        params = tmp_path / f"params{hash_seed}.yaml"
        params.write_text(f"env:\n  render_workers: {workers}\n")
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-m", "gelab.cli", "env", "generate", "--params", str(params), "--out", str(out)],
                       check=True, env=env, cwd=REPO, capture_output=True)
        digests.append(tree_digest(out))
    assert digests[0] == digests[1] == tree_digest(base_env.root)
