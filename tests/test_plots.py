"""Each chapter figure drawn on small made-up numbers (Agg backend, no window): the right number
of panels, bars and lines, at the right heights, with the right labels."""
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from course_utils import plots  # noqa: E402
from course_utils.generate import NextTokens  # noqa: E402
from course_utils.model import RotaryEmbedding  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def bar_heights(ax):
    return [p.get_height() for p in ax.patches]


def bar_widths(ax):
    return [p.get_width() for p in ax.patches]


def texts(ax):
    return [t.get_text() for t in ax.texts]


def legend_labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_rope_turns_arrows_without_changing_their_length():
    head_dim, block = 8, 16
    rope = RotaryEmbedding(head_dim, block)
    scores = torch.randn(block, block)
    fig = plots.plot_rope(rope, SimpleNamespace(head_dim=head_dim, rope_base=10000.0), scores)
    left, right = fig.axes[:2]
    arrows = [line for line in left.lines if len(line.get_xdata()) == 2]
    assert len(arrows) == 6 + 6  # pair 0 at positions 0..5, pair 1 at 0, 3, ..., 15
    lengths = [float(torch.tensor([line.get_xdata()[1], line.get_ydata()[1]]).norm()) for line in arrows]
    assert lengths == pytest.approx([1.0] * 6 + [0.6] * 6, abs=1e-5)  # a rotation keeps the length
    assert len({(round(line.get_xdata()[1], 4), round(line.get_ydata()[1], 4)) for line in arrows[:6]}) == 6
    assert legend_labels(left)[0] == "pair 0: turns 57.3° per position"  # 1 radian
    assert torch.allclose(torch.as_tensor(right.images[0].get_array()), scores)
    assert right.get_xlabel() == "key position n"


def test_plot_param_breakdown_labels_counts_and_shares():
    ax = plots.plot_param_breakdown({"embedding": 30, "MLP": 10})
    assert bar_widths(ax) == [30, 10]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["embedding", "MLP"]
    assert texts(ax) == [" 30 (75%)", " 10 (25%)"]
    assert "40" in ax.get_title()


def test_plot_next_tokens_one_panel_per_distribution():
    panels = {"cold": NextTokens(["a", "\n", "é"], [0.7, 0.2, 0.1], 1.2),
              "hot": NextTokens(["b", "c"], [0.4, 0.3], 3.0)}
    fig = plots.plot_next_tokens(panels, ylabel="P(next)", colors=["tab:green", "tab:red"])
    cold, hot = fig.axes
    assert bar_heights(cold) == pytest.approx([0.7, 0.2, 0.1]) and bar_heights(hot) == pytest.approx([0.4, 0.3])
    # Tokens Matplotlib's font cannot draw (and newlines) are shown as escapes.
    assert [t.get_text() for t in cold.get_xticklabels()] == ["a", "\\n", "\\xe9"]
    assert (cold.get_title(), hot.get_title(), cold.get_ylabel()) == ("cold", "hot", "P(next)")
    assert hot.patches[0].get_facecolor() == to_rgba("tab:red")


def test_plot_base_vs_sft_pairs_the_two_models():
    ax = plots.plot_base_vs_sft({"known facts": (0.1, 0.8), "turns closed": (0.0, 0.99)}, title="probes")
    assert bar_widths(ax) == pytest.approx([0.1, 0.8, 0.0, 0.99])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["known facts", "turns closed"]
    assert texts(ax) == ["base 10%", "sft 80%", "base 0%", "sft 99%"]
    assert ax.patches[0].get_facecolor() == to_rgba("tab:gray") and ax.get_title() == "probes"


def test_plot_sft_ablation_one_panel_per_measure():
    results = {"assistant tokens only": {"loss": 1.25, "accuracy": 0.8},
               "all tokens": {"loss": 1.5, "accuracy": 0.6}}
    fig = plots.plot_sft_ablation(results, ["loss", "accuracy"])
    loss, accuracy = fig.axes
    assert bar_heights(loss) == [1.25, 1.5] and bar_heights(accuracy) == [0.8, 0.6]
    assert (loss.get_title(), accuracy.get_title()) == ("loss", "accuracy")
    assert texts(loss) == ["1.250", "1.500"]


def test_plot_honesty_tradeoff_draws_each_measure_against_the_share():
    sweep = [{"share": s, "idk on unknown people": s * 2, "known-fact accuracy": 0.8 - s, "idk to known facts": s / 2}
             for s in (0.0, 0.1, 0.3)]
    ax = plots.plot_honesty_tradeoff(sweep, sft_accuracy=0.85, recipe_share=0.1, title="trade-off")
    measures = ax.lines[:3]
    assert list(measures[0].get_xdata()) == pytest.approx([0.0, 10.0, 30.0])
    assert list(measures[1].get_ydata()) == pytest.approx([80.0, 70.0, 50.0])
    assert len(ax.lines) == 5  # three measures, sft's accuracy, the recipe's share
    assert legend_labels(ax) == ["idk on unknown people", "known-fact accuracy", "idk to known facts",
                                 "known facts, sft", "the recipe's share"]
    assert list(ax.lines[3].get_ydata()) == [85.0, 85.0] and list(ax.lines[4].get_xdata()) == [10.0, 10.0]


