"""Fuzz: random structural mutations of environment files and parameter files.

Whatever the mutation, gelab either refuses the file with one line naming it (``InputError``, exit 2)
or accepts exactly what the file says — never a traceback, never a write outside the output folder,
never a silently different environment — and a parameter file it accepts never yields an
environment that fails its own checks.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gelab.env.generate import generate
from gelab.env.navigation import Navigator
from gelab.env.structure import IMAGE_NAME, ROOT_PAGE, EnvFileError, parse_structure
from gelab.errors import InputError
from gelab.params import (
    EnvParams,
    EvalParams,
    ParamsError,
    VariantParams,
    as_dict,
    load_section,
)

REPO = Path(__file__).resolve().parents[1]
OUTSIDE = Path(tempfile.gettempdir()) / "gelab-fuzz-outside.png"  # an absolute path a file may name
SMALL = generate(EnvParams(branching=[2, 2, 1]))[0].to_json()  # 11 pages

TRICKY = ["../x.png", str(OUTSIDE), "page_1.png", "PAGE_0.png", "a/b.png", ".png", "", "page_9", "page_0", "back",
          "home", "normal", "system", "Flowers_1", "x" * 300, "page_1.png\x00", "C:\\x.png"]
leaves = (st.none() | st.booleans() | st.integers(-3, 1200) | st.integers() | st.floats()
          | st.text(max_size=8) | st.sampled_from(TRICKY))
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=6) | st.sampled_from(TRICKY), inner, max_size=3), max_leaves=8)


def _mutate(data: st.DataObject, raw: Any) -> None:
    """One structural change somewhere in ``raw``: set, delete, rename or duplicate an entry."""
    node = raw
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            return
        key = keys[data.draw(st.integers(0, len(keys) - 1), label="key")]
        child = node[key]
        if isinstance(child, (dict, list)) and child and data.draw(st.booleans(), label="descend"):
            node = child
            continue
        op = data.draw(st.sampled_from(["set", "delete", "rename", "copy"]), label="op")
        if op == "set":
            node[key] = data.draw(values, label="value")
        elif op == "delete":
            del node[key]
        elif isinstance(node, dict):
            new = data.draw(st.text(max_size=8) | st.sampled_from(TRICKY), label="new key")
            node[new] = node.pop(key) if op == "rename" else copy.deepcopy(child)
        else:
            node.append(copy.deepcopy(child))
        return


def _mutated(data: st.DataObject, base: Any) -> Any:
    raw = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        _mutate(data, raw)
    return raw


def _check_accepted(raw: Any) -> None:
    """A file that loads is loaded exactly, and is a well-formed environment."""
    s = parse_structure(raw, source="fuzz.json")
    assert s.to_json() == raw  # nothing dropped or coerced: what the file says is what loaded
    images = [p.image for p in s.pages.values()]
    assert all(IMAGE_NAME.fullmatch(i) for i in images) and len({i.lower() for i in images}) == len(images)
    nav = Navigator(s)
    for page in s.pages.values():
        assert len(nav.shortest_path(ROOT_PAGE, page.id)) == page.depth if page.id != ROOT_PAGE else True
        for e in page.elements:
            assert 0 <= e.bbox[0] < e.bbox[2] <= s.canvas[0] and 0 <= e.bbox[1] < e.bbox[3] <= s.canvas[1]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_environment_files_are_refused_in_one_line_or_loaded_exactly(data: st.DataObject) -> None:
    raw = _mutated(data, SMALL)
    try:
        _check_accepted(raw)
    except EnvFileError as exc:
        assert str(exc).startswith("fuzz.json") and "\n" not in str(exc)


def _tiny_png(page_id: str) -> tuple[str, bytes, bytes]:
    png = bytes.fromhex("89504e470d0a1a0a")  # enough for a file on disk; nothing decodes it here
    return page_id, png, png


def _run(argv: list[str]) -> tuple[int, str]:
    from gelab.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["json", "bytes"]))
def test_env_import_of_a_mutated_file_never_writes_outside_its_folder(data: st.DataObject, kind: str) -> None:
    """`gelab env import` end to end (page drawing stubbed): exit 0 with exactly the file's environment, or
    exit 2 with one line; in both cases nothing appears outside the output folder."""
    from gelab.env.envdir import IMAGES, load_environment

    if kind == "json":
        text = json.dumps(_mutated(data, SMALL)).encode()
    else:  # raw bytes: cut short, bytes that are not UTF-8, a key given twice
        text = json.dumps(SMALL).encode()
        cut = data.draw(st.integers(0, len(text)), label="cut")
        text = data.draw(st.sampled_from([text[:cut], text[:cut] + b"\xff\xfe" + text[cut:],
                                          text.replace(b'"depth"', b'"depth": 1, "depth"', 1)]), label="bytes")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "in.json"
        src.write_bytes(text)
        out = root / "out" / "env"
        with mock.patch("gelab.env.envdir._render_one", _tiny_png):
            code, err = _run(["env", "import", str(src), "--out", str(out), "--workers", "1"])
        assert "Traceback" not in err and not OUTSIDE.exists()
        written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        if code == 2:
            assert err.count("\n") == 1 and str(src) in err, err
            assert written == ["in.json"]
            return
        assert code == 0, err
        assert all(w == "in.json" or w.startswith("out/env/") for w in written)
        env = load_environment(out)
        assert env.structure.to_json() == json.loads(text)
        assert sorted(p.name for p in (out / IMAGES).iterdir()) == sorted(p.image for p in env.structure.pages.values())


PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SECTIONS = {"env": EnvParams, "variants": VariantParams, "eval": EvalParams}


def _same(loaded: Any, given_: Any) -> bool:
    if isinstance(given_, dict):
        return isinstance(loaded, dict) and all(_same(loaded.get(k), v) for k, v in given_.items())
    return loaded == given_


@pytest.fixture(scope="module")
def scoring_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from evalkit import prediction_row, static_rows, tasks

    root = tmp_path_factory.mktemp("fuzz_params")
    rows = static_rows(task_list=tasks()[:2])  # whole tasks
    (root / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "p.jsonl").write_text("".join(json.dumps(prediction_row(r, r["solution"])) + "\n" for r in rows))
    return root / "s.jsonl", root / "p.jsonl"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_params_are_refused_in_one_line_or_loaded_exactly(data: st.DataObject, scoring_files) -> None:
    raw = _mutated(data, {k: PARAMS[k] for k in SECTIONS})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True))
        loaded = {}
        for section, cls in SECTIONS.items():
            try:
                loaded[section] = load_section(path, section, cls)
            except ParamsError as exc:
                assert str(exc).startswith(str(path)) and "\n" not in str(exc)
                continue
            assert _same(as_dict(loaded[section]), raw[section] or {})  # every given value, as given
        samples, predictions = scoring_files
        code, err = _run(["eval", "static", "--params", str(path), "--samples", str(samples),
                          "--predictions", str(predictions), "--out", str(Path(tmp) / "m.json")])
        assert "Traceback" not in err
        assert (code == 0) == ("eval" in loaded), err
        if code:
            assert err.count("\n") == 1 and str(path) in err


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_accepted_env_params_always_generate_a_valid_environment(data: st.DataObject) -> None:
    """A layout the params checks let through never makes an environment file that fails to load."""
    from gelab.env.variants import make_variant

    raw = _mutated(data, {"env": PARAMS["env"], "variants": PARAMS["variants"]})
    try:
        params = load_section_from(raw, "env", EnvParams)
        variants = load_section_from(raw, "variants", VariantParams)
    except ParamsError:
        return
    pages, width = 1, 1
    for b in params.branching:
        width *= b
        pages += width
    if pages > 400:
        return  # a big tree is valid too; only slow to build here
    try:
        structure, art = generate(params)
    except InputError:
        return  # e.g. more icons than the library has: refused in one line
    parse_structure(structure.to_json(), canvas=structure.canvas)
    for kind in ("position", "noise"):
        try:
            vs, _ = make_variant(kind, structure, art, variants.seed, params, noise_icons=variants.noise_icons)
        except InputError:
            continue
        parse_structure(vs.to_json(), canvas=vs.canvas)


def load_section_from(raw: dict[str, Any], section: str, cls: type) -> Any:
    from gelab.params import from_dict

    if not isinstance(raw, dict) or section not in raw:
        raise ParamsError(f"{section}: missing")
    return from_dict(cls, raw[section], f"params: {section}")


def test_files_that_are_not_utf8_are_named_with_file_and_line(tmp_path: Path, run_cli) -> None:
    """Before: a UnicodeDecodeError traceback (environment file, metrics, training curves) or a message
    without the file or line (params)."""
    import report_fixtures as rf

    bad = b'{\n  "pages": {\n    "page_0\xff": {}\n  }\n}\n'
    env_file = tmp_path / "ui_structure.json"
    env_file.write_bytes(bad)
    metrics = tmp_path / "metrics"
    rf.write(metrics, "sft", "static_ood", rf.static_metrics(60.0, 40.0, 50.0, 10.0))
    broken_metrics = tmp_path / "metrics_bad"
    (broken_metrics / "sft").mkdir(parents=True)
    (broken_metrics / "sft" / "static_ood.json").write_bytes(bad)
    curve = tmp_path / "sft_steps.csv"
    curve.write_bytes(b"step,loss\n1,2.0\n2,\xff\n")
    params = tmp_path / "params.yaml"
    params.write_bytes(b"eval:\n  seed: 0\n  device: \xffcpu\n")
    cases = [
        (["env", "import", env_file, "--out", tmp_path / "env"], f"{env_file}: line 3: not UTF-8"),
        (["report", "build", "--metrics", broken_metrics, "--out", tmp_path / "r1"],
         f"{broken_metrics / 'sft' / 'static_ood.json'}: line 3: not UTF-8"),
        (["report", "build", "--metrics", metrics, "--curve", f"sft={curve}", "--out", tmp_path / "r2"],
         f"{curve}: line 3: not UTF-8"),
        (["eval", "static", "--params", params, "--predictions", env_file, "--out", tmp_path / "m.json"],
         f"{params}: line 3: not UTF-8"),
    ]
    for argv, message in cases:
        result = run_cli(*argv)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, \
            (argv, result.stderr)


@settings(max_examples=300, deadline=None)
@given(values | st.text(min_size=150, max_size=400) | st.lists(st.text(max_size=60), min_size=3, max_size=12))
def test_error_messages_quote_a_value_as_repr_cut_at_200_characters(value: Any) -> None:
    from gelab.errors import quote

    text = repr(value)
    if len(text) <= 200:
        assert quote(value) == text
    else:
        assert quote(value).startswith(text[:200] + "… (") and len(quote(value)) < 230


def _alias_bomb(levels: int = 7, width: int = 9) -> str:
    """YAML whose anchors nest ``levels`` deep: a few hundred bytes that expand to ``width ** levels`` strings."""
    text = "a0: &a0 [" + ", ".join(["lol"] * width) + "]\n"
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]\n"
    return text


def test_huge_values_in_a_params_file_are_quoted_short(tmp_path: Path) -> None:
    """Before: the one-line error echoed the whole value, 34 MB on one line for the alias bomb."""
    cases = {
        "bomb": (_alias_bomb() + "env: *a6\n", "env: expected a mapping, got [[[[[[['lol', 'lol', ", "(9 items)"),
        "long": ("env:\n  seed: " + "x" * 1_000_000 + "\n", "env.seed: expected int, got 'xxxx", "(1000000 chars)"),
    }
    for name, (text, start, size) in cases.items():
        params = tmp_path / f"{name}.yaml"
        params.write_text(text)
        code, err = _run(["env", "generate", "--params", str(params), "--out", str(tmp_path / "env")])
        assert code == 2 and err.count("\n") == 1 and len(err) < 1000, err[:2000]
        assert f"{params}: {start}" in err and f"… {size}" in err, err
        assert not (tmp_path / "env").exists()
