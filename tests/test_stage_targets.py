"""benchmarks/stage_targets.py: the comparison with the course's targets."""
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "stage_targets.py"


def _module():
    spec = importlib.util.spec_from_file_location("stage_targets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metrics(**changes):
    metrics = {"base": {"cloze_top1": 0.97},
               "sft": {"known_fact_accuracy": 0.82, "end_token_rate": 0.99, "heldout_phrasing_ratio": 0.9,
                       "heldout_phrasing_refusal_rate": 0.01},
               "sft_tools": {"unknown_idk_rate": 0.9, "known_fact_drop": 4.5, "arithmetic_tool_accuracy": 0.96},
               "reward": {"accuracy": 0.78, "noise_ceiling": 0.95, "rubric_agreement": 0.8},
               "rlhf": {"win_rate": 0.43, "eval_kl": 2.9, "wins": 1, "ties": 2, "losses": 3, "win_rate_ceiling": 0.648,
                        "greedy_win_rate": 0.5},
               "dpo": {"win_rate": 0.61, "eval_kl": 0.8, "wins": 3, "ties": 2, "losses": 1, "greedy_win_rate": 0.55},
               "reasoning": {"gain_over_rlhf_pts": 21.0, "known_fact_accuracy_drop_pts": 6.0,
                             "unknown_idk_rate_drop_pts": -1.0, "arithmetic_tool_accuracy_drop_pts": 5.0},
               "vision": {"flag_accuracy": 0.95, "colour_accuracy": 0.9, "count_accuracy": 0.79,
                          "blank_over_constant_pts": 0.0, "known_fact_accuracy_drop_pts": 2.0,
                          "unknown_idk_rate_drop_pts": 6.0, "arithmetic_tool_accuracy_drop_pts": -1.0,
                          "flag_blank_accuracy": 0.02}}
    for key, value in changes.items():
        stage, name = key.split("__")
        metrics[stage][name] = value
    return metrics


def _met(results, stage, key_word):
    return next(m["met"] for m in results[stage]["measures"] if key_word in m["measure"])


def test_targets_are_compared_in_the_right_direction():
    compare = _module().compare
    results = compare(_metrics())
    assert _met(results, "sft", "closed") and _met(results, "sft_tools", "drop") and _met(results, "dpo", "win rate")
    assert not _met(results, "reward", "accuracy") and not _met(results, "rlhf", "win rate")
    assert not _met(results, "rlhf", "ceiling") and _met(results, "dpo", "all greedy")
    # "Also wins when all decode greedily": a tie (50 %) is not a win.
    assert not _met(results, "rlhf", "all greedy")
    assert not _met(compare(_metrics(sft__heldout_phrasing_refusal_rate=0.03)), "sft", "refused")
    # A drop is better when smaller; everything else when larger.
    assert not _met(compare(_metrics(sft_tools__known_fact_drop=5.1)), "sft_tools", "drop")
    assert not _met(compare(_metrics(sft__end_token_rate=0.968)), "sft", "closed")
    assert results["reward"]["noise_ceiling"] == 0.95 and results["rlhf"]["eval_kl"] == 2.9
    # Context is reported when the stage has it (older stages lack the ceiling).
    assert next(m["value"] for m in results["rlhf"]["measures"] if "ceiling" in m["measure"]) == 0.648
    assert "win_rate_ceiling" not in results["dpo"] and results["dpo"]["wins"] == 3
    # Reasoning: a gain must reach its target, a drop must stay under its limit.
    assert _met(results, "reasoning", "gain") and not _met(results, "reasoning", "known facts")
    assert _met(results, "reasoning", "know' on") and _met(results, "reasoning", "calculator")
    assert not _met(compare(_metrics(reasoning__gain_over_rlhf_pts=19.9)), "reasoning", "gain")
    # Vision: a blank picture may match the constant guess but not beat it; drops are better when smaller.
    assert _met(results, "vision", "flag") and not _met(results, "vision", "count questions")
    assert _met(results, "vision", "blank picture") and not _met(results, "vision", "'I don't know'")
    assert not _met(compare(_metrics(vision__blank_over_constant_pts=0.5)), "vision", "blank picture")
    assert results["vision"]["flag_blank_accuracy"] == 0.02


def test_every_target_names_a_metric_the_stage_builders_write():
    """A misspelt key would make the benchmark fail only after half an hour of training."""
    package = Path(__file__).resolve().parent.parent / "course_utils"
    builders = {"base": "pretrain.py", "sft": "evals.py", "sft_tools": "sft.py", "reward": "reward.py",
                "rlhf": "rl.py", "dpo": "rl.py", "reasoning": "grpo.py", "vision": "vision.py"}
    for stage, _, key, _, _ in _module().TARGETS:
        sources = (package / builders[stage]).read_text() + (package / "evals.py").read_text()
        assert f'"{key}"' in sources, (stage, key)


def test_the_figures_the_report_card_measures_are_read_from_it():
    """One source of truth: the targets the card measures use the card's figures, and each stage's
    change is taken from the card stage it was trained from."""
    from course_utils import report_card as rc

    def cell(k, n):
        return rc.make_cell(rc.proportion(k, n))

    names = ["sft", "sft_tools", "rlhf", "reasoning"]
    card = {"stages": names, "parents": {"sft": None, "sft_tools": "sft", "rlhf": "sft_tools", "reasoning": "rlhf"},
            "tasks": [], "cells": {
                "known_facts": {"sft": cell(80, 100), "sft_tools": cell(76, 100), "rlhf": cell(90, 100),
                                "reasoning": cell(84, 100)},
                "word_problems": {"sft": cell(0, 50), "sft_tools": cell(0, 50), "rlhf": cell(1, 50),
                                  "reasoning": cell(16, 50)},
                "unknown_people": {"sft": cell(0, 10), "sft_tools": cell(9, 10), "rlhf": {"status": "missing"},
                                   "reasoning": cell(8, 10)}}}
    figures = _module().card_metrics(card)
    assert figures["sft_tools"]["known_fact_accuracy"] == 0.76 and figures["sft_tools"]["known_fact_drop"] == 4.0
    assert figures["reasoning"]["gain_over_rlhf_pts"] == 30.0
    assert figures["reasoning"]["known_fact_accuracy_drop_pts"] == 6.0
    assert "unknown_idk_rate_drop_pts" not in figures["reasoning"]  # rlhf was not graded: no change to report
    results = _module().compare({**_metrics(), **{s: {**_metrics()[s], **figures[s]} for s in ("sft_tools",
                                                                                               "reasoning")}})
    assert _met(results, "sft_tools", "drop") and not _met(results, "reasoning", "known facts")
