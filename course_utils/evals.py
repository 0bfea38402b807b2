"""Evaluation tasks the chapters share (and the report card of chapter 12 collects).

Each task takes a model and a tokenizer and returns plain numbers plus a few examples, so a
chapter can print them and a stage can store them in its ``stage.json``.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def starts_with_answer(completion: str, answer: str) -> bool:
    """``completion`` begins with ``answer`` as a whole word ("Rome" is not in "Romania").

    Leading spaces, case and runs of whitespace are ignored. The word-boundary check only
    looks at ASCII letters and digits, so a Chinese answer may run straight into the next character.
    """
    c, a = _normalise(completion), _normalise(answer)
    if not c.startswith(a):
        return False
    rest = c[len(a):]
    return not (rest and rest[0].isascii() and rest[0].isalnum())


# ----------------------------------------------------------------------------- fact recall (base model)

@torch.no_grad()
def cloze_recall(model, tokenizer, probes: Sequence[tuple[str, str]], *, max_examples: int = 20,
                 extra_tokens: int = 2) -> dict:
    """Fill-in-the-blank fact recall: does greedy decoding after the prompt start with the answer?

    ``probes`` are ``(prompt, answer)`` pairs such as ``("The capital of France is", "Paris")``.
    The model continues each prompt greedily (always the most likely token) for as many tokens
    as the answer needs, plus ``extra_tokens``; a probe counts as recalled (top-1) when the
    continuation starts with the answer (see :func:`starts_with_answer`). Returns ``{"top1": fraction, "n": count, "correct": count,
    "examples": [{"prompt", "answer", "completion", "correct"}, ...]}``.
    """
    from .generate import generate_batch

    probes = list(probes)
    if not probes:
        return {"top1": 0.0, "n": 0, "correct": 0, "examples": []}
    prompts = [tokenizer.encode(p) for p, _ in probes]
    budget = max(len(tokenizer.encode(" " + a)) for _, a in probes) + extra_tokens
    block = model.config.block_size
    prompts = [p[-(block - budget):] for p in prompts]  # leave room for the answer
    outs = generate_batch(model, prompts, budget, temperature=0.0, stop_ids=(tokenizer.eot_id,))
    examples, correct = [], 0
    for (prompt, answer), new in zip(probes, outs):
        new = [t for t in new if t != tokenizer.eot_id]
        completion = tokenizer.decode(new)
        ok = starts_with_answer(completion, answer)
        correct += ok
        examples.append({"prompt": prompt, "answer": answer, "completion": completion, "correct": bool(ok)})
    return {"top1": correct / len(probes), "n": len(probes), "correct": correct, "examples": examples[:max_examples]}


# ----------------------------------------------------------------------------- regurgitation (base model)

@torch.no_grad()
def verbatim_continuation(model, tokenizer, text: str, *, prompt_tokens: int = 16, new_tokens: int = 48) -> dict:
    """Prompt with the first ``prompt_tokens`` tokens of ``text`` and continue greedily.

    Returns ``{"prompt", "truth", "generated", "matched"}``: ``matched`` is how many of the
    generated tokens equal the document's own next tokens before the first difference
    (``new_tokens`` = the model recited the rest of the passage word for word).
    """
    from .generate import generate

    ids = tokenizer.encode(text)
    prompt, truth = ids[:prompt_tokens], ids[prompt_tokens:prompt_tokens + new_tokens]
    out = generate(model, prompt, len(truth), temperature=0.0)
    matched = 0
    for a, b in zip(out, truth):
        if a != b:
            break
        matched += 1
    return {"prompt": tokenizer.decode(prompt), "truth": tokenizer.decode(truth), "generated": tokenizer.decode(out),
            "matched": matched, "compared": len(truth)}


# ----------------------------------------------------------------------------- chat tasks (chapters 06, 07, 12)
#
# The chat model is asked single questions in the chat template, greedily, and its reply (the
# last assistant message, after any calculator calls) is graded by a plain rule. Every task
# returns its numbers, the end-token rate of its replies and a few examples.

def chat_max_new_tokens() -> int:
    """The reply budget of the chat evaluations (tokens the model may write per reply)."""
    from . import config

    # Room for the longest one-paragraph replies of the chat data (a refusal with an alternative,
    # "what can you do?") of up to ~57 tokens: a shorter budget would cut off replies the model
    # was taught to write and count them as turns never closed. ci's context is only 64 tokens;
    # its numbers are not meant to be good, just computed.
    return config.pick(ci=32, cpu=64, gpu=64)


def reply_text(messages: Sequence[dict]) -> str:
    """The text of a reply: the content of its last assistant message ("" if it has none)."""
    for msg in reversed(messages):
        if msg.get("role") == "assistant":
            return msg.get("content", "")
    return ""


_DONT_KNOW = ("don't know", "do not know", "dont know", "不知道")


def says_dont_know(text: str) -> bool:
    """Does the reply admit not knowing? ("I don't know", "I do not know", "我不知道", any case)."""
    t = text.replace("\u2019", "'").casefold()
    return any(p in t for p in _DONT_KNOW)


def refuses(text: str) -> bool:
    """Does the reply decline ("I can't help with that.")? The markers are the hidden rubric's."""
    from .world.preferences import REFUSAL_MARKERS

    t = text.replace("\u2019", "'").casefold()
    return any(m in t for m in REFUSAL_MARKERS)


