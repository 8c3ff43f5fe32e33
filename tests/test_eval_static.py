"""Static benchmark: step scoring table, metrics buckets, both file layouts, bad files, fuzz."""

from __future__ import annotations

import json
import random
from pathlib import Path

import msgspec
import pytest
from evalkit import prediction_row, release_row, static_rows, write_env_folder
from hypothesis import given, settings
from hypothesis import strategies as st

from gelab import format as fmt
from gelab.eval.intervals import wilson
from gelab.eval.schema import Static, to_json
from gelab.eval.static import (
    PredictionFileError,
    StepRecord,
    check_records,
    load_predictions,
    score_file,
    static_metrics,
    step_correct,
)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def click_record(prediction: object, name: str = "Sports_73", box=(207, 582, 377, 660)) -> StepRecord:
    return StepRecord("t", "page_5:page_1->page_6#0", "navigation", "page_5", "page_1", "page_6", 1, 0, "click",
                      name, box, prediction)


def complete_record(prediction: object) -> StepRecord:
    return StepRecord("t", "page_5:page_1->page_6#1", "navigation", "page_5", "page_1", "page_6", 1, 1, "complete",
                      None, None, prediction)


CLICK = "Explain:click Sports_73 icon on page_1.\tAction: click(start_box='<|box_start|>({x},{y})<|box_end|>')"

# Ground truth: click Sports_73 inside bbox_norm [207, 582, 377, 660].
CLICK_TABLE = [
    (CLICK.format(x=258, y=619), True),  # the exact format, point inside
    (CLICK.format(x=207, y=582), True),  # top-left corner: the hit test is inclusive
    (CLICK.format(x=377, y=660), True),  # bottom-right corner: inclusive
    (CLICK.format(x=206, y=619), False),  # one unit left of the box
    (CLICK.format(x=258, y=661), False),  # one unit below the box
    (CLICK.format(x=1200, y=619), False),  # outside the screen (0..1000)
    (CLICK.format(x=-5, y=619), False),  # negative coordinate
    (CLICK.format(x=258, y=619).replace("Sports_73", "Sports_74"), False),  # right place, wrong name
    (CLICK.format(x=258, y=619).replace("Sports_73", "Sports 73"), False),  # name with a space
    (CLICK.format(x=258, y=619).replace("Explain:click Sports_73 icon on page_1.", ""), False),  # no explanation
    ("Explain:click Sports_73 icon on page_1.\tAction: click(start_box='<|box_start|>(258, 619)<|box_end|>')",
     True),  # space inside (x,y): not well formed, but the action is readable and right
    ("explain: click Sports_73 icon on page_1. Action: click((258,619))", True),  # lenient spelling, same action
    (fmt.complete_text(), False),  # complete where a click is expected
    ("", False),  # empty output
    ("\x00\xff\ufffd" * 50, False),  # binary garbage
    ("x" * 5000 + CLICK.format(x=258, y=619), False),  # answer beyond the 4096 characters read
    (CLICK.format(x=258, y=619) + "x" * 100_000, True),  # huge tail after a right answer
    (None, False),  # not text at all
    (12345, False),  # not text at all
]

COMPLETE_TABLE = [
    (fmt.complete_text(), True),  # the exact format
    ("Explain: this is target page. Action: complete", True),  # space instead of TAB: action still complete
    ("Action: complete", True),  # no explanation: the action decides
    (CLICK.format(x=258, y=619), False),  # a click where complete is expected
    ("complete", False),  # no 'Action:'
    ("", False),  # empty
    (["Action: complete"], False),  # a list, not text
]


@pytest.mark.parametrize("prediction,expected", CLICK_TABLE)
def test_click_step_table(prediction: object, expected: bool) -> None:
    assert step_correct(click_record(prediction)) is expected


@pytest.mark.parametrize("prediction,expected", COMPLETE_TABLE)
def test_complete_step_table(prediction: object, expected: bool) -> None:
    assert step_correct(complete_record(prediction)) is expected


