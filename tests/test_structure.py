"""The released file format: validation errors that name file/page/field, and a lossless round trip."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import REPO

from gelab.env.envdir import Environment, load_environment
from gelab.env.structure import EnvFileError, load_structure, parse_structure

RELEASED = REPO.parent / "shared" / "reference" / "ui_structure.json"


def _raw(env: Environment) -> dict[str, Any]:
    return json.loads((env.root / "ui_structure.json").read_text())


def _unknown_target(d: dict) -> None:
    d["pages"]["page_3"]["transitions"][0]["target_page"] = "page_999"


def _box_outside(d: dict) -> None:
    name = d["pages"]["page_4"]["transitions"][0]["action"]
    d["pages"]["page_4"]["layout"][name]["bbox"] = [1000, 2400, 1200, 2600]
    d["pages"]["page_4"]["transitions"][0]["icon_bbox"] = [1000, 2400, 1200, 2600]


def _unreachable(d: dict) -> None:
    page = d["pages"]["page_1"]
    dropped = page["transitions"].pop(0)
    del page["layout"][dropped["action"]]


def _overlap(d: dict) -> None:
    page = d["pages"]["page_0"]
    first, second = page["transitions"][0]["action"], page["transitions"][1]["action"]
    box = page["layout"][first]["bbox"]
    moved = [box[0] + 50, box[1] + 50, box[2] + 50, box[3] + 50]
    page["layout"][second]["bbox"] = moved
    page["transitions"][1]["icon_bbox"] = moved


def _name_with_spaces(d: dict) -> None:
    page = d["pages"]["page_2"]
    old = page["transitions"][0]["action"]
    page["layout"]["Flowers and plants 1"] = page["layout"].pop(old)
    page["transitions"][0]["action"] = "Flowers and plants 1"


def _missing_field(d: dict) -> None:
    del d["pages"]["page_7"]["depth"]


def _image(name: str, page: str = "page_1") -> Callable[[dict], None]:
    def mutate(d: dict) -> None:
        d["pages"][page]["image"] = name
    return mutate


def _first_content(d: dict, page: str) -> dict:
    return next(t for t in d["pages"][page]["transitions"] if t["action"] not in ("back", "home"))


def _content_as_system(d: dict) -> None:
    d["pages"]["page_3"]["layout"][_first_content(d, "page_3")["action"]]["type"] = "system"


def _back_elsewhere(d: dict) -> None:
    next(t for t in d["pages"]["page_8"]["transitions"] if t["action"] == "back")["target_page"] = "page_4"


def _wrong_depth(d: dict) -> None:
    d["pages"]["page_7"]["depth"] = 5


def _two_parents(d: dict) -> None:
    _first_content(d, "page_1")["target_page"] = _first_content(d, "page_2")["target_page"]


def _page_id(d: dict) -> None:
    d["pages"]["home page"] = d["pages"].pop("page_230")


def _flat_box(d: dict) -> None:
    name = _first_content(d, "page_4")["action"]
    box = d["pages"]["page_4"]["layout"][name]["bbox"]
    box[2] = box[0]
    _first_content(d, "page_4")["icon_bbox"] = box


BAD: list[tuple[str, Callable[[dict], None], list[str]]] = [
    # every field that names a file is a plain file name inside the folder, and each page has its own
    ("image outside the folder", _image("../evil.png"), ["page_1", ".image", "'../evil.png'", "plain file name"]),
    ("image at an absolute path", _image("/tmp/evil.png"), ["page_1", ".image", "'/tmp/evil.png'"]),
    ("image in a sub-folder", _image("sub/page_1.png"), ["page_1", ".image", "no folders"]),
    ("image not a png", _image("page_1.exe"), ["page_1", ".image", ".png"]),
    ("hidden image", _image(".png"), ["page_1", ".image"]),
    ("two pages, one image", _image("page_1.png", "page_2"), ["page_2.image", "already the image of page_1"]),
    ("one image in two letter cases", _image("PAGE_1.png", "page_2"), ["page_2.image", "already the image of page_1"]),
    ("page id not page_N", _page_id, ["pages: page id 'home page'", "page_<N>"]),
    # a file that would load into a silently different environment
    ("content icon typed system", _content_as_system, ["page_3.layout", ".type", "'system'"]),
    ("back leading elsewhere", _back_elsewhere, ["page_8.transitions", "back must lead to page_1, got page_4"]),
    ("depth disagreeing with the tree", _wrong_depth, ["page_7.depth", "2 clicks below page_0"]),
    ("a page with two parents", _two_parents, ["page_2.transitions", "target_page", "child of one page only"]),
    ("zero-width box", _flat_box, ["page_4.layout", "bbox", "x1 < x2"]),
    ("unknown target page", _unknown_target, ["page_3", "target_page", "page_999"]),
    ("box outside the canvas", _box_outside, ["page_4", "bbox", "outside"]),
    ("page unreachable from the root", _unreachable, ["unreachable"]),
    ("overlapping boxes", _overlap, ["page_0", "overlap"]),
    ("icon name with spaces", _name_with_spaces, ["page_2", "Flowers and plants 1"]),
    ("missing field", _missing_field, ["page_7", "depth"]),
]


@pytest.mark.parametrize("label,mutate,words", BAD, ids=[b[0] for b in BAD])
def test_bad_files_name_file_page_and_field(base_env: Environment, tmp_path: Path, label: str,
                                            mutate: Callable[[dict], None], words: list[str]) -> None:
    raw = copy.deepcopy(_raw(base_env))
    mutate(raw)
    path = tmp_path / "bad_ui_structure.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(EnvFileError) as err:
        load_structure(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message, f"{label}: {word!r} missing from {message!r}"


def test_duplicate_icon_name_on_a_page(base_env: Environment, tmp_path: Path) -> None:
    text = (base_env.root / "ui_structure.json").read_text()
    raw = _raw(base_env)
    name = raw["pages"]["page_0"]["transitions"][0]["action"]
    layout_entry = f'"{name}": {{\n          "bbox"'
    assert layout_entry in text
    text = text.replace('"layout": {', '"layout": {\n' + f'"{name}": {{"bbox": [0, 0, 10, 10], "type": "normal"}},', 1)
    path = tmp_path / "dup.json"
    path.write_text(text)
    with pytest.raises(EnvFileError, match=f"duplicate key '{name}'"):
        load_structure(path)


def test_cli_import_of_bad_file_writes_nothing(base_env: Environment, tmp_path: Path, run_cli) -> None:
    raw = _raw(base_env)
    _unknown_target(raw)
    bad = tmp_path / "ui_structure.json"
    bad.write_text(json.dumps(raw))
    out = tmp_path / "imported"
    proc = run_cli("env", "import", bad, "--out", out)
    assert proc.returncode == 2
    assert "page_999" in proc.stderr and str(bad) in proc.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".imported")]


def test_cli_import_never_writes_outside_its_folder(base_env: Environment, tmp_path: Path, run_cli) -> None:
    """Before: `../evil.png` was written beside the output, an absolute path wherever it pointed, and two pages
    naming one image overwrote each other; all exited 0."""
    outside = tmp_path / "abs.png"
    for mutate, words in [(_image("../evil.png"), ["page_1.image", "../evil.png"]),
                          (_image(str(outside)), ["page_1.image", str(outside)]),
                          (_image("page_1.png", "page_2"), ["page_2.image", "page_1"])]:
        raw = _raw(base_env)
        mutate(raw)
        bad = tmp_path / "ui_structure.json"
        bad.write_text(json.dumps(raw))
        before = sorted(p.name for p in tmp_path.iterdir())
        proc = run_cli("env", "import", bad, "--out", tmp_path / "imported")
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
        assert all(w in proc.stderr for w in [str(bad), *words]), proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written: no folder, no stray file


def test_export_import_round_trip_is_lossless(base_env: Environment, tmp_path: Path, run_cli) -> None:
    exported = tmp_path / "exported.json"
    run_cli("env", "export", base_env.root, "--out", exported, check=True)
    assert exported.read_bytes() == (base_env.root / "ui_structure.json").read_bytes()
    s = load_structure(exported)
    assert s.dumps().encode() == exported.read_bytes()
    out = tmp_path / "imported"
    run_cli("env", "import", exported, "--out", out, "--workers", 2, check=True)
    imported = load_environment(out)
    assert json.loads((out / "ui_structure.json").read_text()) == json.loads(exported.read_text())
    assert imported.art == base_env.art  # library names keep their own art


def test_released_layout_with_foreign_names_round_trips(base_env: Environment) -> None:
    """Names outside the icon library (as in the release) are kept exactly; extra keys survive."""
    raw = _raw(base_env)
    raw["metadata"] = {"total_pages": 231, "tree_depth": 7, "nodes_per_level": [5, 3, 2, 2, 1, 1],
                       "config_file": "config.json"}
    page = raw["pages"]["page_1"]
    old = page["transitions"][0]["action"]
    page["layout"]["Hotel_and_restaurant_category_29"] = page["layout"].pop(old)
    page["transitions"][0]["action"] = "Hotel_and_restaurant_category_29"
    s = parse_structure(raw)
    assert s.canvas == (1179, 2556)
    assert s.to_json() == raw


@pytest.mark.skipif(not RELEASED.exists(), reason="the released reference file lies beside the project only")
def test_released_environment_round_trips() -> None:
    raw = json.loads(RELEASED.read_text())
    assert parse_structure(raw).to_json() == raw
