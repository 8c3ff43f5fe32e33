"""The format module: exact strings of SPEC §3, conversions and never-raising parsers."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gelab import format as fmt

CANVAS = (1179, 2556)


def test_system_buttons_convert_to_spec_boxes() -> None:
    assert fmt.to_norm_box([60, 60, 260, 260], CANVAS) == (51, 23, 221, 102)  # back
    assert fmt.to_norm_box([919, 60, 1119, 260], CANVAS) == (779, 23, 949, 102)  # home


def test_release_example_box_converts_like_the_release() -> None:
    # release_example_static_eval: Sports_73 on page_1, pixel box -> bbox_norm
    assert fmt.to_norm_box([244, 1488, 444, 1688], CANVAS) == (207, 582, 377, 660)


def test_navigation_prompts_match_spec_exactly() -> None:
    assert fmt.navigation_prompt("page_3", "page_12") == "<image>Instruction: from page_3 to page_12. History: Null"
    steps = [fmt.HistoryStep("A_1", "page_0"), fmt.HistoryStep("home", "page_7")]
    assert fmt.navigation_prompt("page_0", "page_9", steps, image_placeholder=False) == (
        "Instruction: from page_0 to page_9. History: step1: click A_1 icon on page_0. step2: click home icon on page_7.")


def test_answers_match_spec_exactly() -> None:
    assert fmt.click_text("Flowers_and_plants_153", "page_3", 503, 522) == (
        "Explain:click Flowers_and_plants_153 icon on page_3.\tAction: "
        "click(start_box='<|box_start|>(503,522)<|box_end|>')")
    assert fmt.complete_text() == "Explain: this is target page.\tAction: complete"


def test_system_prompt_states_both_answer_forms() -> None:
    assert "Explain:click NAME icon on PAGE.\tAction: click(start_box='<|box_start|>(x,y)<|box_end|>')" in fmt.SYSTEM_PROMPT
    assert fmt.complete_text() in fmt.SYSTEM_PROMPT


# (model output, expected kind, expected (x, y, name, page) or None, well-formed?)
PARSE_TABLE = [
    ("Explain:click back icon on page_7.\tAction: click(start_box='<|box_start|>(100,50)<|box_end|>')",
     "click", (100, 50, "back", "page_7"), True),  # canonical
    ("Explain: this is target page.\tAction: complete", "complete", None, True),  # canonical complete
    ("explain:click Flowers_and_plants_153 icon on page_3.\tAction: click(start_box='<|box_start|>(503,522)<|box_end|>')",
     "click", (503, 522, "Flowers_and_plants_153", "page_3"), False),  # release's lower-case explain
    ("Explain:click back icon on page_7. Action: click(start_box='<|box_start|>(100,50)<|box_end|>')",
     "click", (100, 50, "back", "page_7"), False),  # space instead of TAB
    ("Explain:click back icon on page_7.\tAction: click(start_box='<|box_start|>(100, 50)<|box_end|>')",
     "click", (100, 50, "back", "page_7"), False),  # space inside (x,y)
    ("Explain:click Flowers and plants 153 icon on page_3.\tAction: click(start_box='<|box_start|>(5,5)<|box_end|>')",
     "click", (5, 5, None, None), False),  # name with spaces names no icon
    ("Action: click(start_box='(10,20)')", "click", (10, 20, None, None), False),  # no box tokens, no explanation
    ("Explain:click a_1 icon on page_1.\tAction: click(start_box='<|box_start|>(1001,5)<|box_end|>')",
     "invalid", None, False),  # x outside 0..1000
    ("Explain:click a_1 icon on page_1.\tAction: click(start_box='<|box_start|>(-3,5)<|box_end|>')",
     "invalid", None, False),  # negative coordinate
    ("", "invalid", None, False),  # empty
    ("\x00\xff garbage", "invalid", None, False),  # binary garbage
    ("Explain: this is target page.\tAction: complete\n", "complete", None, False),  # trailing newline
]


@pytest.mark.parametrize("text,kind,click,well_formed", PARSE_TABLE)
def test_parse_table(text: str, kind: str, click: tuple | None, well_formed: bool) -> None:
    action = fmt.parse_action(text)
    assert action.kind == kind
    if click is not None:
        assert isinstance(action, fmt.Click)
        assert (action.x, action.y, action.name, action.page) == click
    assert fmt.is_well_formed(text) is well_formed


def test_parse_of_non_text_is_invalid() -> None:
    for value in (None, 3, b"bytes", ["Action: complete"]):
        assert isinstance(fmt.parse_action(value), fmt.Invalid)


names = st.from_regex(r"[A-Za-z][A-Za-z0-9\-]{0,12}(_[A-Za-z0-9\-]{1,8}){0,3}_[0-9]{1,4}", fullmatch=True) | st.sampled_from(["back", "home"])
pages = st.integers(0, 10_000).map(lambda n: f"page_{n}")
coords = st.integers(0, fmt.NORM_MAX)


@given(names, pages, coords, coords)
@settings(max_examples=300)
def test_click_render_then_parse_is_identity(name: str, page: str, x: int, y: int) -> None:
    text = fmt.click_text(name, page, x, y)
    assert fmt.parse_action(text) == fmt.Click(x, y, name, page)
    assert fmt.is_well_formed(text)
    assert fmt.render_action(fmt.parse_action(text)) == text  # type: ignore[arg-type]


@given(st.lists(st.tuples(names, pages), max_size=12), pages, pages)
@settings(max_examples=200)
def test_instruction_render_then_parse_is_identity(history: list, start: str, target: str) -> None:
    steps = [fmt.HistoryStep(n, p) for n, p in history]
    assert fmt.parse_instruction(fmt.navigation_prompt(start, target, steps)) == (start, target, steps)


@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
@settings(max_examples=1000)
def test_arbitrary_text_never_raises(text: str) -> None:
    action = fmt.parse_action(text)
    assert action.kind in (fmt.CLICK, fmt.COMPLETE, fmt.INVALID)
    fmt.is_well_formed(text)
    fmt.explanation_mentions(text, "page_3")
    fmt.parse_instruction(text)


@given(st.text(alphabet=string.printable, max_size=40), coords, coords)
def test_click_embedded_in_noise_is_found(noise: str, x: int, y: int) -> None:
    text = noise.replace("ction", "") + f"Action: click(start_box='<|box_start|>({x},{y})<|box_end|>')"
    action = fmt.parse_action(text)
    assert isinstance(action, fmt.Click) and (action.x, action.y) == (x, y)


def test_inclusive_hit_test() -> None:
    box = (10, 20, 30, 40)
    assert fmt.in_box(10, 20, box) and fmt.in_box(30, 40, box)
    assert not fmt.in_box(9, 20, box) and not fmt.in_box(30, 41, box)


def test_icon_names() -> None:
    assert fmt.is_valid_icon_name("Flowers_and_plants_153")
    assert fmt.is_valid_icon_name("E-commerce_124") and fmt.is_valid_icon_name("design_3")
    assert not fmt.is_valid_icon_name("Flowers and plants 153")
    assert not fmt.is_valid_icon_name("Flowers_and_plants")  # no number