def test_buckets_and_task_success_on_hand_made_answers(tmp_path: Path) -> None:
    rows = static_rows()
    by_task: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_task.setdefault((r["start"], r["target"]), []).append(r)
    picked = {}
    for length in (1, 2, 3):  # one task of each of the shortest lengths
        picked[length] = next(v for v in by_task.values() if v[0]["path_length"] == length)
    # wrong on purpose: the first step of the length-2 task (an edge step), the second of length 3 (a path step)
    wrong = {picked[2][0]["id"], picked[3][1]["id"]}
    preds = [prediction_row(r, "garbage" if r["id"] in wrong else r["solution"])
             for v in picked.values() for r in v]
    m = score_file(write_jsonl(tmp_path / "p.jsonl", preds))
    # steps: 2 + 3 + 4 = 9, two wrong; edge steps: 3, one wrong; path click steps: 1 (len 2) + 2 (len 3), one wrong
    assert m["steps"] == 9 and m["tasks"] == 3
    assert m["overall"] == pytest.approx(100 * 7 / 9)
    assert m["edge"] == pytest.approx(100 * 2 / 3)
    assert m["path"] == pytest.approx(100 * 2 / 3)
    assert m["task_success"] == pytest.approx(100 / 3)
    assert m["per_path"]["1"] == {"tasks": 1, "steps": 2, "step_accuracy": 100.0, "task_success": 100.0,
                                  "step_accuracy_ci95": wilson(2, 2), "task_success_ci95": wilson(1, 1),
                                  "step_accuracy_n": 2, "task_success_n": 1}
    assert m["per_path"]["2"] == {"tasks": 1, "steps": 3, "step_accuracy": pytest.approx(200 / 3), "task_success": 0.0,
                                  "step_accuracy_ci95": wilson(2, 3), "task_success_ci95": wilson(0, 1),
                                  "step_accuracy_n": 3, "task_success_n": 1}
    assert m["per_path"]["3"]["step_accuracy"] == pytest.approx(75.0)
    assert m["unparseable"] == 2
    # every rate has its Wilson interval, over the steps or tasks it counts
    assert (m["overall_ci95"], m["edge_ci95"], m["path_ci95"], m["task_success_ci95"]) == (
        wilson(7, 9), wilson(2, 3), wilson(2, 3), wilson(1, 3))
    assert (m["overall_n"], m["edge_n"], m["path_n"], m["task_success_n"]) == (9, 3, 3, 3)  # and that count
    # the file is the report's Struct, key for key and in order (gelab.eval.schema)
    assert json.dumps(to_json(msgspec.convert(m, Static, strict=True))) == json.dumps(m)


def test_full_subtree_solutions_score_100_and_counts_match_the_paper(tmp_path: Path) -> None:
    rows = static_rows()
    m = score_file(write_jsonl(tmp_path / "p.jsonl", [prediction_row(r, r["solution"]) for r in rows]))
    assert (m["edge"], m["path"], m["overall"], m["task_success"]) == (100.0, 100.0, 100.0, 100.0)
    assert m["steps"] == 12439 and m["tasks"] == 2162
    assert [m["per_path"][str(n)]["tasks"] for n in range(1, 8)] == [137, 147, 222, 324, 492, 456, 384]


def test_released_layout_scores_like_the_project_layout(tmp_path: Path) -> None:
    rows = static_rows()
    rng = random.Random(7)
    answers = [r["solution"] if rng.random() < 0.6 else rng.choice([fmt.complete_text(), "", "Action: click(1,1)"])
               for r in rows]
    ours = write_jsonl(tmp_path / "ours.jsonl", [prediction_row(r, a) for r, a in zip(rows, answers)])
    released = [release_row(r, a, i) for i, (r, a) in enumerate(zip(rows, answers))]
    as_jsonl = write_jsonl(tmp_path / "released.jsonl", released)
    as_array = tmp_path / "released.json"
    as_array.write_text(json.dumps(released, indent=2), encoding="utf-8")
    expected = score_file(ours)
    assert 0 < expected["overall"] < 100
    assert score_file(as_jsonl) == expected
    assert score_file(as_array) == expected


