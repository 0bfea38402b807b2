"""What each trained stage reaches against the course's quality targets (COURSE_PLAN.md); prints JSON.

The numbers are the ones each stage measured and stored in its ``metrics.json`` when it was
built (by the chapter, ``make course`` or ``ensure_stage``), so this script trains nothing
that already exists. A missing stage is built first, headless, in the active profile: from
scratch in ``cpu`` that is the whole chain, about half an hour on 2 cores.

    COURSE_PROFILE=cpu .venv/bin/python benchmarks/stage_targets.py
"""
import json
import os

from course_utils import config, stages

# (stage, measure, key in the stage's metrics, comparison, target): the table of COURSE_PLAN.md
TARGETS = (
    ("base", "cloze fact recall, top-1", "cloze_top1", ">=", 0.80),
    ("sft", "known-fact questions answered", "known_fact_accuracy", ">=", 0.80),
    ("sft", "turns closed with <|im_end|>", "end_token_rate", ">=", 0.99),
    ("sft", "held-out phrasings: accuracy relative to training phrasings", "heldout_phrasing_ratio", ">=", 0.85),
    ("sft", "held-out phrasings: harmless questions refused", "heldout_phrasing_refusal_rate", "<=", 0.02),
    ("sft_tools", "'I don't know' on unknown people", "unknown_idk_rate", ">=", 0.90),
    ("sft_tools", "known-fact drop from sft (points)", "known_fact_drop", "<=", 5.0),
    ("sft_tools", "3-digit arithmetic with the calculator", "arithmetic_tool_accuracy", ">=", 0.95),
    ("reward", "held-out pairwise accuracy", "accuracy", ">=", 0.85),
    ("rlhf", "win-rate ceiling at temperature 1", "win_rate_ceiling", ">=", 0.85),
    ("rlhf", "win rate vs sft_tools at temperature 1 (hidden rubric)", "win_rate", ">=", 0.65),
    ("rlhf", "win rate vs sft_tools, all greedy", "greedy_win_rate", ">", 0.5),
    ("dpo", "win rate vs sft_tools at temperature 1 (hidden rubric)", "win_rate", ">=", 0.60),
    ("dpo", "win rate vs sft_tools, all greedy", "greedy_win_rate", ">", 0.5),
    ("reasoning", "held-out word problems (difficulty 3-5, greedy): gain over rlhf (points)", "gain_over_rlhf_pts",
     ">=", 20.0),
    ("reasoning", "known facts: drop from rlhf (points)", "known_fact_accuracy_drop_pts", "<=", 5.0),
    ("reasoning", "'I don't know' on unknown people: drop from rlhf (points)", "unknown_idk_rate_drop_pts", "<=", 5.0),
    ("reasoning", "3-digit arithmetic with the calculator: drop from rlhf (points)",
     "arithmetic_tool_accuracy_drop_pts", "<=", 5.0),
    ("vision", "held-out pictures: which country's flag", "flag_accuracy", ">=", 0.90),
    ("vision", "held-out pictures: colour questions", "colour_accuracy", ">=", 0.80),
    ("vision", "held-out pictures: count questions", "count_accuracy", ">=", 0.80),
    ("vision", "blank picture: points above always giving the most common answer (worst kind)",
     "blank_over_constant_pts", "<=", 0.0),
    ("vision", "known facts: drop from sft_tools (points)", "known_fact_accuracy_drop_pts", "<=", 5.0),
    ("vision", "'I don't know' on unknown people: drop from sft_tools (points)", "unknown_idk_rate_drop_pts", "<=", 5.0),
    ("vision", "3-digit arithmetic with the calculator: drop from sft_tools (points)",
     "arithmetic_tool_accuracy_drop_pts", "<=", 5.0),
)
# Reported beside the targets: what a number means depends on these.
CONTEXT = {"sft": ("known_fact_accuracy", "heldout_phrasing_accuracy"),
           "reward": ("noise_ceiling", "rubric_agreement"),
           "rlhf": ("eval_kl", "wins", "ties", "losses", "greedy_wins", "greedy_ties", "greedy_losses",
                    "greedy_win_rate_ceiling"),
           "dpo": ("eval_kl", "wins", "ties", "losses", "win_rate_ceiling", "greedy_wins", "greedy_ties",
                   "greedy_losses", "greedy_win_rate_ceiling"),
           "reasoning": ("word_problem_accuracy_rlhf", "word_problem_accuracy_warmup", "word_problem_accuracy",
                         "gain_over_warmup_pts", "word_problem_accuracy_zh", "by_difficulty", "pass_at_k",
                         "pass_at_k_rlhf", "word_problem_n"),
           "vision": tuple(f"{kind}_{what}" for kind in ("flag", "colour", "count")
                           for what in ("accuracy_aligned", "blank_accuracy", "shuffled_accuracy", "constant_guess",
                                        "chance", "n"))}


def compare(metrics: dict[str, dict]) -> dict:
    """``metrics[stage]`` -> ``{stage: {"measures": [{measure, value, target, met}], **context}}``."""
    out = {}
    for stage, measure, key, op, target in TARGETS:
        value = metrics[stage][key]
        met = {">=": value >= target, ">": value > target, "<=": value <= target}[op]
        row = out.setdefault(stage, {"measures": []})
        row["measures"].append({"measure": measure, "value": value, "target": f"{op} {target}", "met": bool(met)})
    for stage, keys in CONTEXT.items():
        out[stage].update({k: metrics[stage][k] for k in keys if k in metrics[stage]})
    return out


def main() -> dict:
    names = list(dict.fromkeys(stage for stage, *_ in TARGETS))
    metrics = {name: stages.ensure_stage(name).metrics for name in names}
    results = compare(metrics)
    report = {"profile": config.profile(), "cpu_count": os.cpu_count(), "stages": results,
              "met": sum(m["met"] for r in results.values() for m in r["measures"]),
              "of": sum(len(r["measures"]) for r in results.values())}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
