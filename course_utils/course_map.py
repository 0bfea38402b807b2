"""The map of the course: its chapters, the stage each one makes, how long each one runs, and a
picture of the pipeline.

This is the one place a chapter's expected ``Run All`` time is written down: each notebook's top
cell and the README's chapter table state it in the words :func:`run_time_line` and
:func:`readme_time` give, and ``tests/test_course_map.py`` checks that they do. Adding a chapter is
one line in :data:`CHAPTERS`.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

# The student analogy from the seed articles: a model learns like a student who first reads
# the textbooks (pretraining), then studies worked examples (fine-tuning), then practises
# exercises with feedback (reinforcement learning).
PHASES = {
    "data": ("Gather the library", "#9e9e9e"),
    "textbook": ("Read the textbooks: pretraining", "#4c72b0"),
    "examples": ("Study worked examples: fine-tuning", "#55a868"),
    "exercises": ("Practise exercises with feedback: RL", "#c44e52"),
    "ship": ("Check, shrink and scale", "#8172b2"),
}


class Estimate(float):
    """A run time in minutes worked out from the arithmetic of a chapter, not timed: ``est(6)``."""


est = Estimate


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    makes: str  # the stage or artefact it hands on ("" when it only teaches)
    phase: str
    # Minutes of `Run All`, starting from the previous chapter's stages (None: not written yet).
    # cpu: a 2-core laptop; gpu: a free Colab GPU (a T4). A plain number was timed; est(...) was not.
    cpu: float | None = None
    gpu: float | None = None


# The cpu times: 06-09 timed on an idle 2-core machine, 00-03 and 05 on a busy one, 14 on a busy
# one with one thread, 15 on a quiet one with one thread, 12 on a busy one with one thread (its
# report card not yet cached, the ci profile's already built), 04 estimated from its CPU time, 10
# estimated (not yet timed). The gpu profile has never run on a GPU: its times
# are estimates from each chapter's training arithmetic (about 6 x parameters x tokens at the ~3.5
# TFLOP/s a T4 sustains in float32) plus its sampling; see README "Chapters".
CHAPTERS = (
    Chapter(0, "Orientation", "", "data", cpu=10 / 60, gpu=est(10 / 60)),
    Chapter(1, "Collecting and cleaning data", "clean", "data", cpu=1, gpu=est(6)),
    Chapter(2, "Tokenization", "tokenizer", "data", cpu=40 / 60, gpu=est(2)),
    Chapter(3, "The transformer", "", "textbook", cpu=20 / 60, gpu=est(0.5)),
    Chapter(4, "Pretraining", "base", "textbook", cpu=est(6), gpu=est(60)),
    Chapter(5, "The base model", "", "textbook", cpu=1, gpu=est(2)),
    Chapter(6, "Supervised fine-tuning", "sft", "examples", cpu=4.2, gpu=est(8)),
    Chapter(7, "Hallucination and tools", "sft_tools", "examples", cpu=4.2, gpu=est(10)),
    Chapter(8, "Human preferences", "reward", "exercises", cpu=3.3, gpu=est(15)),
    Chapter(9, "RLHF and DPO", "rlhf, dpo", "exercises", cpu=4.9, gpu=est(20)),
    Chapter(10, "Reasoning by reinforcement", "reasoning", "exercises", cpu=est(7), gpu=est(25)),
    Chapter(11, "Going vertical (LoRA)", "domain", "examples"),
    Chapter(12, "Evaluation", "report card", "ship", cpu=1.7, gpu=est(5)),
    Chapter(13, "Small and fast", "distilled", "ship"),
    Chapter(14, "Scaling out", "", "ship", cpu=4.4, gpu=est(8)),
    Chapter(15, "A model that sees", "vision", "examples", cpu=4.6, gpu=est(6)),
)


def chapter(number: int) -> Chapter:
    for ch in CHAPTERS:
        if ch.number == number:
            return ch
    raise KeyError(f"No chapter {number} in course_map.CHAPTERS (chapters: {[c.number for c in CHAPTERS]}).")


# ----------------------------------------------------------------------------- run times in words

def _spoken(minutes: float) -> str:
    """4.2 -> "about 4 minutes", 0.67 -> "about 40 seconds": what a learner plans with."""
    if minutes < 1:
        return f"about {max(10, round(minutes * 6) * 10)} seconds"
    whole = max(1, round(minutes))
    return f"about {whole} minute{'s' if whole > 1 else ''}"


def run_time_line(ch: Chapter) -> str:
    """The run-time sentence every chapter's top cell carries, word for word."""
    if ch.cpu is None or ch.gpu is None:
        raise ValueError(f"Chapter {ch.number:02d} has no run times in course_map.CHAPTERS yet.")

    def profile(name, minutes):
        return f"`{name}` profile" + (", estimated" if isinstance(minutes, Estimate) else "")

    return (f"**Run time** (`Run All`, from the previous chapter's stages): {_spoken(ch.cpu)} on a 2-core "
            f"laptop ({profile('cpu', ch.cpu)}), {_spoken(ch.gpu)} on a Colab GPU ({profile('gpu', ch.gpu)}).")