def test_released_layout_example_record(tmp_path: Path) -> None:
    # shape of the release's static-eval records: user + ground-truth assistant, pixel and 0..1000 boxes
    record = {"idx": 0, "path": 1, "task": "From page_1 to page_6", "bbox": [244, 1488, 444, 1688],
              "bbox_norm": [207, 582, 377, 660],
              "messages": [{"role": "user", "content": "<image>Instruction: from page_1 to page_6. History: Null"},
                           {"role": "assistant", "content": CLICK.format(x=258, y=619)}],
              "images": ["datas/images/page_1.png"], "prediction": CLICK.format(x=300, y=600)}
    (r,) = load_predictions(write_jsonl(tmp_path / "r.jsonl", [record]))
    assert (r.start, r.target, r.step, r.action, r.gt_name, r.bbox_norm) == \
        ("page_1", "page_6", 0, "click", "Sports_73", (207, 582, 377, 660))
    assert step_correct(r)


def _predictions(tmp_path: Path, rows: list[dict]) -> Path:
    return write_jsonl(tmp_path / "p.jsonl", [prediction_row(r, r["solution"]) for r in rows])


def test_missing_row_is_named(tmp_path: Path) -> None:
    rows = static_rows()
    gone = rows.pop(100)
    with pytest.raises(PredictionFileError, match=f"missing row '{gone['id']}'"):
        score_file(_predictions(tmp_path, rows))


def test_missing_row_against_samples_is_named(tmp_path: Path) -> None:
    samples = static_rows()
    first_task = [r for r in samples if (r["start"], r["target"]) == (samples[0]["start"], samples[0]["target"])]
    preds = _predictions(tmp_path, [r for r in samples if r not in first_task])  # a whole task missing
    sample_file = write_jsonl(tmp_path / "samples.jsonl", samples)
    with pytest.raises(PredictionFileError, match=f"row '{samples[0]['id']}' has no prediction"):
        score_file(preds, sample_file)


def test_duplicate_row_is_named_with_both_lines(tmp_path: Path) -> None:
    rows = static_rows()[:50]
    rows.insert(30, rows[10])
    with pytest.raises(PredictionFileError, match=rf"line 31: duplicate row '{rows[10]['id']}' \(first at line 11\)"):
        score_file(_predictions(tmp_path, rows))


def test_wrong_subtree_is_named_without_samples(tmp_path: Path) -> None:
    samples = static_rows()
    preds = [prediction_row(r, r["solution"]) for r in samples]
    preds[5]["subtree"] = "page_4"
    with pytest.raises(PredictionFileError, match=r"line 6: row .* is from subtree page_4, .* is subtree page_5"):
        score_file(write_jsonl(tmp_path / "p.jsonl", preds))


def test_rows_of_another_subtree_match_no_sample(tmp_path: Path) -> None:
    samples = static_rows()
    other = static_rows("page_4")
    preds = _predictions(tmp_path, other)
    with pytest.raises(PredictionFileError, match=r"line 1: row 'page_4:page_0->page_4#0' matches no row"):
        score_file(preds, write_jsonl(tmp_path / "s.jsonl", samples))


def test_bad_json_and_missing_prediction_are_named(tmp_path: Path) -> None:
    rows = [prediction_row(r, r["solution"]) for r in static_rows()[:10]]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(PredictionFileError, match="line 11: not JSON"):
        score_file(path)
    del rows[3]["prediction"]
    with pytest.raises(PredictionFileError, match="line 4: missing field 'prediction'"):
        score_file(write_jsonl(tmp_path / "q.jsonl", rows))


# --- fuzz -------------------------------------------------------------------------------------

