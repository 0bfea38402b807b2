"""The report card (chapter 12): every stage of the chain on the same tasks, in one table.

nanochat ends a run with a report card, one row per measure and one column per stage; this is
the course's. Each *cell* (a task on a stage) holds

- the **raw figure**: a share of items right, a win rate, bits per byte;
- a **score normalised above chance**: 0 is what chance or the baseline gets, 1 is perfect (as
  nanochat's ChatCORE centres its tasks), so rows on different scales share one colour scale;
- the **number of items** behind it and a **95 % interval** (Wilson's for a proportion), so a
  reader can tell a real change from noise.

A task that does not apply to a stage (a chat question put to the base model) is "n/a", never 0.

- :data:`CARD_STAGES` and :data:`TASKS` say what is evaluated: adding a stage or a task is one entry.
- :func:`build` evaluates every stage on every task, caching each figure beside its stage
  (``<stage>.report-card.json``, keyed by the stage's checksum: a rebuilt stage is evaluated
  again, an unchanged one is read back in milliseconds), and writes
  ``runs/<profile>/report_card.json`` and ``report_card.md``.
- :func:`markdown`, :func:`transitions` and :func:`compare`: the table, what each step of the
  chain gained and cost, and two cards side by side.
- ``python -m course_utils.report_card`` (``make report``) does it all from the command line.

The tasks call the chapters' own evaluations (:mod:`course_utils.evals`, the hidden rubric of
:mod:`course_utils.rl`, the held-out word problems of :mod:`course_utils.grpo`), with the same
items and settings, so a figure here is the figure the chapter that built the stage recorded.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from . import config, stages

CARD_VERSION = 1
Z_95 = 1.959964  # the normal quantile of a two-sided 95 % interval


# ----------------------------------------------------------------------------- intervals and scores

def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n``.

    Unlike ``p ± z·sqrt(p(1-p)/n)`` it never leaves [0, 1] and is not zero-width at 0 % or
    100 %: 10 right out of 10 still leaves room for a model that gets 75 % right in general.
    ``successes`` may be fractional (a tie counted as half a win).
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 % and 100 % the end is exactly 0 or 1 (the formula leaves a rounding error there).
    return (0.0 if successes <= 0 else max(0.0, centre - half)), (1.0 if successes >= n else min(1.0, centre + half))


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float],
                   z: float = Z_95) -> tuple[float, float, float]:
    """``(ratio, low, high)`` for ``sum(numerators) / sum(denominators)`` over independent items
    (e.g. bits over bytes, one text window per item), by the usual linearisation of a ratio."""
    n = len(numerators)
    total = sum(denominators)
    ratio = sum(numerators) / total
    if n < 2:
        return ratio, float("-inf"), float("inf")
    residuals = [a - ratio * b for a, b in zip(numerators, denominators)]
    se = math.sqrt(n / (n - 1) * sum(r * r for r in residuals)) / total
    return ratio, ratio - z * se, ratio + z * se


def normalised(value: float, chance: float, perfect: float) -> float | None:
    """``value`` on a scale where ``chance`` is 0 and ``perfect`` is 1 (below chance is negative).

    Works both ways round: for bits per byte ``perfect`` (0 bits) is below ``chance``."""
    if perfect == chance:
        return None
    return (value - chance) / (perfect - chance)


def proportion(successes: float, n: int, *, chance: float = 0.0, perfect: float = 1.0, **extra) -> dict:
    """What a task returns when its figure is a share of ``n`` items (interval: Wilson)."""
    low, high = wilson_interval(successes, n)
    return {"value": successes / n if n else 0.0, "low": low, "high": high, "n": n, "successes": successes,
            "chance": chance, "perfect": perfect, "extra": extra}


def estimate(value: float, low: float, high: float, n: int, *, chance: float, perfect: float, **extra) -> dict:
    """What a task returns when its figure is not a proportion: the figure, its interval, its items."""
    return {"value": value, "low": low, "high": high, "n": n, "chance": chance, "perfect": perfect, "extra": extra}


def make_cell(measured: dict) -> dict:
    """A task's measurement as a card cell: the raw figure and its interval, and both normalised."""
    cell = {"status": "ok", **measured}
    score = normalised(measured["value"], measured["chance"], measured["perfect"])
    cell["score"] = score
    if score is None:
        cell["score_low"] = cell["score_high"] = None
    else:
        ends = [normalised(measured[k], measured["chance"], measured["perfect"]) for k in ("low", "high")]
        cell["score_low"], cell["score_high"] = min(ends), max(ends)
    return cell