def readme_time(minutes: float | None) -> str:
    """A run time as the README's chapter table shows it: "4.2 min", "~40 s", "≈ 6 min (est.)"."""
    if minutes is None:
        return "–"
    if isinstance(minutes, Estimate):
        return "≈ " + (f"{round(minutes * 60, -1):.0f} s" if minutes < 1 else f"{minutes:.0f} min") + " (est.)"
    if minutes < 1:
        return f"~{max(10, round(minutes * 6) * 10)} s"
    return f"{minutes:g} min"


def draw_pipeline(chapters=CHAPTERS, ax=None):
    """Draw the chapters as a snake of boxes coloured by phase of the student analogy."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, Patch

    per_row = 5
    rows = (len(chapters) + per_row - 1) // per_row
    if ax is None:
        _, ax = plt.subplots(figsize=(13, 1.9 * rows + 1.2))
    box_w, box_h, gap_x, gap_y = 2.2, 1.1, 0.6, 0.9
    centres = []
    for i, ch in enumerate(chapters):
        row, col = divmod(i, per_row)
        if row % 2:  # snake back so each arrow stays short
            col = per_row - 1 - col
        x = col * (box_w + gap_x)
        y = -row * (box_h + gap_y)
        colour = PHASES[ch.phase][1]
        ax.add_patch(FancyBboxPatch((x, y), box_w, box_h, boxstyle="round,pad=0.05",
                                    facecolor=colour, alpha=0.85, edgecolor="black"))
        label = textwrap.fill(f"{ch.number:02d} {ch.title}", 20)
        if ch.makes:
            label += f"\n→ {ch.makes}"
        ax.text(x + box_w / 2, y + box_h / 2, label, ha="center", va="center", fontsize=8.5,
                color="white")
        centres.append((x, y))
    for (x0, y0), (x1, y1) in zip(centres, centres[1:]):
        if y0 == y1:
            start = (x0 + box_w, y0 + box_h / 2) if x1 > x0 else (x0, y0 + box_h / 2)
            end = (x1, y1 + box_h / 2) if x1 > x0 else (x1 + box_w, y1 + box_h / 2)
        else:
            start, end = (x0 + box_w / 2, y0), (x1 + box_w / 2, y1 + box_h)
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", lw=1.5))
    ax.legend(handles=[Patch(color=c, label=name) for name, c in PHASES.values()],
              loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False)
    ax.set_xlim(-0.3, per_row * (box_w + gap_x))
    ax.set_ylim(-(rows - 1) * (box_h + gap_y) - 0.3, box_h + 0.3)
    ax.set_axis_off()
    ax.set_title("From raw web text to a chat model: one notebook per stage")
    return ax