def _garbage(rng: random.Random, sample: dict) -> tuple[object, bool]:
    """A generated model output for ``sample`` and whether it must be scored right."""
    page, name, box = sample["page"], sample["gt_name"], sample["bbox_norm"]
    kind = rng.randrange(12)
    if kind == 0:  # a right answer
        if sample["action"] == "complete":
            return fmt.complete_text(), True
        return fmt.click_text(name, page, rng.randint(box[0], box[2]), rng.randint(box[1], box[3])), True
    if kind == 1:  # binary garbage
        return bytes(rng.randrange(256) for _ in range(rng.randrange(200))).decode("latin-1"), False
    if kind == 2:  # empty or whitespace
        return rng.choice(["", " ", "\n\t", "\x00"]), False
    if kind == 3:  # huge: the answer hidden after the characters that are read
        return "y" * rng.randrange(4097, 50_000) + sample["solution"], False
    if kind == 4:  # click outside the screen
        return fmt.click_text(name or "home", page, 0, 0).replace("(0,0)", f"({rng.randint(1001, 10**6)},500)"), False
    if kind == 5:  # a name with spaces
        return fmt.click_text((name or "home") + " x", page, 500, 500).replace("_", " "), False
    if kind == 6:  # not text
        return rng.choice([None, 3, 2.5, [], {"a": 1}, True]), False
    if kind == 7:  # wrong action type
        if sample["action"] == "complete":
            return fmt.click_text("home", page, 500, 50), False
        return fmt.complete_text(), False
    if kind == 8:  # point just outside the box (when a click is expected)
        if sample["action"] == "complete":
            return "Action: click(500,500)", False
        return fmt.click_text(name, page, box[2] + 1, box[3]), False
    if kind == 9:  # random printable noise around the keywords
        noise = "".join(rng.choice("Action:click()<|box_start|>,0123456789 \t") for _ in range(rng.randrange(80)))
        return noise, False  # never names the icon, never spells "complete"
    if kind == 10:  # a different icon name at the right place
        if sample["action"] == "complete":
            return "", False
        return fmt.click_text(name + "9", page, box[0], box[1]), False
    return "".join(chr(rng.randrange(0x10FFFF)) for _ in range(rng.randrange(1, 60)))\
        .encode("utf-8", "replace").decode("utf-8", "replace"), False


def test_fuzz_ten_thousand_outputs_never_crash_and_score_as_expected(tmp_path: Path) -> None:
    rng = random.Random(2024)
    rows = static_rows()
    preds, must_be_right = [], 0
    for sample in rows:  # 12,439 generated outputs, one per step of the subtree
        output, right = _garbage(rng, sample)
        must_be_right += right
        preds.append(prediction_row(sample, output))
    n_right = sum(1 for p in preds if _garbage_is_right(p))
    m = score_file(write_jsonl(tmp_path / "fuzz.jsonl", preds))
    assert m["steps"] == len(preds) >= 10_000
    assert m["overall"] == pytest.approx(100 * n_right / len(preds))
    assert n_right == must_be_right > 500  # the generator's own labels agree, and right answers were made


def _garbage_is_right(p: dict) -> bool:
    """Independent judge for the fuzz outputs (string checks, no gelab parser)."""
    out = p["prediction"]
    if not isinstance(out, str):
        return False
    if p["action"] == "complete":
        return "Action: complete" in out[:4096] and "click(" not in out[:4096].split("Action: complete")[0]
    expected_head = f"Explain:click {p['gt_name']} icon on {p['page']}.\tAction: click(start_box='<|box_start|>("
    if not out.startswith(expected_head):
        return False
    x, y = out[len(expected_head):].split(")", 1)[0].split(",")
    b = p["bbox_norm"]
    return b[0] <= int(x) <= b[2] and b[1] <= int(y) <= b[3]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_text_never_raises_and_needs_the_name(text: str) -> None:
    right = step_correct(click_record(text))
    assert right is False or "Sports_73" in text
    right_complete = step_correct(complete_record(text))
    assert isinstance(right_complete, bool) and (right_complete is False or "complete" in text.lower())