NOT_APPLICABLE = {"status": "n/a"}
NOT_BUILT = {"status": "missing"}


# ----------------------------------------------------------------------------- what is evaluated

@dataclass(frozen=True)
class CardStage:
    """A column of the card. ``loader`` ("module:function") turns the loaded
    :class:`course_utils.stages.Stage` into the model to evaluate."""

    name: str
    chat: bool = True  # a chat model: the chat tasks apply to it
    loader: str = "course_utils.model:model_from_stage"


# The columns, in the order of the chain. A stage whose chapter is not in the course yet (not
# registered in course_utils.stages) is left out until it is, so adding a stage is one line.
CARD_STAGES = (
    CardStage("base", chat=False),
    CardStage("sft"),
    CardStage("sft_tools"),
    CardStage("rlhf"),
    CardStage("dpo"),
    CardStage("reasoning"),
    CardStage("domain"),
    CardStage("distilled"),
)
BASELINE = "sft_tools"  # the model every win rate is measured against


def card_stages(names: Sequence[str] | None = None) -> list[CardStage]:
    """The card's columns that exist in this course (optionally only ``names``, in chain order)."""
    chosen = [s for s in CARD_STAGES if s.name in stages.STAGES]
    if names is None:
        return chosen
    unknown = set(names) - {s.name for s in chosen}
    if unknown:
        raise KeyError(f"Not a stage of the report card: {sorted(unknown)}. Card stages: {[s.name for s in chosen]}")
    return [s for s in chosen if s.name in names]


def chain_parent(name: str, among: Sequence[str]) -> str | None:
    """The stage ``name`` was trained from, among the card's columns ``among`` (rlhf -> sft_tools:
    stage reward is a parent of rlhf but not a column)."""
    for parent in stages.spec(name).parents:
        if parent in among:
            return parent
        found = chain_parent(parent, among)
        if found:
            return found
    return None


@dataclass
class Subject:
    """One stage under evaluation. The model is loaded on first use, so a card read entirely
    from the cache never loads a model."""

    name: str
    stage: stages.Stage
    card_stage: CardStage
    shared: "Shared"
    _model: object = field(default=None, repr=False)
    _tokenizer: object = field(default=None, repr=False)

    @property
    def model(self):
        if self._model is None:
            module, func = self.card_stage.loader.split(":")
            self._model = getattr(importlib.import_module(module), func)(self.stage)
        return self._model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self.stage.tokenizer()
        return self._tokenizer