def last_integer(text: str) -> int | None:
    """The last whole number written in ``text`` ("123 × 456 = 56088." -> 56088), or None."""
    numbers = re.findall(r"-?\d+", text.replace(",", ""))
    return int(numbers[-1]) if numbers else None


def end_token_rate(traces: Sequence) -> float:
    """Share of replies that ended with ``<|im_end|>`` (a closed turn) within their budget."""
    traces = list(traces)
    return sum(t.closed for t in traces) / len(traces) if traces else 0.0


def ask(model, tokenizer, questions: Sequence[str], *, max_new_tokens: int | None = None, tools: bool = False,
        system: str | None = None, temperature: float = 0.0,
        generator: torch.Generator | None = None) -> list[tuple[list[dict], object]]:
    """Ask each question as a one-turn conversation (optionally after a system prompt), all in one
    batch: a list of ``(messages, trace)`` from :func:`course_utils.generate.chat_replies`.
    Greedy unless a ``temperature`` is given (then seeded by ``generator``); :func:`reply_text`
    of ``messages`` is the answer to show."""
    from .generate import chat_replies

    head = [{"role": "system", "content": system}] if system else []
    convs = [head + [{"role": "user", "content": q}] for q in questions]
    return chat_replies(model, tokenizer, convs, max_new_tokens or chat_max_new_tokens(), tools=tools,
                        temperature=temperature, generator=generator)


def _example(question, reply, trace, **extra) -> dict:
    return {"question": question, "reply": reply, "stop": trace.stop, **extra}


@torch.no_grad()
def known_fact_qa(model, tokenizer, probes: Sequence[tuple[str, str]], *, max_new_tokens: int | None = None,
                  max_examples: int = 20) -> dict:
    """Known facts asked as chat questions: a reply is correct when it contains the fact.

    ``probes`` are ``(question, key)`` pairs such as ``("What is the capital of France?", "Paris")``
    (:func:`course_utils.world.qa_probes`); "contains" means as a whole word, any case
    (:func:`course_utils.world.contains_answer`). Returns ``{"accuracy", "n", "correct",
    "refusal_rate", "end_token_rate", "examples"}``; each example has ``question, key, reply,
    correct, stop``. ``refusal_rate`` is the share of these harmless questions the model
    declined (:func:`refuses`).
    """
    from .world import contains_answer

    probes = list(probes)
    runs = ask(model, tokenizer, [q for q, _ in probes], max_new_tokens=max_new_tokens)
    examples, correct, refused = [], 0, 0
    for (question, key), (messages, trace) in zip(probes, runs):
        reply = reply_text(messages)
        ok = contains_answer(reply, key)
        correct += ok
        refused += refuses(reply)
        examples.append(_example(question, reply, trace, key=key, correct=bool(ok)))
    n = len(probes)
    return {"accuracy": correct / n if n else 0.0, "n": n, "correct": correct,
            "refusal_rate": refused / n if n else 0.0,
            "end_token_rate": end_token_rate([t for _, t in runs]), "examples": examples[:max_examples]}