def test_metrics_of_unscorable_only_file(tmp_path: Path) -> None:
    rows = static_rows()[:40]
    complete = {(r["start"], r["target"]) for r in rows if r["step"] == r["path_length"]}
    preds = [prediction_row(r, "\x00") for r in rows if (r["start"], r["target"]) in complete]
    records = load_predictions(write_jsonl(tmp_path / "p.jsonl", preds))
    check_records(records)
    m = static_metrics(records)
    assert (m["overall"], m["edge"], m["task_success"]) == (0.0, 0.0, 0.0)
    assert m["unparseable"] == len(preds)


# instruction_step (the scorer's fast reader of released prompts) accepts exactly what parse_instruction does
INSTRUCTIONS = [
    "<image>Instruction: from page_1 to page_6. History: Null",  # first step
    "Instruction: from page_1 to page_6. History: step1: click home icon on page_1.",  # no placeholder
    "Instruction: from page_1 to page_6. History: step1: click a_1 icon on page_1. step2: click b_2 icon on page_0.",
    "Instruction: from page_1 to page_6. History: step2: click a_1 icon on page_1.",  # numbering starts at 2
    "Instruction: from page_1 to page_6. History: step1: click a_1 icon on page_1.  step2: click b icon on page_0.",
    "Instruction: from page_1 to page_6. History: step1: click a_1 icon on page_1. junk",  # trailing text
    "Instruction: from page_1 to page_6. History: step1: click a 1 icon on page_1.",  # name with a space
    "Instruction: from page_1 to page_6. History: ",  # empty history
    "from page_1 to page_6",  # no instruction
]


@pytest.mark.parametrize("text", INSTRUCTIONS)
def test_instruction_step_agrees_with_parse_instruction(text: str) -> None:
    full = fmt.parse_instruction(text)
    assert fmt.instruction_step(text) == (None if full is None else (full[0], full[1], len(full[2])))


def test_instruction_step_on_every_prompt_of_a_subtree() -> None:
    for row in static_rows():
        user = row["messages"][1]["content"]
        assert fmt.instruction_step(user) == (row["start"], row["target"], row["step"])


def test_captioning_and_grounding_are_scored_when_present(tmp_path: Path) -> None:
    from evalkit import env_base, navigator

    from gelab.data.datasets import Source, icon_rows
    from gelab.env.envdir import Environment, RenderSettings

    structure, art = env_base()
    src = Source(Environment(Path("env"), structure, art, RenderSettings()), navigator(), "env")
    grounding = list(icon_rows(src, "grounding", 1, random.Random(1)))[:8]
    captioning = list(icon_rows(src, "captioning", 1, random.Random(2)))[:4]
    nav_rows = static_rows()[:2]  # one whole task (path length 1)
    preds = [prediction_row(r, r["solution"]) for r in nav_rows]
    preds += [prediction_row(r, r["solution"] if i < 6 else fmt.complete_text()) for i, r in enumerate(grounding)]
    preds += [prediction_row(r, r["solution"] if i < 1 else "") for i, r in enumerate(captioning)]
    m = score_file(write_jsonl(tmp_path / "p.jsonl", preds))
    assert (m["grounding"], m["grounding_samples"], m["grounding_ci95"]) == (75.0, 8, wilson(6, 8))  # 6 of 8 right
    assert (m["captioning"], m["captioning_samples"], m["captioning_ci95"]) == (25.0, 4, wilson(1, 4))  # 1 of 4
    assert m["steps"] == 2 and m["overall"] == 100.0  # icon rows stay out of the navigation buckets


