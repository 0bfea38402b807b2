"""The map of the course: its chapters, the stage each one makes, and a picture of the pipeline."""
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


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    makes: str  # the stage or artefact it hands on ("" when it only teaches)
    phase: str


CHAPTERS = (
    Chapter(0, "Orientation", "", "data"),
    Chapter(1, "Collecting and cleaning data", "clean", "data"),
    Chapter(2, "Tokenization", "tokenizer", "data"),
    Chapter(3, "The transformer", "", "textbook"),
    Chapter(4, "Pretraining", "base", "textbook"),
    Chapter(5, "The base model", "", "textbook"),
    Chapter(6, "Supervised fine-tuning", "sft", "examples"),
    Chapter(7, "Hallucination and tools", "sft_tools", "examples"),
    Chapter(8, "Human preferences", "reward", "exercises"),
    Chapter(9, "RLHF and DPO", "rlhf, dpo", "exercises"),
    Chapter(10, "Reasoning by reinforcement", "reasoning", "exercises"),
    Chapter(11, "Going vertical (LoRA)", "domain", "examples"),
    Chapter(12, "Evaluation", "report card", "ship"),
    Chapter(13, "Small and fast", "distilled", "ship"),
    Chapter(14, "Scaling out", "", "ship"),
)


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