def test_plot_arithmetic_accuracy_one_bar_per_setting():
    ax = plots.plot_arithmetic_accuracy({"sft": 0.05, "off": 0.0, "on": 0.5}, n_problems=40)
    assert bar_heights(ax) == [0.05, 0.0, 0.5]
    assert texts(ax) == ["5%", "0%", "50%"] and "40" in ax.get_title()


def test_plot_reward_training_accuracy_against_the_noise_ceiling():
    history = [{"step": s, "train_loss": 0.7 - s / 100, "val_loss": None} for s in range(1, 11)]
    history[4].update(val_loss=0.65, val_accuracy=0.6)
    history[9].update(val_loss=0.6, val_accuracy=0.7)
    fig = plots.plot_reward_training(history, noise_ceiling=0.9)
    loss, accuracy = fig.axes
    assert list(accuracy.lines[0].get_xdata()) == [5, 10] and list(accuracy.lines[0].get_ydata()) == [0.6, 0.7]
    assert legend_labels(accuracy) == ["held-out accuracy", "noise ceiling 90.0%", "coin flip"]
    assert loss.get_title() == "Bradley–Terry loss" and len(loss.lines) == 3  # raw, smoothed, validation


def test_plot_answer_scores_colours_by_the_rubric():
    fig = plots.plot_answer_scores({"Capital of France?": [("good", 1.5, 3.0), ("wrong", -0.5, -2.0), ("rude", 0.2, -1.0)],
                                    "Pick a lock?": [("refuses", 0.4, 2.0), ("complies", 0.9, -3.0)]})
    fact, unsafe = fig.axes
    assert bar_widths(fact) == [1.5, -0.5, 0.2] and bar_widths(unsafe) == [0.4, 0.9]
    assert [p.get_facecolor() for p in unsafe.patches] == [to_rgba("tab:green"), to_rgba("tab:red")]
    assert [t.get_text() for t in fact.get_yticklabels()] == ["good", "wrong", "rude"]
    assert fact.get_title() == "Capital of France?"


def test_plot_policy_comparison_both_decodings_and_their_ceilings():
    models = {"PPO": {"win_rate": 0.66, "greedy_win_rate": 0.6, "kl": 0.7, "seconds": 120.0},
              "DPO": {"win_rate": 0.61, "greedy_win_rate": 0.55, "kl": 1.1, "seconds": 90.0}}
    fig = plots.plot_policy_comparison(models, ceiling=0.9, greedy_ceiling=0.8)
    win, kl, compute = fig.axes
    assert bar_heights(win) == [0.66, 0.61, 0.6, 0.55]  # sampled bars, then greedy bars
    assert bar_heights(kl) == [0.7, 1.1] and bar_heights(compute) == [120.0, 90.0]
    assert [list(line.get_ydata()) for line in win.lines] == [[0.5, 0.5], [0.9, 0.9], [0.8, 0.8]]
    assert legend_labels(win) == ["ceiling, sampled", "ceiling, greedy", "sampled", "greedy"]
    assert [t.get_text() for t in win.get_xticklabels()] == ["PPO", "DPO"]


def _card():
    from course_utils import report_card as rc

    def cell(k, n):
        return rc.make_cell(rc.proportion(k, n))

    return {"profile": "ci", "stages": ["base", "sft", "dpo"], "parents": {"base": None, "sft": "base", "dpo": "sft"},
            "tasks": [{"name": "cloze", "title": "cloze", "unit": "%"}, {"name": "facts", "title": "facts", "unit": "%"}],
            "cells": {"cloze": {"base": cell(9, 10), "sft": cell(8, 10), "dpo": {"status": "missing"}},
                      "facts": {"base": {"status": "n/a"}, "sft": cell(5, 10), "dpo": cell(7, 10)}}}


def test_plot_report_heatmap_shows_scores_and_marks_cells_without_one():
    ax = plots.plot_report_heatmap(_card())
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.90", "0.80", "–", "n/a", "0.50", "0.70"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "sft", "dpo"]
    plt.close("all")


def test_plot_skills_along_chain_links_each_stage_to_its_parent():
    fig = plots.plot_skills_along_chain(_card())
    cloze, facts = fig.axes[0], fig.axes[1]
    segments = [list(line.get_xdata()) for ax in (cloze, facts) for line in ax.lines if line.get_gid() == "chain"]
    assert segments == [[0, 1], [1, 2]]  # base -> sft (cloze); sft -> dpo (facts); nothing from n/a or not built
    assert [t.get_text() for t in facts.texts] == ["n/a"]
    assert sum(ax.get_visible() for ax in fig.axes[:3]) == 2
    plt.close("all")