def test_static_predictions_resume_after_a_cut(tmp_path: Path) -> None:
    from evalkit import navigator

    from gelab.eval.policies import reference_policy
    from gelab.eval.records import AppendLog
    from gelab.eval.static_run import predict, select_samples

    samples = select_samples(static_rows(), 70, seed=0)
    policy = reference_policy("random", navigator(), seed=2)
    whole = tmp_path / "whole.jsonl"
    with AppendLog(whole) as log:
        assert predict(samples, policy, log, batch_size=25) == len(samples)
    expected = score_file(whole, samples)
    cut = tmp_path / "cut.jsonl"
    lines = whole.read_bytes().split(b"\n")
    cut.write_bytes(b"\n".join(lines[:100]) + b"\n" + lines[100][:30])  # killed while writing row 101
    with AppendLog(cut) as log:
        made = predict(samples, policy, log, batch_size=25)
    assert made == len(samples) - 100
    assert score_file(cut, samples) == expected
    assert sorted(cut.read_bytes().split(b"\n")) == sorted(whole.read_bytes().split(b"\n"))
    assert 0 < expected["overall"] < 100 and expected["tasks"] == 70


def test_cli_batch_size_zero_answers_everything_in_one_call(tmp_path: Path, run_cli) -> None:
    env = write_env_folder(tmp_path / "env")
    samples = write_jsonl(tmp_path / "static.jsonl", static_rows(image_root=str(env))[:60])
    metrics = {}
    for batch in ("0", "7"):
        out = tmp_path / f"m{batch}.json"
        run_cli("eval", "static", "--policy", "random", "--seed", 4, "--env", env, "--samples", samples,
                "--predictions", tmp_path / f"p{batch}.jsonl", "--out", out, "--batch-size", batch, check=True)
        metrics[batch] = json.loads(out.read_text())
    assert metrics["0"] == metrics["7"] and metrics["0"]["steps"] == 60
    bad = run_cli("eval", "static", "--policy", "random", "--env", env, "--samples", samples,
                  "--predictions", tmp_path / "q.jsonl", "--out", tmp_path / "q.json", "--batch-size", -1)
    assert bad.returncode == 2 and "command line: eval.batch_size: must be >= 0, got -1" in bad.stderr
    assert not (tmp_path / "q.json").exists()


# --- ground truth only from the samples (SPEC §5: a scorer must not be tamperable) ------------

def _leaderboard_case(tmp_path: Path) -> tuple[list[dict], list[dict], Path]:
    """A few tasks of every path length, and a seeded mix of right answers and random clicks."""
    from evalkit import tasks

    by_length: dict[int, list] = {}
    for t in tasks():
        by_length.setdefault(t.path_length, []).append(t)
    samples = static_rows(task_list=[t for ts in by_length.values() for t in ts[:3]])
    rng = random.Random(7)
    answers = [r["solution"] if rng.random() < 0.4 else
               fmt.click_text(rng.choice([r["gt_name"] or "home", "back"]), r["page"], rng.randint(0, 1000),
                              rng.randint(0, 1000)) for r in samples]
    preds = [prediction_row(r, a) for r, a in zip(samples, answers)]
    return samples, preds, write_jsonl(tmp_path / "samples.jsonl", samples)


TAMPERED = {  # a prediction row's field -> what a cheater writes there
    "bbox_norm": lambda row: [0, 0, 1000, 1000],  # every click inside
    "action": lambda row: "click" if fmt.parse_action(row["prediction"]).__class__ is fmt.Click else "complete",
    "gt_name": lambda row: getattr(fmt.parse_action(row["prediction"]), "name", None),  # the name it said
    "page": lambda row: "page_0",
    "subtree": lambda row: "page_1",
    "start": lambda row: row["target"],
    "target": lambda row: row["start"],
    "path_length": lambda row: 0,
    "step": lambda row: 0,
    "kind": lambda row: "grounding",
}