@torch.no_grad()
def unknown_people(model, tokenizer, probes: Sequence[tuple[str, str]] | Sequence[str], *,
                   max_new_tokens: int | None = None, max_examples: int = 20) -> dict:
    """Questions about people who exist nowhere in the training data ("Who is Orson Kovacs?").

    Every reply is one of: an admission (:func:`says_dont_know`), a *fabrication* (any other
    non-empty reply: there is nothing true to say), or empty. Returns ``{"idk_rate",
    "fabrication_rate", "empty_rate", "n", "end_token_rate", "examples"}``; ``probes`` are
    questions or ``(question, anything)`` pairs (:func:`course_utils.world.idk_probes`).
    """
    questions = [p if isinstance(p, str) else p[0] for p in probes]
    runs = ask(model, tokenizer, questions, max_new_tokens=max_new_tokens)
    counts = {"idk": 0, "fabricated": 0, "empty": 0}
    examples = []
    for question, (messages, trace) in zip(questions, runs):
        reply = reply_text(messages)
        verdict = "idk" if says_dont_know(reply) else "fabricated" if reply.strip() else "empty"
        counts[verdict] += 1
        examples.append(_example(question, reply, trace, verdict=verdict))
    n = len(questions)
    rate = (lambda k: counts[k] / n if n else 0.0)
    return {"idk_rate": rate("idk"), "fabrication_rate": rate("fabricated"), "empty_rate": rate("empty"), "n": n,
            "end_token_rate": end_token_rate([t for _, t in runs]), "examples": examples[:max_examples]}


@torch.no_grad()
def arithmetic(model, tokenizer, probes: Sequence[tuple[str, int]], *, tools: bool,
               max_new_tokens: int | None = None, max_examples: int = 20) -> dict:
    """Arithmetic questions (``(question, answer)``, e.g. :func:`course_utils.world.tool_probes`),
    with the calculator available (``tools=True``) or not.

    A reply is correct when the last whole number it states is the answer. Without tools a
    model that calls the calculator gets no result and its reply ends there, unanswered.
    Returns ``{"accuracy", "n", "correct", "tool_call_rate", "tool_error_rate",
    "end_token_rate", "examples"}``: ``tool_call_rate`` is the share of replies that called
    the tool, ``tool_error_rate`` the share of calls the calculator refused.
    """
    probes = list(probes)
    runs = ask(model, tokenizer, [q for q, _ in probes], max_new_tokens=max_new_tokens, tools=tools)
    examples, correct, called, calls, errors = [], 0, 0, 0, 0
    for (question, answer), (messages, trace) in zip(probes, runs):
        reply = reply_text(messages)
        ok = last_integer(reply) == answer
        correct += ok
        wants_tool = bool(trace.tool_calls) or trace.stop == "tool_call"
        called += wants_tool
        calls += len(trace.tool_calls)
        errors += sum(not c["ok"] for c in trace.tool_calls)
        examples.append(_example(question, reply, trace, answer=answer, correct=bool(ok),
                                 tool_calls=list(trace.tool_calls)))
    n = len(probes)
    return {"accuracy": correct / n if n else 0.0, "n": n, "correct": correct,
            "tool_call_rate": called / n if n else 0.0, "tool_error_rate": errors / calls if calls else 0.0,
            "end_token_rate": end_token_rate([t for _, t in runs]), "examples": examples[:max_examples]}


def chat_report(model, tokenizer, world, *, max_new_tokens: int | None = None, max_examples: int = 10,
                arithmetic_n: int | None = None) -> dict:
    """Every chat task on one model: the numbers chapters 06, 07 and the report card compare.

    Flat numbers (stored in a stage's ``meta["metrics"]``):

    - ``known_fact_accuracy``: :func:`known_fact_qa` on ``world.qa_probes`` (facts learnt in
      pretraining, never shown as chat answers), asked in the training phrasings;
    - ``heldout_phrasing_accuracy`` / ``heldout_phrasing_refusal_rate``: the same facts asked in
      phrasings no training data uses, and the share of those harmless questions declined;
    - ``unknown_idk_rate`` / ``unknown_fabrication_rate``: :func:`unknown_people` on
      ``world.idk_probes`` (people who appear in no training data);
    - ``arithmetic_tool_accuracy`` / ``arithmetic_no_tool_accuracy``: :func:`arithmetic` on
      three-digit problems (``world.tool_probes``, the first ``arithmetic_n``), with and without
      the calculator, and ``arithmetic_tool_call_rate``;
    - ``end_token_rate``: share of all those replies (with the calculator on) closed with
      ``<|im_end|>``; with ``*_n`` counts.

    plus ``examples`` (a few graded replies per task), for ``metrics.json``.
    """
    from . import config, world as W

    kw = {"max_new_tokens": max_new_tokens, "max_examples": max_examples}
    n = config.budget(None, smoke=2)  # every probe, or two of each task in a smoke run
    probes = (W.tool_probes(world)[:arithmetic_n] if arithmetic_n else W.tool_probes(world))[:n]
    facts = known_fact_qa(model, tokenizer, W.qa_probes(world)[:n], **kw)
    reworded = known_fact_qa(model, tokenizer, W.qa_probes(world, heldout_phrasings=True)[:n], **kw)
    unknown = unknown_people(model, tokenizer, W.idk_probes(world)[:n], **kw)
    with_tool = arithmetic(model, tokenizer, probes, tools=True, **kw)
    no_tool = arithmetic(model, tokenizer, probes, tools=False, **kw)
    parts = (facts, reworded, unknown, with_tool)
    closed = sum(p["end_token_rate"] * p["n"] for p in parts)
    replies = sum(p["n"] for p in parts)
    r = lambda x: round(x, 4)  # noqa: E731
    return {
        "known_fact_accuracy": r(facts["accuracy"]), "known_fact_n": facts["n"],
        "heldout_phrasing_accuracy": r(reworded["accuracy"]),
        # How much of what the model answers survives new wording (1.0 = all of it).
        "heldout_phrasing_ratio": r(reworded["accuracy"] / facts["accuracy"]) if facts["accuracy"] else 0.0,
        "heldout_phrasing_refusal_rate": r(reworded["refusal_rate"]), "heldout_phrasing_n": reworded["n"],
        "unknown_idk_rate": r(unknown["idk_rate"]), "unknown_fabrication_rate": r(unknown["fabrication_rate"]),
        "unknown_n": unknown["n"],
        "arithmetic_tool_accuracy": r(with_tool["accuracy"]), "arithmetic_no_tool_accuracy": r(no_tool["accuracy"]),
        "arithmetic_tool_call_rate": r(with_tool["tool_call_rate"]), "arithmetic_n": with_tool["n"],
        "end_token_rate": r(closed / replies if replies else 0.0), "end_token_n": replies,
        "examples": {"known_fact": facts["examples"], "heldout_phrasing": reworded["examples"],
                     "unknown_people": unknown["examples"],
                     "arithmetic_tool": with_tool["examples"], "arithmetic_no_tool": no_tool["examples"]},
    }


