"""Datasets (SPEC §4): exact counts, no test-subtree leakage, labels consistent with the format."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from gelab import format as fmt
from gelab.data.datasets import Source, build_all
from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator
from gelab.io import read_jsonl
from gelab.params import DataParams
from gelab.tasks.universe import task_universe

EXPECTED = {"sft.jsonl": 30888, "st_rl.jsonl": 12439, "mt_rl.jsonl": 2162, "static_id.jsonl": 12439,
            "static_ood.jsonl": 12439, "static_ood_image.jsonl": 12439, "static_ood_name.jsonl": 12439,
            "static_ood_position.jsonl": 12439, "static_ood_noise.jsonl": 12439, "tasks_test.jsonl": 2162}


@pytest.fixture(scope="module")
def files(data_dir: Path) -> dict[str, list[dict]]:
    return {name: read_jsonl(data_dir / name) for name in EXPECTED}


def test_exact_counts(files: dict[str, list[dict]]) -> None:
    assert {name: len(rows) for name, rows in files.items()} == EXPECTED


def test_sft_composition(files: dict[str, list[dict]]) -> None:
    sft = files["sft.jsonl"]
    kinds = Counter(r["kind"] for r in sft)
    assert kinds == {"navigation": 2 * 12439 + 5 * 274, "captioning": 2320, "grounding": 2320}
    edge = Counter(r["subtree"] for r in sft if r["kind"] == "navigation" and r["path_length"] == 1)
    assert edge == {"page_1": 274 * 2, "page_2": 274 * 2, "page_3": 274, "page_4": 274, "page_5": 274}


def test_test_subtree_path_data_never_in_training(files: dict[str, list[dict]], base_env: Environment) -> None:
    test_tasks = {(t.start, t.target) for t in task_universe(base_env.structure, "page_5")}
    test_pages = set(base_env.structure.subtree("page_5"))
    for name in ("sft.jsonl", "st_rl.jsonl", "mt_rl.jsonl"):
        for row in files[name]:
            if row.get("kind", "navigation") != "navigation":
                continue
            if (row["start"], row["target"]) in test_tasks or {row["start"], row["target"]} & test_pages:
                assert row["path_length"] == 1, f"{name}: {row['id']} is test-subtree path data"


def test_icon_data_balanced_over_names(files: dict[str, list[dict]], base_env: Environment) -> None:
    for kind in ("captioning", "grounding"):
        per_name = Counter(r["gt_name"] for r in files["sft.jsonl"] if r["kind"] == kind)
        assert len(per_name) == 232 and set(per_name.values()) == {10}
        assert {"back", "home"} <= set(per_name)


def test_labels_follow_the_shortest_paths(files: dict[str, list[dict]], base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    for row in files["static_ood.jsonl"]:
        answer = row["messages"][-1]["content"]
        assert answer == row["solution"]
        assert fmt.is_well_formed(answer)
        action = fmt.parse_action(answer)
        parsed = fmt.parse_instruction(row["messages"][1]["content"])
        assert parsed is not None and parsed[:2] == (row["start"], row["target"])
        assert len(parsed[2]) == row["step"]
        if row["action"] == "complete":
            assert isinstance(action, fmt.Complete) and row["page"] == row["target"]
        else:
            assert isinstance(action, fmt.Click) and action.name == row["gt_name"] and action.page == row["page"]
            assert fmt.in_box(action.x, action.y, row["bbox_norm"])
            assert row["gt_name"] == nav.label_action(row["page"], row["target"])
            hot = nav.hit(row["page"], action.x, action.y)
            assert hot is not None and hot.name == row["gt_name"]


def test_history_matches_the_pages_walked(files: dict[str, list[dict]]) -> None:
    rows = [r for r in files["static_id.jsonl"] if r["path_length"] == 7]
    by_task: dict[tuple, list[dict]] = {}
    for r in rows:
        by_task.setdefault((r["start"], r["target"]), []).append(r)
    for steps in list(by_task.values())[:50]:
        steps.sort(key=lambda r: r["step"])
        final_history = fmt.parse_instruction(steps[-1]["messages"][1]["content"])[2]  # type: ignore[index]
        assert [(h.name, h.page) for h in final_history] == [(r["gt_name"], r["page"]) for r in steps[:-1]]


def test_rl_rows_carry_reward_columns_and_no_answer(files: dict[str, list[dict]]) -> None:
    for row in files["st_rl.jsonl"][:500]:
        assert [m["role"] for m in row["messages"]] == ["system", "user"]
        assert row["solution"] and row["action"] in ("click", "complete")
        assert (row["bbox_norm"] is None) == (row["action"] == "complete")
    for row in files["mt_rl.jsonl"][:100]:
        assert row["messages"][1]["content"].endswith("History: Null")
        assert row["subtree"] == "page_4"


def test_every_image_exists_and_shows_the_row_page(files: dict[str, list[dict]], data_dir: Path) -> None:
    for name, rows in files.items():
        for row in rows[:: max(1, len(rows) // 200)]:
            for image in row.get("images", []):
                assert Path(image).is_file(), f"{name}: {image}"
                if "page" in row:
                    assert Path(image).name == f"{row['page']}.png"


def test_variant_files_use_variant_images(files: dict[str, list[dict]], variant_envs: dict[str, Environment]) -> None:
    for kind, env in variant_envs.items():
        row = files[f"static_ood_{kind}.jsonl"][0]
        assert Path(row["images"][0]).parent.parent == env.root
    renamed = files["static_ood_name.jsonl"]
    base_names = {r["gt_name"] for r in files["static_ood.jsonl"] if r["gt_name"] not in (None, "back", "home")}
    assert base_names.isdisjoint({r["gt_name"] for r in renamed})


def test_build_is_deterministic(base_env: Environment, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    params = DataParams(ood_variants=[])
    build_all(params, Source.of(base_env), {}, out, progress=False)
    for name in ("sft.jsonl", "st_rl.jsonl", "static_ood.jsonl"):
        assert hashlib.sha256((out / name).read_bytes()).digest() == hashlib.sha256((data_dir / name).read_bytes()).digest()


def test_bad_split_is_rejected(base_env: Environment, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="page_9"):
        build_all(DataParams(test_subtree="page_9"), Source.of(base_env), {}, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="also a training subtree"):
        build_all(DataParams(test_subtree="page_1"), Source.of(base_env), {}, tmp_path / "y", progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_sft_total_follows_the_documented_formula(base_env: Environment, tmp_path: Path) -> None:
    params = DataParams(ood_variants=[], sft_path_copies=2, captioning_per_icon=3, grounding_per_icon=4)
    counts = build_all(params, Source.of(base_env), {}, tmp_path / "d", progress=False)
    assert counts["sft.jsonl"] == 2 * 2 * 12439 + 5 * 274 + 232 * (3 + 4)
    rows = read_jsonl(tmp_path / "d" / "sft.jsonl")
    copies: dict[str, set[str]] = {}
    for r in rows:
        if r["kind"] == "navigation" and r["subtree"] == "page_2" and r["path_length"] > 1 and r["action"] == "click":
            copies.setdefault(r["id"], set()).add(r["solution"])
    # every click sample appears twice, almost always with a fresh random point
    assert sum(len(v) == 2 for v in copies.values()) > 0.9 * len(copies)
