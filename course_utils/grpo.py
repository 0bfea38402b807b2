"""Reinforcement learning with verifiable rewards (chapter 10): GRPO. Builds stage ``reasoning``.

On a word problem a program can check the answer, so the reward needs no reward model. GRPO
(group relative policy optimisation, DeepSeekMath and DeepSeek-R1) in a loop:

1. *Groups*: the policy answers each of a few problems ``G`` times, by sampling, with the
   calculator available (:func:`course_utils.generate.chat_replies`).
2. *Rewards*: each answer is graded by a checker: 1 for the right answer in its one place and
   form, a little (:data:`course_utils.evals.FORMAT_REWARD`) for a well-formed wrong one, 0 for
   anything else (:func:`course_utils.evals.answer_kind`).
3. *Advantages*: each answer is compared with its own group: ``(reward - group mean) / group
   std``. No value head is needed. A group whose answers all scored the same says nothing about
   which answer is better; it is skipped.
4. *Update*: every token the model wrote gets its answer's advantage, through PPO's clipped
   ratio (:func:`course_utils.rl.clipped_surrogate`). Calculator results injected into the
   answer are masked out: the model did not write them. The loss is averaged over all tokens of
   the batch (the Dr. GRPO / DAPO fix; see :func:`token_weights`), optionally with a KL penalty to
   the starting model.

Before GRPO, a short supervised warm-up on worked solutions (DeepSeek-R1's "cold start") teaches
the format: the steps (inside ``<|think|>...<|/think|>``, or as calculator calls), then "The
answer is N." alone.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import torch
from torch import nn

from . import config, evals, stages
from .policy import k3, token_logprobs
from .rl import clipped_surrogate
from .train import TrainConfig, make_optimizer

# A checker grades one reply: (task, messages, trace) -> reward.
Checker = Callable[[object, list, object], float]


# ----------------------------------------------------------------------------- the data

CALCULATOR_SHARE = 1.0  # share of the warm-up's worked solutions solved with the calculator (the rest in the head)


def split_tasks(world, *, n_eval: int | None = None, zh_share: float = 0.25):
    """The world's word problems split into ``{"train", "eval", "eval_zh"}`` lists of tasks.

    ``eval`` holds ``n_eval`` English problems per difficulty 3-5 (the chapter's measure),
    ``eval_zh`` the same in Chinese; ``train`` every difficulty, a ``zh_share`` of it Chinese,
    with no question that is also asked in evaluation."""
    from .world import DIFFICULTIES, verifiable_tasks

    n_eval = n_eval or config.pick(ci=4, cpu=50, gpu=100, smoke=2)
    out = {"train": [], "eval": [], "eval_zh": []}
    for d in DIFFICULTIES:
        en, zh = verifiable_tasks(world, d), verifiable_tasks(world, d, language="zh")
        held = (en[:n_eval], zh[:n_eval]) if d >= 3 else ([], [])
        asked = {t.question for t in held[0] + held[1]}
        out["eval"] += held[0]
        out["eval_zh"] += held[1]
        n_zh = round(len(en) * zh_share)
        out["train"] += [t for t in en[n_eval:] + zh[n_eval:n_eval + n_zh] if t.question not in asked]
    return out


def warmup_conversations(tasks: Sequence, n: int, calculator_share: float = CALCULATOR_SHARE,
                         seed: int = 0) -> list[list]:
    """``n`` worked solutions (:func:`course_utils.world.worked_solution`) of tasks drawn at random,
    a ``calculator_share`` of them solved with the calculator, the rest in the head: two ways to
    the answer, and RL will find out which one works for this model."""
    import random

    from .world import worked_solution

    rng = random.Random(seed)
    return [worked_solution(t, calculator=rng.random() < calculator_share)
            for t in rng.sample(list(tasks), min(n, len(tasks)))]


# ----------------------------------------------------------------------------- checkers

def strict_checker(tokenizer) -> Checker:
    """The reward to train on: :func:`course_utils.evals.answer_reward` of :func:`course_utils.evals.answer_kind`."""
    return lambda task, messages, trace: evals.answer_reward(evals.answer_kind(messages, trace, task.answer, tokenizer))


def loose_checker(tokenizer) -> Checker:
    """1 when the answer is anywhere in what the model wrote (:meth:`course_utils.world.Task.check`),
    else 0: the checker a hurried grader writes, and the one a policy learns to game."""
    return lambda task, messages, trace: float(task.check(tokenizer.decode(trace.written)))


# ----------------------------------------------------------------------------- the algorithm

def group_advantages(rewards: torch.Tensor, scale_by_std: bool = True,
                     eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """``rewards`` (P prompts, G answers) -> ``(advantages (P, G), informative (P,))``.

    Each answer's advantage is its reward minus its group's mean, divided by the group's std
    when ``scale_by_std`` (GRPO; Dr. GRPO leaves it out, so easy and hard problems weigh alike).
    A group whose rewards are all equal is not informative: its advantages are all 0."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True, unbiased=False)
    informative = (std.squeeze(1) > eps)
    advantages = rewards - mean
    if scale_by_std:
        advantages = advantages / (std + eps)
    return advantages * informative[:, None], informative


def token_weights(lengths: Sequence[int], advantages: Sequence[float], average: str) -> list[float]:
    """How hard the loss pushes on *each token* of each answer, for answers of ``lengths`` tokens
    with ``advantages``: ``advantage / length`` when each answer's tokens are averaged first
    ("answer", the original GRPO), ``advantage / total tokens`` when all tokens of the batch are
    averaged together ("token"). With "answer", a long wrong answer is punished less per token
    than a short one: the bias toward long wrong answers."""
    if average == "answer":
        return [a / (n * len(lengths)) for n, a in zip(lengths, advantages)]
    if average == "token":
        total = sum(lengths)
        return [a / total for a in advantages]
    raise ValueError(f"average must be 'token' or 'answer', not {average!r}")


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              clip: float = 0.2, average: str = "token", ref_logp: torch.Tensor | None = None,
              kl_coef: float = 0.0) -> tuple[torch.Tensor, dict]:
    """The GRPO loss over (B, N) actions: each row's advantage (B,) on every token it wrote
    (``mask``), through the clipped ratio, plus ``kl_coef`` times the k3 KL to ``ref_logp``.
    ``average`` is "token" (all tokens of the batch together) or "answer" (each answer first)."""
    per_token, clipped = clipped_surrogate(logp, old_logp, advantages[:, None].expand_as(logp), clip)
    if ref_logp is not None and kl_coef:
        per_token = per_token + kl_coef * k3(logp, ref_logp)
    if average == "token":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
    elif average == "answer":
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    else:
        raise ValueError(f"average must be 'token' or 'answer', not {average!r}")
    tokens = mask.sum().clamp(min=1)
    return loss, {"clipfrac": float((clipped.float() * mask).sum() / tokens)}