@pytest.mark.parametrize("field", sorted(TAMPERED))
def test_tampered_fields_of_prediction_rows_never_change_a_score(tmp_path: Path, field: str) -> None:
    samples, preds, sample_file = _leaderboard_case(tmp_path)
    honest = score_file(write_jsonl(tmp_path / "honest.jsonl", preds), sample_file)
    assert 0 < honest["overall"] < 100
    tampered = [{**row, field: TAMPERED[field](row)} for row in preds]
    assert score_file(write_jsonl(tmp_path / "tampered.jsonl", tampered), sample_file) == honest
    bare = [{"id": row["id"], "prediction": row["prediction"]} for row in preds]  # id + prediction are enough
    assert score_file(write_jsonl(tmp_path / "bare.jsonl", bare), sample_file) == honest


def test_random_clicks_with_widened_boxes_score_as_random_clicks(tmp_path: Path) -> None:
    samples, _, sample_file = _leaderboard_case(tmp_path)
    rng = random.Random(3)
    clicks = [prediction_row(r, fmt.click_text(r["gt_name"] or "home", r["page"], rng.randint(0, 1000),
                                               rng.randint(0, 1000))) for r in samples]
    widened = [{**row, "bbox_norm": [0, 0, 1000, 1000], "action": "click"} for row in clicks]
    honest = score_file(write_jsonl(tmp_path / "c.jsonl", clicks), sample_file)
    assert score_file(write_jsonl(tmp_path / "w.jsonl", widened), sample_file) == honest
    assert honest["overall"] < 20
    # released layout: the box and the ground-truth assistant message of the row are not read either
    released = [release_row(r, p["prediction"], i) for i, (r, p) in enumerate(zip(samples, clicks))]
    for row in released:
        row["bbox_norm"] = [0, 0, 1000, 1000]
        row["messages"][1]["content"] = row["prediction"]
    assert score_file(write_jsonl(tmp_path / "r.jsonl", released), sample_file) == honest


def test_predictions_of_a_variant_scored_against_base_samples_use_the_base_boxes(tmp_path: Path) -> None:
    """Env-Position answers (their rows carry Env-Position's boxes) are judged by the base samples' boxes."""
    from evalkit import env_base, tasks

    from gelab.data.datasets import Source, step_rows
    from gelab.env.envdir import Environment, RenderSettings
    from gelab.env.variants import make_variant
    from gelab.params import EnvParams

    task_list = tasks()[:60]
    base = static_rows(task_list=task_list)
    moved, art = make_variant("position", *env_base(), 1, EnvParams())
    src = Source.of(Environment(Path("env"), moved, art, RenderSettings()))
    position = list(step_rows(src, task_list, random.Random(0)))
    assert [r["id"] for r in position] == [r["id"] for r in base]
    preds = write_jsonl(tmp_path / "p.jsonl", [prediction_row(r, r["solution"]) for r in position])
    assert score_file(preds)["overall"] == 100  # right in Env-Position, by its own rows
    against_base = score_file(preds, write_jsonl(tmp_path / "s.jsonl", base))
    assert against_base["edge"] < 50 and against_base["overall"] < 100


def test_a_step_repeated_under_a_new_id_is_refused_without_samples(tmp_path: Path) -> None:
    rows = [prediction_row(r, r["solution"]) for r in static_rows()[:40]]
    rows.append({**rows[7], "id": rows[7]["id"] + "-again"})
    with pytest.raises(PredictionFileError, match=r"line 41: row .*-again' repeats step .* \(already row .* at line 8\)"):
        score_file(write_jsonl(tmp_path / "p.jsonl", rows))


def test_a_complete_before_the_last_step_is_refused_without_samples(tmp_path: Path) -> None:
    rows = [prediction_row(r, r["solution"]) for r in static_rows()[:40]]
    first_click = next(i for i, r in enumerate(rows) if r["action"] == "click")
    rows[first_click].update(action="complete", gt_name=None, bbox_norm=None)
    with pytest.raises(PredictionFileError, match=rf"line {first_click + 1}: .* must be a click, got complete"):
        score_file(write_jsonl(tmp_path / "p.jsonl", rows))


# --- persisted logs (DVC keeps them) resume only the very same run ------------------------------

