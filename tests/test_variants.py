"""OOD variants: same graph, one factor changed (SPEC §1)."""

from __future__ import annotations

import numpy as np

from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator


def _graph(env: Environment, rename: dict[str, str] | None = None) -> dict:
    rename = rename or {}
    return {p.id: sorted((rename.get(t.action, t.action), t.target) for t in p.transitions)
            for p in env.structure.pages.values()}


def test_image_variant_keeps_names_and_positions_with_disjoint_art(base_env: Environment,
                                                                    variant_envs: dict[str, Environment]) -> None:
    img = variant_envs["image"]
    assert img.structure.to_json()["pages"] == base_env.structure.to_json()["pages"]
    assert set(img.art) == set(base_env.art)
    assert set(img.art.values()).isdisjoint(base_env.art.values())
    from PIL import Image

    with Image.open(img.model_image_path("page_0")) as a, Image.open(base_env.model_image_path("page_0")) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_name_variant_renames_and_keeps_art(base_env: Environment, variant_envs: dict[str, Environment]) -> None:
    named = variant_envs["name"]
    new_names = set(named.structure.content_names())
    assert len(new_names) == 230 and new_names.isdisjoint(base_env.structure.content_names())
    assert sorted(named.art.values()) == sorted(base_env.art.values())
    mapping = {}
    for p in base_env.structure.pages.values():
        q = named.structure.pages[p.id]
        for a, b in zip(p.elements, q.elements):
            assert a.bbox == b.bbox
            mapping[a.name] = b.name
            if a.type == "normal":
                assert base_env.art[a.name] == named.art[b.name]
    assert _graph(base_env, mapping) == _graph(named)


def test_position_variant_moves_icons_inside_without_overlap(base_env: Environment,
                                                             variant_envs: dict[str, Environment]) -> None:
    pos = variant_envs["position"]
    assert _graph(pos) == _graph(base_env)
    moved = 0
    for p in pos.structure.pages.values():
        boxes = [e.bbox for e in p.elements]
        for i, a in enumerate(boxes):
            assert 0 <= a[0] and a[2] <= 1179 and 0 <= a[1] and a[3] <= 2556
            for b in boxes[i + 1:]:
                assert not (a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3])
        moved += sum(e.bbox != base_env.structure.pages[p.id].element(e.name).bbox for e in p.elements)
    assert moved >= 200


def test_noise_variant_adds_distractors_that_lead_nowhere(base_env: Environment,
                                                          variant_envs: dict[str, Environment]) -> None:
    noisy = variant_envs["noise"]
    assert _graph(noisy) == _graph(base_env)
    nav = Navigator(noisy.structure)
    for p in noisy.structure.pages.values():
        extra = [e for e in p.elements if base_env.structure.pages[p.id].element(e.name) is None]
        assert len(extra) == 2
        for e in extra:
            assert e.name not in base_env.art
            hot = nav.hit(p.id, *nav.bbox_norm(p.id, e.name)[:2])
            assert hot is not None and hot.name == e.name and hot.target is None