def pack_replies(traces: Sequence, pad_id: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each reply's whole context (prompt, what the model wrote, calculator results) right-padded
    into ``ids`` (B, T), and the action mask (B, T-1): 1 where the action wrote a token the model
    itself produced, 0 on the prompt, the calculator's results and the padding.

    A reply longer than ``block_size`` keeps its last ``block_size`` tokens (the start of the
    prompt goes, as the generation loop cut it)."""
    rows = [[(source, i) for source, ids in t.segments for i in ids][-block_size:] for t in traces]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    written = torch.zeros(len(rows), T)
    for b, row in enumerate(rows):
        ids[b, :len(row)] = torch.tensor([i for _, i in row])
        written[b, :len(row)] = torch.tensor([float(source == "model") for source, _ in row])
    return ids, written[:, 1:]


@dataclass
class GRPOConfig:
    steps: int = 60
    prompts_per_step: int = 8
    group_size: int = 8            # G answers per problem
    max_new_tokens: int = 96
    temperature: float = 1.0       # sample from the policy itself: the ratios assume it
    lr: float = 5e-5
    clip: float = 0.2
    epochs: int = 1                # passes over each batch of answers (more than one: the clip matters)
    kl_coef: float = 0.0           # k3 penalty to the starting model (0: none, as in DAPO and Dr. GRPO)
    average: str = "token"         # "token" (Dr. GRPO / DAPO) or "answer" (the original GRPO)
    scale_by_std: bool = True
    grad_clip: float = 1.0
    eval_every: int = 10           # held-out greedy pass@1 every N steps (0: only at the end)
    min_difficulty: int = 1        # practise on problems this hard or harder (the easy ones: all right, no signal)
    seed: int = config.DEFAULT_SEED

    def to_dict(self) -> dict:
        return asdict(self)


def grpo_config(**overrides) -> GRPOConfig:
    """GRPO sizes per profile.

    ==== ===== ================ ========== =============================================
    prof steps problems x G     new tokens cost
    ==== ===== ================ ========== =============================================
    ci   3     2 x 2            24         seconds (every code path, no lesson)
    cpu  30    8 x 8            96         ~2 min on 2 cores
    gpu  200   16 x 8           128
    ==== ===== ================ ========== =============================================
    """
    cfg = GRPOConfig(steps=config.pick(ci=3, cpu=30, gpu=200, smoke=1),
                     prompts_per_step=config.pick(ci=2, cpu=8, gpu=16, smoke=1),
                     group_size=config.pick(ci=2, cpu=8, gpu=8, smoke=2),
                     max_new_tokens=evals.reasoning_max_new_tokens(),
                     eval_every=config.pick(ci=0, cpu=10, gpu=25, smoke=0),
                     min_difficulty=config.pick(ci=1, cpu=4, gpu=4, smoke=1))
    return replace(cfg, **overrides)


@dataclass
class GRPOResult:
    history: list[dict]   # per step: reward, right, kinds, thinking, tool calls, informative groups, (eval)
    samples: list[dict]   # a few answers at intervals: {"step", "question", "reply", "reward"}
    final: dict


def grpo_train(model: nn.Module, tokenizer, tasks: Sequence, cfg: GRPOConfig, checker: Checker, *,
               reference: nn.Module | None = None, eval_tasks: Sequence = (), sample_every: int = 0,
               progress: bool = True, desc: str = "GRPO") -> GRPOResult:
    """Train ``model`` in place for ``cfg.steps`` rounds of groups and updates, rewarded by ``checker``.

    Each round draws ``cfg.prompts_per_step`` of ``tasks`` at random (seeded by ``cfg.seed``).
    Every ``cfg.eval_every`` steps (and at the end) the greedy accuracy on ``eval_tasks`` is
    recorded as ``eval_accuracy``, graded strictly whatever the checker. ``reference`` (frozen)
    is needed only when ``cfg.kl_coef`` is not 0."""
    from tqdm.auto import tqdm

    from .chat import assistant_stop_ids
    from .generate import chat_replies

    if cfg.kl_coef and reference is None:
        raise ValueError("a KL penalty (kl_coef > 0) needs the reference model")
    device = next(model.parameters()).device
    pad_id = assistant_stop_ids(tokenizer)[-1]
    optimizer = make_optimizer(model, TrainConfig(lr=cfg.lr, weight_decay=0.0))
    params = [p for g in optimizer.param_groups for p in g["params"]]
    pick_gen = torch.Generator().manual_seed(cfg.seed)
    sample_gen = torch.Generator().manual_seed(cfg.seed + 1)
    loose_check = loose_checker(tokenizer)  # recorded beside any checker: what a loose grader would pass
    history, samples = [], []
    t0 = time.perf_counter()

    def evaluate(record: dict) -> None:
        if eval_tasks:
            result = evals.word_problems(model, tokenizer, eval_tasks, max_new_tokens=cfg.max_new_tokens)
            record["eval_accuracy"] = result["accuracy"]
        model.train()

    record0 = {"step": 0}
    evaluate(record0)
    history.append(record0)
    bar = tqdm(range(cfg.steps), desc=desc, unit="step", dynamic_ncols=True, **({} if progress else {"disable": True}))
    for step in bar:
        pick = torch.randint(0, len(tasks), (cfg.prompts_per_step,), generator=pick_gen).tolist()
        batch_tasks = [tasks[i] for i in pick for _ in range(cfg.group_size)]
        model.eval()
        replies = chat_replies(model, tokenizer, [[{"role": "user", "content": t.question}] for t in batch_tasks],
                               cfg.max_new_tokens, temperature=cfg.temperature, generator=sample_gen)
        rewards = torch.tensor([checker(t, m, tr) for t, (m, tr) in zip(batch_tasks, replies)])
        advantages, informative = group_advantages(rewards.view(cfg.prompts_per_step, cfg.group_size),
                                                   cfg.scale_by_std)
        traces = [tr for _, tr in replies]
        kinds = [evals.answer_kind(m, tr, t.answer, tokenizer) for t, (m, tr) in zip(batch_tasks, replies)]
        keep = informative.repeat_interleave(cfg.group_size).nonzero().squeeze(1).tolist()
        stats = {"clipfrac": 0.0, "loss": 0.0}
        if keep:
            ids, mask = pack_replies([traces[i] for i in keep], pad_id, model.config.block_size)
            ids, mask = ids.to(device), mask.to(device)
            adv = advantages.view(-1)[keep].to(device)
            with torch.no_grad():
                old_logp = token_logprobs(model(ids)[0], ids, cfg.temperature)
                ref_logp = token_logprobs(reference(ids)[0], ids, cfg.temperature) if cfg.kl_coef else None
            model.train()
            for _ in range(cfg.epochs):
                logp = token_logprobs(model(ids)[0], ids, cfg.temperature)
                loss, info = grpo_loss(logp, old_logp, adv, mask, clip=cfg.clip, average=cfg.average,
                                       ref_logp=ref_logp, kl_coef=cfg.kl_coef)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                stats = {"clipfrac": info["clipfrac"], "loss": loss.item()}
        thinking = [evals.thinking_tokens(tr.written, tokenizer) for tr in traces]
        loose = [loose_check(t, m, tr) for t, (m, tr) in zip(batch_tasks, replies)]
        record = {"step": step + 1, "reward": float(rewards.mean()),
                  "right": sum(k == "right" for k in kinds) / len(kinds),
                  "loose_only": sum(ok and k != "right" for ok, k in zip(loose, kinds)) / len(kinds),
                  "several_numbers": kinds.count("several numbers") / len(kinds),
                  "kinds": {k: kinds.count(k) for k in set(kinds)},
                  "thinking_tokens": sum(thinking) / len(thinking),
                  "written_tokens": sum(len(tr.written) for tr in traces) / len(traces),
                  "tool_call_rate": sum(bool(tr.tool_calls) for tr in traces) / len(traces),
                  "informative_groups": int(informative.sum()), **stats,
                  "seconds": round(time.perf_counter() - t0, 2)}
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            evaluate(record)
        history.append(record)
        if sample_every and ((step + 1) % sample_every == 0 or step == 0):
            samples.append({"step": step + 1, "question": batch_tasks[0].question,
                            "reply": tokenizer.decode(traces[0].written), "reward": float(rewards[0])})
        bar.set_postfix(reward=f"{record['reward']:.2f}", right=f"{record['right']:.0%}", refresh=False)
    bar.close()
    model.eval()
    last = history[-min(5, cfg.steps):]
    final = {"steps": cfg.steps, "seconds": round(time.perf_counter() - t0, 2),
             **{f"last5_{k}": round(sum(h[k] for h in last) / len(last), 4)
                for k in ("reward", "right", "thinking_tokens", "written_tokens", "tool_call_rate")}}
    return GRPOResult(history, samples, final)


# ----------------------------------------------------------------------------- the warm-up

# The cold start: about a thousand worked solutions, mixed with the conversations stage sft_tools
# learnt from (so the chat skills stay), and pretraining text in every batch (so the facts stay).
WARMUP_SOLUTIONS = {"ci": 40, "cpu": 1200, "gpu": 2400}
WARMUP_SHARE = 0.5  # share of worked solutions among the warm-up conversations
# "I don't know" answers in the replayed sft_tools conversations: more than sft_tools' own share, because
# confident worked solutions pull toward answering everything; much more costs known facts instead.
WARMUP_IDK_SHARE = 0.18


def warmup_config(**overrides) -> TrainConfig:
    """Warm-up sizes per profile (the supervised cold start before GRPO)."""
    from .sft import _config

    return _config(overrides, max_steps=config.pick(ci=10, cpu=300, gpu=600, smoke=2),
                   batch_size=config.pick(ci=8, cpu=16, gpu=32, smoke=2), lr=config.pick(ci=5e-4, cpu=5e-4, gpu=3e-4),
                   warmup_steps=config.pick(ci=2, cpu=10, gpu=20, smoke=1),
                   eval_every=config.pick(ci=5, cpu=50, gpu=100, smoke=0),
                   eval_batches=config.pick(ci=2, cpu=4, gpu=8, smoke=1))


def warm_up(model, tokenizer, world, train_tasks: Sequence, cfg: TrainConfig | None = None, *,
            n_solutions: int | None = None, calculator_share: float = CALCULATOR_SHARE, progress: bool = True,
            verbose: bool = True):
    """Fine-tune ``model`` in place on ``n_solutions`` worked solutions (a ``calculator_share``
    of them with the calculator) mixed with stage ``sft_tools``' own data and pretraining text;
    returns the training result."""
    import random

    from .sft import REPLAY_SHARE, finetune, replay_windows, tools_mixture

    cfg = cfg or warmup_config()
    n_solutions = n_solutions or config.pick(**WARMUP_SOLUTIONS, smoke=4)
    solutions = warmup_conversations(train_tasks, n_solutions, calculator_share, seed=cfg.seed)
    n_general = round(len(solutions) * (1 - WARMUP_SHARE) / WARMUP_SHARE)
    general = tools_mixture(world, idk_share=WARMUP_IDK_SHARE)[:n_general]
    mix = solutions + general
    random.Random(cfg.seed).shuffle(mix)
    torch.manual_seed(cfg.seed)
    result, _ = finetune(model, tokenizer, mix, cfg, replay=replay_windows(tokenizer, model.config.block_size),
                         replay_share=REPLAY_SHARE, progress=progress, verbose=verbose, samples=False,
                         desc="warm-up on worked solutions")
    return result


# ----------------------------------------------------------------------------- measuring a policy

PASS_KS = (1, 2, 4, 8, 16)


def measure(model, tokenizer, world, tasks: dict, *, name: str, general: bool = True, pass_k: bool = False) -> dict:
    """What chapter 10 records of a policy: greedy accuracy on the held-out problems (English and
    Chinese), by difficulty and kind of failure; with ``pass_k``, pass@k from 16 samples each on a
    third of them; with ``general``, the chat skills RL must not break (known facts, "I don't
    know", the calculator)."""
    out = {"name": name, "greedy": evals.word_problems(model, tokenizer, tasks["eval"]),
           "greedy_zh": evals.word_problems(model, tokenizer, tasks["eval_zh"])}
    if pass_k:
        subset = tasks["eval"][::3]
        out["sampled"] = evals.word_problems(model, tokenizer, subset, samples=max(PASS_KS), temperature=1.0,
                                             ks=PASS_KS, seed=1)
    if general:
        report = evals.chat_report(model, tokenizer, world)
        out["general"] = {k: report[k] for k in GENERAL_DROPS}
    return out


# ----------------------------------------------------------------------------- the stage

@dataclass
class WarmStart:
    """Stage ``rlhf`` measured, warmed up on worked solutions, measured again: where GRPO starts."""

    model: nn.Module            # the warmed-up policy (GRPO trains it in place)
    tokenizer: object
    world: object
    tasks: dict                 # split_tasks(world)
    before: dict                # measure() of stage rlhf
    warmed: dict                # measure() after the warm-up
    warmup: object              # the warm-up's TrainResult
    warmup_cfg: TrainConfig


@dataclass
class ReasoningRun:
    """What :func:`build_reasoning_stage` hands back to the notebook."""

    start: WarmStart
    after: dict                 # measure() after GRPO
    result: GRPOResult
    metrics: dict
    stage: stages.Stage | None

    @property
    def model(self) -> nn.Module:
        return self.start.model


def warm_start(warmup_cfg: TrainConfig | None = None, *, before: dict | None = None,
               calculator_share: float = CALCULATOR_SHARE, progress: bool = True, verbose: bool = True) -> WarmStart:
    """Load stage ``rlhf`` (rebuilt if missing), measure it (unless ``before``, its
    :func:`measure` with ``pass_k=True``, is given), warm it up on worked solutions
    (:func:`warm_up`) and measure it again."""
    from .model import model_from_stage
    from .sft import load_world

    warmup_cfg = warmup_cfg or warmup_config()
    parent = stages.ensure_stage("rlhf")
    model, tokenizer = model_from_stage(parent), parent.tokenizer()
    world = load_world()
    tasks = split_tasks(world)
    before = before or measure(model, tokenizer, world, tasks, name="rlhf", pass_k=True)
    warmup = warm_up(model, tokenizer, world, tasks["train"], warmup_cfg, calculator_share=calculator_share,
                     progress=progress, verbose=verbose)
    warmed = measure(model, tokenizer, world, tasks, name="warm-up", general=False, pass_k=True)
    if verbose:
        print(f"held-out word problems (difficulty 3-5, greedy): {before['greedy']['accuracy']:.0%} (rlhf) -> "
              f"{warmed['greedy']['accuracy']:.0%} after the warm-up")
    return WarmStart(model, tokenizer, world, tasks, before, warmed, warmup, warmup_cfg)


def reasoning_metrics(before: dict, warmed: dict, after: dict) -> dict:
    """The stage's flat numbers: greedy accuracy on held-out problems of difficulty 3-5 at each
    step (and its gains, in points), the Chinese ones, and the chat skills before and after."""
    pts = lambda a, b: round(100 * (a - b), 2)  # noqa: E731
    acc = {k: m["greedy"]["accuracy"] for k, m in (("rlhf", before), ("warmup", warmed), ("grpo", after))}
    out = {"word_problem_accuracy": round(acc["grpo"], 4),
           "word_problem_accuracy_rlhf": round(acc["rlhf"], 4),
           "word_problem_accuracy_warmup": round(acc["warmup"], 4),
           "gain_over_rlhf_pts": pts(acc["grpo"], acc["rlhf"]),
           "gain_over_warmup_pts": pts(acc["grpo"], acc["warmup"]),
           "word_problem_accuracy_zh": round(after["greedy_zh"]["accuracy"], 4),
           "word_problem_accuracy_zh_rlhf": round(before["greedy_zh"]["accuracy"], 4),
           "word_problem_n": after["greedy"]["n"],
           "by_difficulty": {str(d): round(a, 4) for d, a in after["greedy"]["by_difficulty"].items()},
           "thinking_tokens": round(after["greedy"]["thinking_tokens"], 2),
           "written_tokens_by_difficulty": {str(d): round(t, 1)
                                            for d, t in after["greedy"]["written_tokens_by_difficulty"].items()},
           "tool_call_rate": round(after["greedy"]["tool_call_rate"], 4)}
    if "sampled" in after and "sampled" in before:
        out["pass_at_k"] = {str(k): round(v, 4) for k, v in after["sampled"]["pass_at_k"].items()}
        out["pass_at_k_rlhf"] = {str(k): round(v, 4) for k, v in before["sampled"]["pass_at_k"].items()}
    for key, drop in GENERAL_DROPS.items():
        if key in before.get("general", {}):
            out[key] = after["general"][key]
            out[drop] = pts(before["general"][key], after["general"][key])
    return out


# The chat skills RL on word problems must not break, and the name of each one's drop in the metrics.
GENERAL_DROPS = {"known_fact_accuracy": "known_fact_accuracy_drop_pts", "unknown_idk_rate": "unknown_idk_rate_drop_pts",
                 "arithmetic_tool_accuracy": "arithmetic_tool_accuracy_drop_pts",
                 "end_token_rate": "end_token_rate_drop_pts"}


def build_reasoning_stage(start: WarmStart | None = None, *, cfg: GRPOConfig | None = None, save: bool = True,
                          progress: bool = True, verbose: bool = True) -> ReasoningRun:
    """GRPO with the strict checker from ``start`` (:func:`warm_start`, run first if not given),
    measured after; saves stage ``reasoning`` with the numbers of rlhf, the warm-up and GRPO."""
    cfg = cfg or grpo_config()
    start = start or warm_start(progress=progress, verbose=verbose)
    model, tokenizer, tasks = start.model, start.tokenizer, start.tasks
    config.seed_everything(cfg.seed)
    practice = [t for t in tasks["train"] if t.difficulty >= cfg.min_difficulty]
    result = grpo_train(model, tokenizer, practice, cfg, strict_checker(tokenizer), eval_tasks=tasks["eval"],
                        sample_every=max(1, cfg.steps // 5), progress=progress)
    after = measure(model, tokenizer, start.world, tasks, name="reasoning", pass_k=True)
    metrics = {**reasoning_metrics(start.before, start.warmed, after), "warmup_seconds": start.warmup.final["seconds"],
               "grpo_seconds": result.final["seconds"], "profile": config.profile()}
    stage = None
    if save:
        from .rl import _save_policy_stage

        stage = _save_policy_stage("reasoning", model, tokenizer, stages.ensure_stage("rlhf"), metrics,
                                   {"history": result.history, "samples": result.samples,
                                    "warmup_history": start.warmup.history,
                                    "measures": {"rlhf": _brief(start.before), "warm-up": _brief(start.warmed),
                                                 "reasoning": _brief(after)}},
                                   {"grpo": cfg.to_dict(), "warmup": start.warmup_cfg.to_dict()})
    if verbose:
        m = metrics
        print(f"{'saved stage reasoning' if save else 'GRPO run'}: held-out word problems (difficulty 3-5, greedy) "
              f"{m['word_problem_accuracy_rlhf']:.0%} (rlhf) -> {m['word_problem_accuracy_warmup']:.0%} (warm-up) -> "
              f"{m['word_problem_accuracy']:.0%} (GRPO); {result.final['seconds']:.0f} s of GRPO")
    return ReasoningRun(start, after, result, metrics, stage)


def _brief(measured: dict) -> dict:
    """A measure() without its examples, for history.json."""
    return {k: ({kk: vv for kk, vv in v.items() if kk != "examples"} if isinstance(v, dict) else v)
            for k, v in measured.items()}


def load_history() -> dict:
    """The training history stored with stage ``reasoning``."""
    return json.loads(stages.ensure_stage("reasoning").path("history.json").read_text(encoding="utf-8"))
