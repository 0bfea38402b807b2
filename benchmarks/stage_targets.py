"""What each trained stage reaches against the course's quality targets (COURSE_PLAN.md); prints JSON.

One source of truth: a figure the report card measures (chapter 12, :mod:`course_utils.report_card`)
is read from the card, so the targets table and the card can never disagree; the rest are the
numbers each stage measured and stored in its ``metrics.json`` when it was built (by the chapter,
``make course`` or ``ensure_stage``). The card's figures are cached beside each stage, so this
script trains and evaluates nothing that is already done. A missing stage is built first,
headless, in the active profile: from scratch in ``cpu`` that is the whole chain, about half an
hour on 2 cores.

    COURSE_PROFILE=cpu .venv/bin/python benchmarks/stage_targets.py
"""
import json
import os

from course_utils import config, report_card, stages

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
        row["measures"].append({"measure": measure, "metric": key, "value": value, "target": f"{op} {target}",
                                "met": bool(met)})
    for stage, keys in CONTEXT.items():
        out[stage].update({k: metrics[stage][k] for k in keys if k in metrics[stage]})
    return out


# The card's tasks whose change from the stage a stage was trained from is a target (a drop, or
# the word problems' gain), under the names the chapters store them.
CHANGES = ("known_fact_accuracy", "unknown_idk_rate", "arithmetic_tool_accuracy")


def card_metrics(card: dict) -> dict[str, dict]:
    """The report card's figures as stage metrics (:func:`course_utils.report_card.metrics_of`),
    with each stage's change from the card stage it was trained from, in points."""
    out = {stage: report_card.metrics_of(card, stage) for stage in card["stages"]}
    for stage, parent in card["parents"].items():
        if not parent:
            continue
        now, before = out[stage], out[parent]
        for key in CHANGES:
            if key in now and key in before:
                now[f"{key}_drop_pts"] = round(100 * (before[key] - now[key]), 2)
        if "word_problem_accuracy" in now and "word_problem_accuracy" in before:
            now[f"gain_over_{parent}_pts"] = round(100 * (now["word_problem_accuracy"] -
                                                          before["word_problem_accuracy"]), 2)
    if "known_fact_accuracy_drop_pts" in out.get("sft_tools", {}):  # chapter 07's name for it
        out["sft_tools"]["known_fact_drop"] = out["sft_tools"]["known_fact_accuracy_drop_pts"]
    return out


def main() -> dict:
    names = list(dict.fromkeys(stage for stage, *_ in TARGETS))
    stored = {name: stages.ensure_stage(name).metrics for name in names}
    from_card = card_metrics(report_card.build(write=False))
    metrics = {name: {**stored[name], **from_card.get(name, {})} for name in names}
    results = compare(metrics)
    for stage, row in results.items():
        for m in row["measures"]:
            m["source"] = "report card" if m["metric"] in from_card.get(stage, {}) else "stage metrics"
    report = {"profile": config.profile(), "cpu_count": os.cpu_count(), "stages": results,
              "met": sum(m["met"] for r in results.values() for m in r["measures"]),
              "of": sum(len(r["measures"]) for r in results.values()),
              # A figure the stage stored when it was built and the card's own, where they differ:
              # none, unless a stage was evaluated differently when it was built.
              "stored_vs_card": {name: {k: {"stored": stored[name][k], "card": v}
                                        for k, v in from_card.get(name, {}).items()
                                        if k in stored[name] and stored[name][k] != v} for name in names}}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
