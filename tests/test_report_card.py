"""The report card: intervals and normalised scores on hand examples, n/a cells, the cache beside
each stage, and a markdown table that says what the JSON says."""
import json
import re

import pytest

from course_utils import report_card as rc
from course_utils import stages


# ----------------------------------------------------------------------------- hand examples

@pytest.mark.parametrize("successes, n, low, high", [
    (5, 10, 0.2366, 0.7634),    # z = 1.96: centre 0.5, half-width 1.96 * sqrt(0.025 + 0.0096) / 1.384
    (0, 10, 0.0, 0.2775),       # not zero-width at 0 %: upper end z² / (n + z²)
    (10, 10, 0.7225, 1.0),
    (50, 100, 0.4038, 0.5962),
    (81, 263, 0.2553, 0.3662),  # Wilson's interval for 81 of 263 (a textbook example)
])
def test_wilson_interval_on_hand_examples(successes, n, low, high):
    got = rc.wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_narrows_with_more_items_and_knows_nothing_of_no_items():
    small, large = rc.wilson_interval(8, 10), rc.wilson_interval(800, 1000)
    assert small[1] - small[0] > 5 * (large[1] - large[0])
    assert rc.wilson_interval(0, 0) == (0.0, 1.0)


def test_normalised_scores_on_hand_examples():
    assert rc.normalised(0.625, chance=0.25, perfect=1.0) == pytest.approx(0.5)  # 4-way multiple choice
    assert rc.normalised(0.7, chance=0.5, perfect=0.9) == pytest.approx(0.5)     # a win rate below its ceiling
    assert rc.normalised(1.0, chance=4.0, perfect=0.0) == pytest.approx(0.75)    # bits per byte: lower is better
    assert rc.normalised(0.4, chance=0.5, perfect=1.0) == pytest.approx(-0.2)    # worse than chance is negative
    assert rc.normalised(0.5, chance=0.5, perfect=0.5) is None                   # no room above chance: no score


def test_a_cell_normalises_its_interval_too_even_when_lower_is_better():
    cell = rc.make_cell(rc.estimate(1.0, 0.8, 1.2, 40, chance=4.0, perfect=0.0))
    assert cell["score"] == pytest.approx(0.75)
    assert (cell["score_low"], cell["score_high"]) == pytest.approx((0.7, 0.8))
    share = rc.make_cell(rc.proportion(3, 4, chance=0.25))
    assert share["value"] == 0.75 and share["score"] == pytest.approx(2 / 3)
    assert (share["low"], share["high"]) == pytest.approx(rc.wilson_interval(3, 4))


def test_ratio_interval_on_hand_examples():
    value, low, high = rc.ratio_interval([1.0, 2.0, 3.0], [10.0, 20.0, 30.0])  # every item at the same ratio
    assert (value, low, high) == pytest.approx((0.1, 0.1, 0.1))
    value, low, high = rc.ratio_interval([1.0, 3.0], [10.0, 10.0])
    # residuals -1, +1 around 0.2: se = sqrt(2/1 * 2) / 20 = 0.1
    assert value == pytest.approx(0.2) and (low, high) == pytest.approx((0.2 - 1.959964 * 0.1, 0.2 + 1.959964 * 0.1))


# ----------------------------------------------------------------------------- building a card

def _save(name, content="v1"):
    stages.save_stage(name, {"weights.txt": content})


def _tasks(calls):
    """Two tasks that record which stages they measured: one for any model, one for chat models."""

    def text_task(s):
        calls.append(("text", s.name))
        return rc.estimate(1.0 + len(s.name) / 10, 0.9, 1.6, 12, chance=4.0, perfect=0.0)

    def chat_task(s):
        calls.append(("chat", s.name))
        return rc.proportion(len(s.name), 20)

    return (rc.Task("text", "a text task", text_task, chat=False, unit="bits/byte"),
            rc.Task("chat", "a chat task", chat_task))


def _build(calls, names=("base", "sft"), **kw):
    return rc.build(names, tasks=_tasks(calls), build_missing=False, progress=False, **kw)


def test_a_task_that_does_not_apply_is_skipped_and_shown_as_not_applicable():
    _save("base"), _save("sft")
    calls = []
    card = _build(calls)
    assert sorted(calls) == [("chat", "sft"), ("text", "base"), ("text", "sft")]  # no chat question to base
    assert card["cells"]["chat"]["base"] == {"status": "n/a"}
    assert card["cells"]["chat"]["sft"]["value"] == pytest.approx(3 / 20)
    assert "n/a" in rc.markdown(card).splitlines()[-1]


def test_a_stage_not_built_is_not_evaluated_and_says_so():
    _save("base")
    calls = []
    card = _build(calls)
    assert all(name == "base" for _, name in calls)
    assert card["cells"]["text"]["sft"] == {"status": "missing"}
    assert "not built" in rc.markdown(card)


def test_the_cache_is_used_until_the_stage_is_rebuilt():
    _save("base"), _save("sft")
    calls = []
    first = _build(calls)
    assert first["evaluated"] == 3 and rc.cache_path("sft").exists()
    calls.clear()
    again = _build(calls)
    assert calls == [] and again["evaluated"] == 0 and again["cells"] == first["cells"]
    _save("sft", "v2")  # rebuilt: new weights, new checksum
    again = _build(calls)
    assert sorted(calls) == [("chat", "sft"), ("text", "sft")] and again["evaluated"] == 2
    assert json.loads(rc.cache_path("sft").read_text())["checksum"] == rc.stage_checksum(stages.load_stage("sft"))


