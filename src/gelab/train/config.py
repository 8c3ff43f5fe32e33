"""What a training stage is given: the training sections of a params file (:class:`TrainParams`), the
stage names, and the one error type of the training rooms (:class:`TrainError`)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from gelab.errors import GelabError, InputError, quote
from gelab.params import (
    LaunchParams,
    ModelParams,
    ParamsError,
    RlParams,
    SftParams,
    load_section,
    visual_tokens,
)


STAGES = ("sft", "st_rl", "mt_rl")


class TrainError(GelabError):
    """A training stage cannot run or failed; the message says what to fix."""


class TrainParams(msgspec.Struct, frozen=True, kw_only=True):
    """The training sections of a params file."""

    model: ModelParams
    launch: LaunchParams
    sft: SftParams
    st_rl: RlParams
    mt_rl: RlParams

    @classmethod
    def load(cls, path: str | Path) -> "TrainParams":
        tp = cls(model=load_section(path, "model", ModelParams), launch=load_section(path, "launch", LaunchParams),
                 sft=load_section(path, "sft", SftParams), st_rl=load_section(path, "st_rl", RlParams),
                 mt_rl=load_section(path, "mt_rl", RlParams))
        tp.check(path)
        return tp

    def check(self, path: str | Path) -> None:
        """Rules across sections: an RL prompt's image and answer fit ``max_length`` (vLLM's context)."""
        image = visual_tokens(self.model.max_pixels)
        for stage in ("st_rl", "mt_rl"):
            p = self.stage(stage)
            if p.max_length < image + p.max_completion_length:
                raise ParamsError(f"{path}: {stage}.max_length: {p.max_length} tokens cannot hold one image "
                                  f"({image} tokens at model.max_pixels {self.model.max_pixels}) and the answer "
                                  f"({p.max_completion_length}, max_completion_length)")

    def stage(self, name: str) -> SftParams | RlParams:
        if name not in STAGES:
            raise InputError(f"unknown stage {quote(name)} (known: {', '.join(STAGES)})")
        return getattr(self, name)
