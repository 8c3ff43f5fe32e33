"""Case-study figures in the manner of the paper's: one task, the optimal path and one episode of
each model (e.g. SFT / ST-RL / MT-RL) as rows of screenshots with the click point drawn on each.

Cases are chosen deterministically: tasks that every model attempted, preferring tasks whose outcome
differs between models, then the last model succeeding, then longer paths, with distinct path lengths
first. Of each model the lowest-numbered attempt is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from gelab import format as fmt
from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator
from gelab.errors import InputError, quote
from gelab.io import atomic_directory
from gelab.report.viewer.aggregate import SUCCESS, outcome
from gelab.report.viewer.images import page_picture
from gelab.report.viewer.logs import EpisodeLog
from gelab.tasks.universe import page_number

THUMB_W = 110  # screenshot width, pixels
LABEL_W = 130  # row label column
CAPTION_H = 34  # two caption lines under each screenshot
PAD = 8
TITLE_H = 30
DISPLAY = {"sft": "SFT", "st_rl": "ST-RL", "mt_rl": "MT-RL"}
MARK, HIT, TEXT, MUTED, BAD = (226, 30, 30), (26, 156, 58), (29, 35, 48), (107, 117, 137), (179, 38, 30)


def _first_attempts(episodes: Sequence[EpisodeLog]) -> dict[str, EpisodeLog]:
    out: dict[str, EpisodeLog] = {}
    for e in sorted(episodes, key=lambda e: (e.attempt, e.key)):
        out.setdefault(e.task, e)
    return out


def choose_cases(runs: Mapping[str, Sequence[EpisodeLog]], models: Sequence[str], count: int,
                 nav: Navigator) -> list[dict[str, EpisodeLog]]:
    """Up to ``count`` cases, each model -> its episode of one common task (see the module docstring)."""
    firsts = {m: _first_attempts(runs[m]) for m in models}
    common = set.intersection(*(set(f) for f in firsts.values())) if firsts else set()
    scored = []
    for task in common:
        eps = {m: firsts[m][task] for m in models}
        e0 = eps[models[0]]
        results = [outcome(e.target, e.rows) == SUCCESS for e in eps.values()]
        length = nav.distances_to(e0.target).get(e0.start, 0)
        order = (page_number(e0.subtree), page_number(e0.start), page_number(e0.target))
        scored.append(((-len(set(results)), -results[-1], -length, order), length, eps))
    scored.sort(key=lambda s: s[0])
    chosen, lengths = [], set()
    for _, length, eps in scored:  # distinct path lengths first, then the best of the rest
        if len(chosen) < count and length not in lengths:
            chosen.append(eps)
            lengths.add(length)
    for _, _, eps in scored:
        if len(chosen) < count and eps not in chosen:
            chosen.append(eps)
    return chosen


def _clicks(n: int) -> str:
    return f"{n} click" if n == 1 else f"{n} clicks"


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


class _Sheet:
    """Draws rows of captioned screenshots."""

    def __init__(self, env: Environment, nav: Navigator, columns: int, rows: int, title: str) -> None:
        self.env, self.nav = env, nav
        cw, ch = env.structure.canvas
        self.th = round(THUMB_W * ch / cw)
        self.row_h = self.th + CAPTION_H + PAD
        width = LABEL_W + columns * (THUMB_W + PAD) + PAD
        self.img = Image.new("RGB", (width, TITLE_H + rows * self.row_h + PAD), "white")
        self.draw = ImageDraw.Draw(self.img)
        self.font = ImageFont.load_default(size=12)
        self.bold = ImageFont.load_default(size=15)
        self.draw.text((PAD, 8), title, fill=TEXT, font=self.bold)
        self._cache: dict[str, Image.Image] = {}

    def picture(self, page: str) -> Image.Image:
        if page not in self._cache:
            self._cache[page] = page_picture(self.env, page, THUMB_W)
        return self._cache[page]

    def label(self, row: int, lines: Sequence[str]) -> None:
        y = TITLE_H + row * self.row_h + 4
        for i, line in enumerate(lines):
            self.draw.text((PAD, y + 18 * i), _fit(self.draw, line, self.bold if i == 0 else self.font, LABEL_W - PAD),
                           fill=TEXT if i == 0 else MUTED, font=self.bold if i == 0 else self.font)

    def cell(self, row: int, col: int, page: str, click: Sequence[int] | None, hit: str | None,
             caption: Sequence[str], bad: bool = False) -> None:
        x0, y0 = LABEL_W + col * (THUMB_W + PAD), TITLE_H + row * self.row_h
        self.img.paste(self.picture(page), (x0, y0))
        size = (THUMB_W, self.th)
        self.draw.rectangle((x0, y0, x0 + THUMB_W - 1, y0 + self.th - 1), outline=(199, 204, 214))
        if hit is not None and page in self.nav.hotspots:
            try:
                b = self.nav.bbox_norm(page, hit)
            except KeyError:
                b = None
            if b is not None:
                p1, p2 = fmt.to_pixel_point(b[0], b[1], size), fmt.to_pixel_point(b[2], b[3], size)
                self.draw.rectangle((x0 + p1[0], y0 + p1[1], x0 + p2[0], y0 + p2[1]), outline=HIT, width=2)
        if click is not None:
            px, py = fmt.to_pixel_point(click[0], click[1], size)
            self.draw.ellipse((x0 + px - 6, y0 + py - 6, x0 + px + 6, y0 + py + 6), fill=MARK, outline="white", width=2)
        for i, line in enumerate(caption[:2]):
            self.draw.text((x0, y0 + self.th + 3 + 14 * i), _fit(self.draw, line, self.font, THUMB_W),
                           fill=BAD if bad and i == 1 else TEXT, font=self.font)


def case_figure(env: Environment, nav: Navigator, case: Mapping[str, EpisodeLog]) -> Image.Image:
    """One task: the optimal path, then one row per model."""
    e0 = next(iter(case.values()))
    optimal = nav.shortest_path(e0.start, e0.target)
    columns = max(len(optimal), *(len(e.rows) for e in case.values())) + 1
    title = f"{e0.start} -> {e0.target} (subtree {e0.subtree}, shortest path {_clicks(len(optimal))})"
    sheet = _Sheet(env, nav, columns, len(case) + 1, title)
    sheet.label(0, ["optimal", f"{len(optimal)} clicks"])
    for col, (page, action) in enumerate(optimal):
        b = nav.bbox_norm(page, action)
        sheet.cell(0, col, page, ((b[0] + b[2]) // 2, (b[1] + b[3]) // 2), action,
                   [f"{col + 1}. {action}", f"-> {nav.edges[page][action]}"])
    sheet.cell(0, len(optimal), e0.target, None, None, [f"{len(optimal) + 1}. complete", "on the target"])
    for row, (model, e) in enumerate(case.items(), start=1):
        result = outcome(e.target, e.rows)
        sheet.label(row, [DISPLAY.get(model, model), result.replace("_", " "), f"attempt {e.attempt}, {len(e.rows)} steps"])
        for col, r in enumerate(e.rows):
            if r["action"] == fmt.COMPLETE:
                first = f"{col + 1}. complete"
            elif r["action"] == fmt.INVALID:
                first = f"{col + 1}. invalid output"
            else:
                first = f"{col + 1}. {r['claimed'] or '(no name)'}"
            second = r["error"] or (f"-> {r['new_page']}" if r["new_page"] != r["page"] else "")
            sheet.cell(row, col, r["page"], r["click"], r["hit"], [first, second], bad=bool(r["error"]))
        end = e.rows[-1]["new_page"] if e.rows else e.start
        sheet.cell(row, len(e.rows), end, None, None, ["end", "on the target" if end == e.target else f"not {e.target}"],
                   bad=end != e.target)
    return sheet.img


def write_cases(out: str | Path, env: Environment, runs: Mapping[str, Sequence[EpisodeLog]],
                models: Sequence[str], count: int = 3, progress: bool = True) -> list[Path]:
    """Write ``case_1.png`` … into the folder ``out`` (replaced whole); returns the files."""
    return save_cases(out, case_figures(env, runs, models, count, progress))


def save_cases(out: str | Path, figures: Sequence[Image.Image]) -> list[Path]:
    """Write drawn case studies into the folder ``out`` (replaced whole, atomically)."""
    with atomic_directory(out) as tmp:
        for i, fig in enumerate(figures, start=1):
            fig.save(tmp / f"case_{i}.png", format="PNG", optimize=True)
    return [Path(out) / f"case_{i}.png" for i in range(1, len(figures) + 1)]


def case_figures(env: Environment, runs: Mapping[str, Sequence[EpisodeLog]], models: Sequence[str],
                 count: int = 3, progress: bool = True) -> list[Image.Image]:
    """The case-study figures, drawn in memory (nothing is written)."""
    missing = [m for m in models if m not in runs]
    if missing:
        raise InputError(f"case studies: no trajectory log for model {quote(missing[0])} "
                         f"(logs: {', '.join(runs) or 'none'})")
    if count < 0:
        raise InputError(f"case studies: count must be 0 or more, got {count}")
    nav = Navigator(env.structure)
    cases = choose_cases(runs, list(models), count, nav) if models else []
    with tqdm(cases, desc="view: case studies", disable=not progress) as bar:
        return [case_figure(env, nav, c) for c in bar]