def test_a_new_task_version_or_a_rebuilt_baseline_is_measured_again():
    _save("base"), _save("sft"), _save("sft_tools")
    calls = []
    _build(calls)
    text, chat = _tasks(calls)
    calls.clear()
    rc.build(("base", "sft"), tasks=(text, rc.Task("chat", "a chat task", chat.measure, version=2)),
             build_missing=False, progress=False)
    assert calls == [("chat", "sft")]
    against = rc.Task("chat", "a chat task", chat.measure, depends_on=("sft_tools",))
    rc.build(("sft",), tasks=(against,), build_missing=False, progress=False)
    calls.clear()
    rc.build(("sft",), tasks=(against,), build_missing=False, progress=False)
    assert calls == []
    _save("sft_tools", "v2")
    rc.build(("sft",), tasks=(against,), build_missing=False, progress=False)
    assert calls == [("chat", "sft")]


def test_the_card_is_written_as_json_and_markdown():
    _save("base"), _save("sft")
    card = _build([])
    json_path, md_path = rc.card_paths()
    assert rc.load_card(json_path) == card
    assert md_path.read_text(encoding="utf-8").strip() == rc.markdown(card)


CELL = re.compile(r"^(-?[\d.]+)( %)? \[(-?[\d.]+), (-?[\d.]+)\] n=(\d+) · (-?[\d.]+|–)$")


def test_the_markdown_table_renders_the_json_faithfully():
    _save("base"), _save("sft")
    card = _build([], write=False)
    lines = rc.markdown(card).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| task |"))
    assert [c.strip() for c in lines[header].strip("|").split("|")][1:] == card["stages"]
    rows = lines[header + 2:]
    assert len(rows) == len(card["tasks"])
    for task, row in zip(card["tasks"], rows):
        columns = [c.strip() for c in row.strip("|").split("|")]
        assert columns[0].startswith(task["title"])
        for stage, text in zip(card["stages"], columns[1:]):
            cell = card["cells"][task["name"]][stage]
            if cell["status"] == "n/a":
                assert text == "n/a"
                continue
            value, percent, low, high, n, score = CELL.match(text).groups()
            scale = 100 if percent else 1
            tolerance = 0.051 if percent else 0.00051
            for shown, true in ((value, cell["value"]), (low, cell["low"]), (high, cell["high"])):
                assert abs(float(shown) - scale * true) <= tolerance, (task["name"], stage, text)
            assert int(n) == cell["n"] and abs(float(score) - cell["score"]) <= 0.0051


# ----------------------------------------------------------------------------- reading cards

def _card(cells: dict, stages_=("sft", "sft_tools"), parents=None):
    tasks = [{"name": t, "title": t, "unit": "%", "chat": True} for t in cells]
    return {"stages": list(stages_), "tasks": tasks, "parents": parents or {"sft": None, "sft_tools": "sft"},
            "cells": {t: {s: rc.make_cell(rc.proportion(k, n)) for s, (k, n) in row.items()}
                      for t, row in cells.items()}}


def test_transitions_count_only_changes_beyond_the_intervals():
    card = _card({"honesty": {"sft": (10, 100), "sft_tools": (90, 100)},   # clearly up
                  "facts": {"sft": (80, 100), "sft_tools": (60, 100)},     # clearly down
                  "tools": {"sft": (5, 10), "sft_tools": (6, 10)}})        # ten items: could be luck
    (t,) = rc.transitions(card)
    assert (t["from"], t["to"]) == ("sft", "sft_tools")
    assert [r["task"] for r in t["gains"]] == ["honesty"] and [r["task"] for r in t["costs"]] == ["facts"]
    assert [r["task"] for r in t["steady"]] == ["tools"]
    assert "honesty (10.0 % → 90.0 %)" in t["text"] and "facts (80.0 % → 60.0 %)" in t["text"]


def test_comparing_two_cards_marks_differences_beyond_their_intervals():
    a = _card({"facts": {"sft": (80, 100), "sft_tools": (5, 10)}})
    b = _card({"facts": {"sft": (50, 100), "sft_tools": (7, 10)}})
    rows = {r["stage"]: r for r in rc.compare(a, b)}
    assert rows["sft"]["beyond"] and rows["sft"]["difference"] == pytest.approx(-0.3)
    assert not rows["sft_tools"]["beyond"]
    table = rc.comparison_markdown(list(rows.values()), ("run 1", "run 2")).splitlines()
    assert table[2].endswith("◆ |") and not table[3].endswith("◆ |")


def test_chain_parents_skip_stages_that_are_not_columns():
    assert rc.chain_parent("rlhf", ["base", "sft", "sft_tools", "rlhf"]) == "sft_tools"  # not reward
    assert rc.chain_parent("reasoning", ["base", "sft", "rlhf", "reasoning"]) == "rlhf"
    assert rc.chain_parent("sft_tools", ["base", "sft_tools"]) == "base"
    assert rc.chain_parent("base", ["base", "sft"]) is None


def test_every_task_has_a_metric_name_and_the_stages_are_in_chain_order():
    assert {t.name for t in rc.TASKS} == set(rc.METRIC_NAMES)
    names = [s.name for s in rc.card_stages()]
    assert names[:6] == ["base", "sft", "sft_tools", "rlhf", "dpo", "reasoning"]
    for i, name in enumerate(names):
        assert rc.chain_parent(name, names[:i]) == rc.chain_parent(name, names)  # parents come first


def test_no_paragraph_for_a_step_whose_stage_was_not_built():
    card = _card({"facts": {"sft": (80, 100), "sft_tools": (60, 100)}})
    card["cells"]["facts"]["sft_tools"] = {"status": "missing"}
    assert rc.built_stages(card) == ["sft"] and rc.transitions(card) == []
