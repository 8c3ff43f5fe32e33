"""ST-RL and MT-RL rewards (SPEC §6) on crafted completions; one comment per row says why."""

from __future__ import annotations

import pytest

from gelab.train import rewards

TAB = "\t"
NAME = "Flowers_and_plants_153"
BOX = [402, 402, 572, 480]  # bbox_norm of NAME on page_3 (normalized 0..1000)
GOOD_CLICK = f"Explain:click {NAME} icon on page_3.{TAB}Action: click(start_box='<|box_start|>(466,456)<|box_end|>')"
COMPLETE = f"Explain: this is target page.{TAB}Action: complete"

# (completion, expected action, gt_name, bbox_norm, [type, coord, intent, format])
TABLE = [
    (GOOD_CLICK, "click", NAME, BOX, [1, 1, 1, 1]),  # the exact release answer
    (GOOD_CLICK.replace("(466,456)", "(402,480)"), "click", NAME, BOX, [1, 1, 1, 1]),  # box corner: inclusive
    (GOOD_CLICK.replace("(466,456)", "(401,456)"), "click", NAME, BOX, [1, 0, 1, 1]),  # one unit left of the box
    (GOOD_CLICK.replace("(466,456)", "(466,481)"), "click", NAME, BOX, [1, 0, 1, 1]),  # one unit below the box
    (GOOD_CLICK.replace(TAB, " "), "click", NAME, BOX, [1, 1, 1, 0]),  # missing TAB before Action
    (GOOD_CLICK.replace("(466,456)", "(466, 456)"), "click", NAME, BOX, [1, 1, 1, 0]),  # space inside (x,y)
    (GOOD_CLICK.replace("Explain:click", "Explain: click"), "click", NAME, BOX, [1, 1, 1, 0]),  # space after Explain:
    (GOOD_CLICK.replace(NAME, "Flowers and plants 153"), "click", NAME, BOX, [1, 1, 0, 0]),  # name with spaces
    (GOOD_CLICK.replace(NAME, "Flowers_and_plants_15"), "click", NAME, BOX, [1, 1, 0, 1]),  # another icon named
    (GOOD_CLICK + " ok", "click", NAME, BOX, [1, 1, 1, 0]),  # trailing text after the answer line
    (GOOD_CLICK.replace("(466,456)", "(466,1456)"), "click", NAME, BOX, [0, 0, 0, 0]),  # y outside 0..1000: invalid
    (COMPLETE, "click", NAME, BOX, [0, 0, 0, 1]),  # complete where a click is expected
    (COMPLETE, "complete", None, None, [1, 1, 1, 1]),  # complete on the target
    (COMPLETE.replace("target page", "the goal"), "complete", None, None, [1, 1, 0, 0]),  # target page not mentioned
    ("Action: complete", "complete", None, None, [1, 1, 0, 0]),  # no explanation at all
    (GOOD_CLICK, "complete", None, None, [0, 0, 0, 1]),  # a click where complete is expected
    ("", "click", NAME, BOX, [0, 0, 0, 0]),  # empty output
    ("I think I should click the flowers.", "click", NAME, BOX, [0, 0, 0, 0]),  # prose, no action
    ("Explain:click back icon on page_9.\tAction: click(start_box='<|box_start|>(100,50)<|box_end|>')",
     "click", "home", [779, 23, 949, 102], [1, 0, 0, 1]),  # back and home both optimal: the label (home) is scored
]


@pytest.mark.parametrize("completion, action, gt_name, bbox, expected", TABLE)
def test_st_rl_terms(completion: str, action: str, gt_name: str | None, bbox: list[int] | None,
                     expected: list[int]) -> None:
    got = rewards.st_rl_score(completion, action, gt_name, bbox)
    assert [got["type"], got["coord"], got["intent"], got["format"]] == expected


def test_batch_functions_take_columns_by_name_and_ignore_the_rest() -> None:
    completions = [row[0] for row in TABLE]
    columns = dict(action=[r[1] for r in TABLE], gt_name=[r[2] for r in TABLE], bbox_norm=[r[3] for r in TABLE],
                   solution=["unused"] * len(TABLE), trainer_state=None)
    for i, fn in enumerate([rewards.type_reward, rewards.coord_reward, rewards.intent_reward, rewards.format_reward]):
        assert fn(completions, **columns) == [float(r[4][i]) for r in TABLE], fn.__name__


def test_message_list_completions_score_their_last_message() -> None:
    conversational = [[{"role": "assistant", "content": GOOD_CLICK}]]
    assert rewards.format_reward(conversational) == [1.0]


def test_non_text_completion_scores_zero_instead_of_raising() -> None:
    assert rewards.st_rl_score(None, "click", NAME, BOX) == {"type": 0.0, "coord": 0.0, "intent": 0.0, "format": 0.0}


# (rollout_infos of a finished episode, expected terminal reward)
EPISODES = [
    ({"success": True, "said_complete": True, "page": "page_9"}, 1.0),  # complete said on the target
    ({"success": False, "said_complete": True, "page": "page_3"}, 0.0),  # early complete: reward hacking earns 0
    ({"success": False, "reached": True, "said_complete": False}, 0.0),  # passed the target, never said complete
    ({"success": False, "said_complete": False, "turns": 12}, 0.0),  # cap reached
    (None, 0.0),  # no infos (e.g. a failed rollout)
]


def test_episode_reward_is_terminal_and_strict() -> None:
    infos = [e[0] for e in EPISODES]
    assert rewards.episode_reward(["x"] * len(infos), rollout_infos=infos) == [e[1] for e in EPISODES]


def test_episode_reward_rejects_misaligned_batches() -> None:
    with pytest.raises(ValueError):
        rewards.episode_reward(["a", "b"], rollout_infos=[{"success": True}])