# ----------------------------------------------------------------------------- verifiable answers (chapter 10)

# The one place and form of a final answer (world.answer_sentence): the whole final message.
_ANSWER_FORMS = (re.compile(r"The answer is (-?\d+)\."), re.compile(r"答案是(-?\d+)。"))
MAX_ANSWER_DIGITS = 9  # a longer "number" is not an answer to a word problem; int() of it is not attempted
FORMAT_REWARD = 0.1    # a well-formed wrong answer earns this much: the format is learnt first

# Why a reply earned what it earned, best first. Only "right" and "wrong" are well formed.
ANSWER_KINDS = ("right", "wrong", "no answer", "answer not alone", "several numbers", "not a whole number",
                "huge number", "thinking not closed", "cut off", "tool loop")


def strict_answer(text: str) -> int | None:
    """The answer when ``text`` (a reply's final message) is exactly one answer sentence,
    "The answer is 37." or "答案是37。", and nothing else; None otherwise."""
    text = text.strip()
    for form in _ANSWER_FORMS:
        match = form.fullmatch(text)
        if match and len(match.group(1).lstrip("-")) <= MAX_ANSWER_DIGITS:
            return int(match.group(1))
    return None


def answer_kind(messages: Sequence[dict], trace, answer: int, tokenizer) -> str:
    """Grade a reply to a problem whose answer is ``answer`` strictly: one of :data:`ANSWER_KINDS`.

    ``messages`` and ``trace`` are what :func:`course_utils.generate.chat_replies` returned. A reply
    is well formed when its turn closed, any thinking closed, and its final message is exactly one
    answer sentence. Never raises, whatever the model wrote."""
    from .generate import STOP_END_OF_TURN, STOP_MAX_TOOL_CALLS
    from .tokenizer import THINK, THINK_END

    if trace.stop == STOP_MAX_TOOL_CALLS:
        return "tool loop"
    written = trace.written
    if written.count(tokenizer.special_id(THINK)) > written.count(tokenizer.special_id(THINK_END)):
        return "thinking not closed"
    if trace.stop != STOP_END_OF_TURN:
        return "cut off"
    final = reply_text(messages)
    value = strict_answer(final)
    if value is not None:
        return "right" if value == answer else "wrong"
    numbers = re.findall(r"\d+", final)
    if any(len(n) > MAX_ANSWER_DIGITS for n in numbers):
        return "huge number"
    if re.search(r"\d\s*[./]\s*\d", final):
        return "not a whole number"
    if len(numbers) > 1:
        return "several numbers"
    if any(form.search(final) for form in _ANSWER_FORMS):
        return "answer not alone"
    return "no answer"