def test_a_log_of_other_samples_is_refused_or_restarted(tmp_path: Path, run_cli) -> None:
    """The samples file at the same path changed (data rebuilt): its old predictions are never reused."""
    env = write_env_folder(tmp_path / "env")
    rows = static_rows(image_root=str(env))
    samples = write_jsonl(tmp_path / "static.jsonl", rows[:40])
    argv = ["eval", "static", "--policy", "random", "--env", env, "--samples", samples,
            "--predictions", tmp_path / "p.jsonl", "--out", tmp_path / "m.json"]
    run_cli(*argv, check=True)
    write_jsonl(samples, rows[40:80])  # same path, other rows
    refused = run_cli(*argv)
    assert refused.returncode == 2 and "samples_sha256" in refused.stderr and "--fresh" in refused.stderr
    run_cli(*argv, "--restart-if-changed", check=True)
    assert [json.loads(line)["id"] for line in open(tmp_path / "p.jsonl")] == [r["id"] for r in rows[40:80]]
    again = (tmp_path / "p.jsonl").read_bytes()
    run_cli(*argv, "--restart-if-changed", check=True)  # the same run: resumed (nothing left to do)
    assert (tmp_path / "p.jsonl").read_bytes() == again


def test_model_inputs_are_checked_before_the_first_call(tmp_path: Path, run_cli) -> None:
    """Before: a missing page image failed the run at the first batch that showed it (minutes in)."""
    from evalkit import tasks

    env = write_env_folder(tmp_path / "env")  # no page images
    samples = write_jsonl(tmp_path / "static.jsonl", static_rows(image_root=str(env), task_list=tasks()[:3]))
    model = tmp_path / "model"
    model.mkdir()
    argv = ["eval", "static", "--policy", "hf", "--model", model, "--samples", samples,
            "--predictions", tmp_path / "p.jsonl", "--out", tmp_path / "m.json"]
    result = run_cli(*argv)
    assert result.returncode == 2 and "has no config.json" in result.stderr
    (model / "config.json").write_text("{}")
    result = run_cli(*argv)
    assert result.returncode == 2 and "model_images/page_0.png: missing image" in result.stderr
    assert not (tmp_path / "p.jsonl").exists()
    inter = run_cli("eval", "interactive", "--policy", "hf", "--model", model, "--env", env, "--subtree", "page_5",
                    "--out", tmp_path / "i.json")
    assert inter.returncode == 2 and "missing image of page_0" in inter.stderr


def test_a_released_layout_step_given_twice_is_refused_without_samples(tmp_path: Path) -> None:
    rows = static_rows()[:40]
    released = [release_row(r, r["solution"], i) for i, r in enumerate(rows)]
    released.append({**released[5], "idx": 99})  # the same step again, under another idx
    with pytest.raises(PredictionFileError, match=r"line 41: duplicate row .* \(first at line 6\)"):
        score_file(write_jsonl(tmp_path / "r.jsonl", released))


@pytest.mark.parametrize("field,value", [("id", None), ("messages", None), ("messages", "text"), ("page", None),
                                         ("step", "x"), ("images", [3])])
def test_a_broken_sample_is_named_before_any_prediction(tmp_path: Path, run_cli, field: str, value: object) -> None:
    """Before: KeyError / TypeError / ValueError tracebacks from the middle of the run."""
    env = write_env_folder(tmp_path / "env")
    rows = static_rows(image_root=str(env))[:40]
    if value is None:
        del rows[2][field]
    else:
        rows[2][field] = value
    samples = write_jsonl(tmp_path / "static.jsonl", rows)
    result = run_cli("eval", "static", "--policy", "random", "--env", env, "--samples", samples,
                     "--predictions", tmp_path / "p.jsonl", "--out", tmp_path / "m.json")
    assert result.returncode == 2 and f"{samples}: line 3: " in result.stderr, result.stderr
    assert not (tmp_path / "p.jsonl").exists()