class Shared:
    """What every stage is evaluated on, made once per card: the world, the held-out texts, the
    baseline's judged answers."""

    def __init__(self):
        self._memo: dict = {}

    def _once(self, key, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @property
    def world(self):
        from .sft import load_world

        return self._once("world", load_world)

    def heldout_ids(self, lang: str, tokenizer, tokenizer_key: str):
        """The clean corpus's held-out documents in one language, as one token stream."""
        from .cleaning import load_clean_documents
        from .pretrain import tokenize_docs

        def make():
            docs = [d["text"] for d in load_clean_documents("val") if d["lang"] == lang]
            return tokenize_docs(tokenizer, docs)

        return self._once(("heldout", lang, tokenizer_key), make)

    def judge_prompts(self):
        """The held-out questions every policy of chapter 09 is judged on."""
        from .reward import split_prompts
        from .world import preference_prompts

        return self._once("prompts", lambda: split_prompts(
            preference_prompts(self.world)[:config.budget(None, smoke=10)])["val"])

    def judged(self, subject: Subject):
        """``subject``'s answers to :meth:`judge_prompts`, sampled and greedy, graded by the rubric."""
        from .policy import evaluate_policy
        from .rl import eval_settings

        def make():
            prompts = self.judge_prompts()
            return (evaluate_policy(subject.model, subject.tokenizer, prompts, name=subject.name, **eval_settings()),
                    evaluate_policy(subject.model, subject.tokenizer, prompts, name=f"{subject.name}, greedy",
                                    **eval_settings(greedy=True)))

        return self._once(("judged", subject.name), make)

    def word_problems(self):
        from .grpo import split_tasks

        return self._once("word_problems", lambda: split_tasks(self.world)["eval"])

    def subject(self, name: str, stage: stages.Stage | None = None) -> Subject:
        """Stage ``name`` ready to evaluate, made once (the baseline is also every win rate's opponent)."""
        card_stage = next(s for s in CARD_STAGES if s.name == name)
        return self._once(("subject", name),
                          lambda: Subject(name, stage or stages.ensure_stage(name), card_stage, self))


# ----------------------------------------------------------------------------- the tasks

@dataclass(frozen=True)
class Task:
    """A row of the card. ``measure(subject)`` returns :func:`proportion` or :func:`estimate`."""

    name: str                 # its key in report_card.json
    title: str                # its label in the table
    measure: Callable[[Subject], dict]
    chat: bool = True         # asks questions in the chat template: "n/a" on a model that is not a chat model
    unit: str = "%"           # how the raw figure reads: "%" (a share) or "bits/byte"
    depends_on: tuple[str, ...] = ()  # other stages the figure depends on (a rebuilt one invalidates it)
    version: int = 1          # raise when the measure changes: cached figures are then recomputed


def _bits_per_byte(lang: str) -> Callable[[Subject], dict]:
    def measure(s: Subject) -> dict:
        """Bits per byte on the clean corpus's held-out documents in one language, one context
        window per item. Chance is a model that gives every token of the vocabulary the same
        probability: log2(vocabulary) bits per token."""
        from .pretrain import heldout_loss

        ids = s.shared.heldout_ids(lang, s.tokenizer, s.stage.meta.get("tokenizer_sha256", s.name))
        T = s.model.config.block_size
        windows = max(1, min((len(ids) - 1) // T, config.budget(200_000, smoke=4 * T) // T))
        per_window = [heldout_loss(s.model, s.tokenizer, ids[k * T:(k + 1) * T + 1], batch_size=1, max_tokens=T)
                      for k in range(windows)]
        bits = [w["loss"] * w["tokens"] / math.log(2) for w in per_window]
        n_bytes = [w["bytes"] for w in per_window]
        tokens = sum(w["tokens"] for w in per_window)
        value, low, high = ratio_interval(bits, n_bytes)
        uniform = tokens * math.log2(s.tokenizer.vocab_size) / sum(n_bytes)
        return estimate(value, max(0.0, low), high, windows, chance=uniform, perfect=0.0, tokens=tokens,
                        bytes=sum(n_bytes))

    return measure


def _cloze(s: Subject) -> dict:
    from . import evals, world

    r = evals.cloze_recall(s.model, s.tokenizer, world.cloze_probes(s.shared.world)[:config.budget(None, smoke=4)])
    return proportion(r["correct"], r["n"])


def _smoke(items):
    return list(items)[:config.budget(None, smoke=2)]  # every item, or two in a smoke run (as evals.chat_report)


def _known_facts(s: Subject) -> dict:
    from . import evals, world

    r = evals.known_fact_qa(s.model, s.tokenizer, _smoke(world.qa_probes(s.shared.world)))
    return proportion(r["correct"], r["n"], end_token_rate=r["end_token_rate"])


def _unknown_people(s: Subject) -> dict:
    from . import evals, world

    r = evals.unknown_people(s.model, s.tokenizer, _smoke(world.idk_probes(s.shared.world)))
    return proportion(round(r["idk_rate"] * r["n"]), r["n"], fabrication_rate=r["fabrication_rate"])


def _calculator(s: Subject) -> dict:
    from . import evals, world

    r = evals.arithmetic(s.model, s.tokenizer, _smoke(world.tool_probes(s.shared.world)), tools=True)
    return proportion(r["correct"], r["n"], tool_call_rate=r["tool_call_rate"])


def _refusal(s: Subject) -> dict:
    """Every unsafe request the course has: the ones of the SFT data (chapter 06) and the ones of
    the preference prompts (chapters 08-09), each asked once, greedily."""
    from . import evals
    from .world.datasets import SFT_UNSAFE_REQUESTS
    from .world.preferences import UNSAFE_REQUESTS

    sets = {"sft_requests": SFT_UNSAFE_REQUESTS, "preference_requests": UNSAFE_REQUESTS}
    refused = {}
    for label, requests in sets.items():
        replies = evals.ask(s.model, s.tokenizer, [q for q, _ in _smoke(requests)])
        refused[label] = sum(evals.refuses(evals.reply_text(messages)) for messages, _ in replies)
    n = sum(len(_smoke(r)) for r in sets.values())
    return proportion(sum(refused.values()), n, **{f"{k}_refused": v for k, v in refused.items()},
                      **{f"{k}_n": len(_smoke(r)) for k, r in sets.items()})


def _win_rate(s: Subject) -> dict:
    """The hidden rubric's verdict, answer by answer, against sft_tools sampled the same way
    (chapter 09's measure); a tie counts half. Chance is 50 % ("no better"), perfect is the
    ceiling: every answer as good as the best the rubric knows."""
    from .rl import win_rate, win_rate_ceiling

    sampled, greedy = s.shared.judged(s)
    base_sampled, base_greedy = s.shared.judged(s.shared.subject(BASELINE))
    w, g = win_rate(sampled, base_sampled), win_rate(greedy, base_greedy)
    return proportion(w["wins"] + 0.5 * w["ties"], w["n"], chance=0.5,
                      perfect=win_rate_ceiling(base_sampled)["win_rate"],
                      wins=w["wins"], ties=w["ties"], losses=w["losses"], greedy_win_rate=g["win_rate"],
                      greedy_wins=g["wins"], greedy_ties=g["ties"], greedy_losses=g["losses"], greedy_n=g["n"],
                      greedy_win_rate_ceiling=win_rate_ceiling(base_greedy)["win_rate"],
                      rubric_mean=sampled.summary()["rubric_mean"])


def _word_problems(s: Subject) -> dict:
    """Held-out word problems of difficulty 3-5 (chapter 10's), greedy, with the calculator:
    right only in the one place and form of an answer ("The answer is 37.")."""
    from . import evals

    r = evals.word_problems(s.model, s.tokenizer, s.shared.word_problems())
    return proportion(r["kinds"]["right"], r["n"],
                      by_difficulty={str(d): a for d, a in r["by_difficulty"].items()})


# The rows. A new task is one more entry here (and a small measure function above).
TASKS = (
    Task("bpb_en", "bits per byte, English held-out text", _bits_per_byte("en"), chat=False, unit="bits/byte",
         depends_on=("clean",)),
    Task("bpb_zh", "bits per byte, Chinese held-out text", _bits_per_byte("zh"), chat=False, unit="bits/byte",
         depends_on=("clean",)),
    Task("cloze", "cloze fact recall", _cloze, chat=False),
    Task("known_facts", "known facts, asked in chat", _known_facts),
    Task("unknown_people", "\"I don't know\" on unknown people", _unknown_people),
    Task("calculator", "3-digit arithmetic with the calculator", _calculator),
    Task("refusal", "refusal of unsafe requests", _refusal),
    Task("win_rate", "win rate vs sft_tools (hidden rubric)", _win_rate, depends_on=(BASELINE,)),
    Task("word_problems", "word problems, pass@1 (difficulty 3-5)", _word_problems),
)

# The stage metric each task measures (the name the chapters store it under): what
# benchmarks/stage_targets.py reads from the card.
METRIC_NAMES = {"cloze": "cloze_top1", "known_facts": "known_fact_accuracy", "unknown_people": "unknown_idk_rate",
                "calculator": "arithmetic_tool_accuracy", "refusal": "unsafe_refusal_rate", "win_rate": "win_rate",
                "word_problems": "word_problem_accuracy", "bpb_en": "bits_per_byte_en", "bpb_zh": "bits_per_byte_zh"}


def applies(task: Task, card_stage: CardStage) -> bool:
    return card_stage.chat or not task.chat


# ----------------------------------------------------------------------------- the cache

def stage_checksum(stage: stages.Stage) -> str:
    """A stage's identity: the SHA-256 of the list of its files' checksums. A rebuilt stage
    gets new weights and so a new checksum."""
    files = {name: info["sha256"] for name, info in sorted(stage.meta["files"].items())}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def cache_path(name: str) -> Path:
    """Where a stage's figures are cached: beside its folder, e.g. ``checkpoints/cpu/sft.report-card.json``."""
    folder = stages.stage_dir(name)
    return folder.with_name(f"{folder.name}.report-card.json")


def task_key(task: Task, checksums: dict[str, str]) -> str:
    """What a cached figure depends on besides the stage itself: the task's version, the stages
    it depends on, and whether this is a smoke run."""
    deps = {d: checksums[d] for d in task.depends_on}
    return json.dumps({"task": task.name, "version": task.version, "depends_on": deps, "smoke": config.smoke_run(),
                       "card": CARD_VERSION}, sort_keys=True)


def load_cache(name: str, checksum: str) -> dict:
    """The figures cached for stage ``name``; nothing if the stage has changed since (checksum)."""
    path = cache_path(name)
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if cached.get("checksum") != checksum:
        return {}
    return cached.get("results", {})


def save_cache(name: str, checksum: str, results: dict) -> None:
    _write_atomic(cache_path(name), json.dumps({"stage": name, "checksum": checksum, "results": results},
                                               indent=1, ensure_ascii=False))


def clear_cache(names: Sequence[str] | None = None) -> list[Path]:
    """Delete the cached figures of ``names`` (default: every card stage); returns what was deleted."""
    gone = []
    for s in card_stages(names):
        path = cache_path(s.name)
        if path.exists():
            path.unlink()
            gone.append(path)
    return gone


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- building the card

def _open(names: Sequence[str], build_missing: bool) -> dict[str, stages.Stage | None]:
    """Each stage loaded (built first, with its parents, if missing and ``build_missing``), or None."""
    out = {}
    for name in names:
        if build_missing:
            out[name] = stages.ensure_stage(name)
        else:
            try:
                out[name] = stages.load_stage(name)
            except stages.StageError:
                out[name] = None
    return out


def build(names: Sequence[str] | None = None, *, tasks: Sequence[Task] = TASKS, build_missing: bool = True,
          use_cache: bool = True, write: bool = True, progress: bool = True) -> dict:
    """Evaluate the card's stages (``names``, default all of :data:`CARD_STAGES` in the course)
    on ``tasks`` and return the card (a JSON-able dict; see :func:`markdown` for its shape).

    ``build_missing``: build a stage that is missing first (its parents too, each with a
    progress bar), as every chapter does; otherwise its column reads "not built". Figures come
    from the cache when the stage is unchanged (``use_cache``). ``write``: save
    ``runs/<profile>/report_card.json`` and ``.md``.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    columns = card_stages(names)
    deps = sorted({d for t in tasks for d in t.depends_on} - {s.name for s in columns})
    loaded = _open([s.name for s in columns] + deps, build_missing)
    checksums = {name: stage_checksum(stage) if stage else None for name, stage in loaded.items()}

    shared = Shared()
    cells: dict[str, dict[str, dict]] = {t.name: {} for t in tasks}
    todo = []
    caches = {}
    for s in columns:
        stage = loaded[s.name]
        caches[s.name] = load_cache(s.name, checksums[s.name]) if stage and use_cache else {}
        for t in tasks:
            if stage is None:
                cells[t.name][s.name] = dict(NOT_BUILT)
            elif not applies(t, s):
                cells[t.name][s.name] = dict(NOT_APPLICABLE)
            elif any(checksums.get(d) is None for d in t.depends_on):
                cells[t.name][s.name] = dict(NOT_BUILT)  # what it is compared with is missing
            else:
                entry = caches[s.name].get(t.name)
                key = task_key(t, checksums)
                if entry and entry.get("key") == key:
                    cells[t.name][s.name] = make_cell(entry["measured"])
                else:
                    todo.append((s, t, key))
    bar = tqdm(total=len(todo), desc="report card", unit="figure", disable=not progress or not todo)
    for s, t, key in todo:
        bar.set_postfix_str(f"{s.name}: {t.name}")
        subject = shared.subject(s.name, loaded[s.name])
        measured = t.measure(subject)
        cells[t.name][s.name] = make_cell(measured)
        caches[s.name][t.name] = {"key": key, "measured": measured}
        save_cache(s.name, checksums[s.name], caches[s.name])  # after each figure: an interrupted run keeps them
        bar.update()
    bar.close()
    names_in = [s.name for s in columns]
    card = {
        "kind": "report card", "version": CARD_VERSION, "profile": config.profile(), "smoke": config.smoke_run(),
        "created_unix": round(time.time(), 3),
        "stages": names_in,
        "parents": {n: chain_parent(n, names_in) for n in names_in},
        "checksums": {n: checksums.get(n) for n in names_in},
        "tasks": [{"name": t.name, "title": t.title, "unit": t.unit, "chat": t.chat} for t in tasks],
        "cells": cells,
        "evaluated": len(todo), "from_cache": sum(c.get("status") == "ok" for r in cells.values()
                                                  for c in r.values()) - len(todo),
        "seconds": round(time.perf_counter() - start, 2),
    }
    if write:
        write_card(card)
    return card


def card_paths(profile: str | None = None) -> tuple[Path, Path]:
    """``runs/<profile>/report_card.json`` and ``report_card.md`` (default: the active profile)."""
    folder = config.runs_dir() if profile is None else config.home() / "runs" / (
        profile + ("-smoke" if config.smoke_run() else ""))
    return folder / "report_card.json", folder / "report_card.md"


def write_card(card: dict) -> tuple[Path, Path]:
    json_path, md_path = card_paths()
    _write_atomic(json_path, json.dumps(card, indent=1, ensure_ascii=False))
    _write_atomic(md_path, markdown(card) + "\n")
    return json_path, md_path


def load_card(path: str | Path | None = None) -> dict:
    """A card written by :func:`build` (default: the active profile's)."""
    path = Path(path) if path else card_paths()[0]
    card = json.loads(Path(path).read_text(encoding="utf-8"))
    if card.get("kind") != "report card":
        raise ValueError(f"{path} is not a report card")
    return card


def build_in_profile(profile: str, *, build_missing: bool = True) -> dict:
    """The card of another profile, built in a separate process (a process has one profile:
    its world, data and stages), and read back."""
    import subprocess
    import sys

    # The same home as this process (on Colab it is chosen by the notebook, which the child is not).
    env = {**os.environ, "COURSE_PROFILE": profile, "COURSE_HOME": str(config.home())}
    cmd = [sys.executable, "-m", "course_utils.report_card", "--quiet"] + ([] if build_missing else ["--no-build"])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the {profile} report card failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return load_card(card_paths(profile)[0])


# ----------------------------------------------------------------------------- reading the card

def format_cell(cell: dict, unit: str) -> str:
    """One cell as the markdown table shows it: ``97.2 % [95.1, 98.5] n=354 · 0.97``."""
    if cell["status"] == "n/a":
        return "n/a"
    if cell["status"] != "ok":
        return "not built"
    if unit == "%":
        raw = f"{100 * cell['value']:.1f} % [{100 * cell['low']:.1f}, {100 * cell['high']:.1f}]"
    else:
        raw = f"{cell['value']:.3f} [{cell['low']:.3f}, {cell['high']:.3f}]"
    score = "–" if cell["score"] is None else f"{cell['score']:.2f}"
    return f"{raw} n={cell['n']} · {score}"


def markdown(card: dict) -> str:
    """The card as a markdown table: one row per task, one column per stage."""
    lines = [f"# Report card ({card['profile']} profile{', smoke run' if card.get('smoke') else ''})", "",
             "Each cell: the raw figure [95 % interval] n=items · the score normalised above chance "
             "(0 = chance or the baseline, 1 = perfect). n/a: the task does not apply to the stage.", "",
             "| task | " + " | ".join(card["stages"]) + " |",
             "|---|" + "---|" * len(card["stages"])]
    for t in card["tasks"]:
        row = [format_cell(card["cells"][t["name"]][s], t["unit"]) for s in card["stages"]]
        lines.append(f"| {t['title']} ({t['unit']}) | " + " | ".join(row) + " |")
    return "\n".join(lines)


def metrics_of(card: dict, stage: str) -> dict:
    """A stage's figures under the names its chapter stores them (:data:`METRIC_NAMES`), with the
    win rate's details: what ``benchmarks/stage_targets.py`` compares with the course's targets."""
    out = {}
    for task, metric in METRIC_NAMES.items():
        cell = card["cells"].get(task, {}).get(stage, {})
        if cell.get("status") != "ok":
            continue
        out[metric] = round(cell["value"], 4)
        out[f"{metric}_n"] = cell["n"]
        if task == "win_rate":
            out["win_rate_ceiling"] = round(cell["perfect"], 4)
            out.update({k: cell["extra"][k] for k in ("wins", "ties", "losses", "greedy_win_rate", "greedy_wins",
                                                      "greedy_ties", "greedy_losses", "greedy_win_rate_ceiling")})
    return out


def _apart(a: dict, b: dict) -> bool:
    """Do the two cells' 95 % intervals not overlap? (A cautious test: a difference this large is
    not the luck of the items drawn.)"""
    return a["high"] < b["low"] or b["high"] < a["low"]


def _figure(cell: dict, unit: str) -> str:
    return f"{100 * cell['value']:.1f} %" if unit == "%" else f"{cell['value']:.3f} bits/byte"


def transition(card: dict, before: str, after: str) -> dict:
    """What stage ``after`` gained and lost against ``before`` on each task both were evaluated on.

    A change counts as a gain or a cost only when the two 95 % intervals do not overlap; the
    rest are "within the noise". Tasks that did not apply before are "new"."""
    out = {"from": before, "to": after, "gains": [], "costs": [], "steady": [], "new": []}
    for t in card["tasks"]:
        a, b = card["cells"][t["name"]][before], card["cells"][t["name"]][after]
        if b["status"] != "ok":
            continue
        if a["status"] == "n/a":
            out["new"].append({"task": t["name"], "title": t["title"], "after": _figure(b, t["unit"])})
            continue
        if a["status"] != "ok" or a["score"] is None or b["score"] is None:
            continue
        row = {"task": t["name"], "title": t["title"], "before": _figure(a, t["unit"]), "after": _figure(b, t["unit"]),
               "change": b["score"] - a["score"]}
        out["gains" if _apart(a, b) and b["score"] > a["score"] else
            "costs" if _apart(a, b) else "steady"].append(row)
    out["text"] = _transition_text(out)
    return out


def _transition_text(t: dict) -> str:
    def listing(rows, new=False):
        return "; ".join(f"{r['title']} ({r['after']})" if new else f"{r['title']} ({r['before']} → {r['after']})"
                         for r in rows)

    parts = [f"**{t['from']} → {t['to']}**:"]
    if t["new"]:
        parts.append(f"new skills: {listing(t['new'], new=True)}.")
    parts.append(f"Gained {listing(t['gains'])}." if t["gains"] else "No clear gain.")
    parts.append(f"Cost {listing(t['costs'])}." if t["costs"] else "No clear cost.")
    if t["steady"]:
        parts.append(f"Within the noise: {'; '.join(r['title'] for r in t['steady'])}.")
    return " ".join(parts)


def built_stages(card: dict) -> list[str]:
    """The card's stages that were built (and so graded), in chain order."""
    return [s for s in card["stages"] if any(row[s]["status"] != "missing" for row in card["cells"].values())]


def transitions(card: dict) -> list[dict]:
    """:func:`transition` for every graded stage of the card and the card stage it was trained from."""
    built = built_stages(card)
    return [transition(card, parent, name) for name, parent in card["parents"].items()
            if parent and name in built and parent in built]


def compare(card_a: dict, card_b: dict) -> list[dict]:
    """Two cards (two runs: another seed, another profile) task by task and stage by stage,
    wherever both have a figure: both raw figures, the difference (b - a) and whether the two
    95 % intervals are apart (``beyond``)."""
    units = {t["name"]: t["unit"] for t in card_a["tasks"]}
    rows = []
    for t in card_a["tasks"]:
        for s in card_a["stages"]:
            a = card_a["cells"][t["name"]].get(s, {})
            b = card_b.get("cells", {}).get(t["name"], {}).get(s, {})
            if a.get("status") == "ok" and b.get("status") == "ok":
                rows.append({"task": t["name"], "title": t["title"], "stage": s, "unit": units[t["name"]],
                             "a": a, "b": b, "difference": b["value"] - a["value"], "beyond": _apart(a, b)})
    return rows


def comparison_markdown(rows: list[dict], names: tuple[str, str] = ("a", "b")) -> str:
    """:func:`compare`'s rows as a markdown table; a difference beyond both intervals is marked ◆."""
    lines = [f"| task | stage | {names[0]} | {names[1]} | difference | |", "|---|---|---|---|---|---|"]
    for r in rows:
        scale, fmt = (100, "{:.1f}") if r["unit"] == "%" else (1, "{:.3f}")

        def show(c):
            return f"{fmt.format(scale * c['value'])} [{fmt.format(scale * c['low'])}, {fmt.format(scale * c['high'])}]"

        lines.append(f"| {r['title']} | {r['stage']} | {show(r['a'])} | {show(r['b'])} | "
                     f"{fmt.format(scale * r['difference'])}{' pts' if r['unit'] == '%' else ''} | "
                     f"{'◆' if r['beyond'] else ''} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line

def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_utils.report_card",
                                     description="Evaluate every stage on the same tasks (chapter 12).")
    parser.add_argument("--no-build", action="store_true", help="only the stages already built; missing ones "
                                                                  "read 'not built'")
    parser.add_argument("--fresh", action="store_true", help="ignore (and replace) the cached figures")
    parser.add_argument("--quiet", action="store_true", help="print only where the card was written")
    args = parser.parse_args(argv)
    if args.fresh:
        clear_cache()
    card = build(build_missing=not args.no_build, progress=not args.quiet)
    json_path, md_path = card_paths()
    if not args.quiet:
        print(markdown(card))
        print()
        for t in transitions(card):
            print(t["text"])
        print(f"\n{card['evaluated']} figures evaluated, {card['from_cache']} read from the cache, "
              f"{card['seconds']:.1f} s")
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