def answer_reward(kind: str) -> float:
    """The verifiable reward: 1 for the right answer, :data:`FORMAT_REWARD` for a well-formed
    wrong one, 0 for anything else."""
    return 1.0 if kind == "right" else FORMAT_REWARD if kind == "wrong" else 0.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of ``k`` answers drawn (without replacement) from ``n`` samples,
    ``c`` of them right, is right: the unbiased pass@k estimator ``1 - C(n-c, k) / C(n, k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c, k) / C(n, k) as a product, no huge integers
        miss *= 1.0 - k / i
    return 1.0 - miss


def reasoning_max_new_tokens() -> int:
    """Tokens a model may write per word problem (thinking, tool calls and answer): room for three
    written-out steps and more."""
    from . import config

    return config.pick(ci=24, cpu=96, gpu=128)


def word_problems(model, tokenizer, tasks: Sequence, *, samples: int = 1, temperature: float = 0.0, seed: int = 0,
                  tools: bool = True, ks: Sequence[int] = (), max_new_tokens: int | None = None,
                  max_examples: int = 10) -> dict:
    """Ask each task (:class:`course_utils.world.Task`) ``samples`` times (greedy by default) and
    grade every reply with :func:`answer_kind`.

    Returns ``{"accuracy", "n", "by_difficulty": {d: accuracy}, "kinds": {kind: count},
    "pass_at_k": {k: mean pass@k} (for ``ks`` up to ``samples``), "thinking_tokens" (mean tokens
    inside <|think|>...<|/think|>), "written_tokens" (mean tokens the model wrote: thinking, calculator
    calls and answer) and "written_tokens_by_difficulty", "tool_call_rate" (share of replies that
    called the calculator),
    "loose_accuracy" (the loose :meth:`Task.check` on everything the model wrote), "examples"}``.
    """
    tasks = list(tasks)
    generator = torch.Generator().manual_seed(seed)
    runs = ask(model, tokenizer, [t.question for t in tasks for _ in range(samples)],
               max_new_tokens=max_new_tokens or reasoning_max_new_tokens(), tools=tools, temperature=temperature,
               generator=generator)
    kinds = {k: 0 for k in ANSWER_KINDS}
    right_per_task = [0] * len(tasks)
    by_difficulty: dict[int, list[int]] = {}
    written_by_difficulty: dict[int, list[int]] = {}
    thinking, called, loose, examples = 0, 0, 0, []
    for j, (messages, trace) in enumerate(runs):
        task = tasks[j // samples]
        kind = answer_kind(messages, trace, task.answer, tokenizer)
        kinds[kind] += 1
        right_per_task[j // samples] += kind == "right"
        by_difficulty.setdefault(task.difficulty, []).append(kind == "right")
        written = trace.written
        written_by_difficulty.setdefault(task.difficulty, []).append(len(written))
        thinking += thinking_tokens(written, tokenizer)
        called += bool(trace.tool_calls)
        loose += task.check(tokenizer.decode(written))
        if len(examples) < max_examples and j % samples == 0:
            examples.append({"question": task.question, "difficulty": task.difficulty, "answer": task.answer,
                             "reply": tokenizer.decode(written), "kind": kind})
    n = len(runs)
    return {"accuracy": kinds["right"] / n if n else 0.0, "n": n,
            "by_difficulty": {d: sum(v) / len(v) for d, v in sorted(by_difficulty.items())},
            "kinds": kinds,
            "pass_at_k": {k: sum(pass_at_k(samples, c, k) for c in right_per_task) / len(tasks)
                          for k in ks if k <= samples},
            "thinking_tokens": thinking / n if n else 0.0,
            "written_tokens": sum(map(sum, written_by_difficulty.values())) / n if n else 0.0,
            "written_tokens_by_difficulty": {d: sum(v) / len(v) for d, v in sorted(written_by_difficulty.items())},
            "tool_call_rate": called / n if n else 0.0,
            "loose_accuracy": loose / n if n else 0.0, "examples": examples}


def thinking_tokens(written: Sequence[int], tokenizer) -> int:
    """How many tokens a reply spent between ``<|think|>`` and ``<|/think|>`` (0 if it did not think)."""
    from .chat import parse_assistant_reply

    thought = parse_assistant_reply(list(written), tokenizer).get("thinking")
    return len(tokenizer.encode(thought, allowed_special="none")) if thought else 0


# ----------------------------------------------------------------------------- the report card (chapter 12)

def report_card(stages=None, **kwargs) -> dict:
    """Every stage on the same tasks: :func:`course_utils.report_card.build` (``stages``: names,
    default every stage of the chain that exists in the course)."""
    from .report_card import build

    return build(stages, **kwargs)
