"""Reinforcement learning from human feedback (chapter 09): PPO against a reward model, and DPO.
Builds stages ``rlhf`` and ``dpo``.

**PPO** (proximal policy optimisation), the InstructGPT recipe, in a loop:

1. *Rollouts*: the policy (a copy of ``sft_tools``) answers a batch of prompts by sampling.
2. *Rewards*: the reward model scores each whole answer. Each token also pays a **KL
   penalty**, ``kl_coef * (log pi(token) - log pi_ref(token))``: how much more likely the policy
   made that token than the frozen reference model (``sft_tools``) did. This leash keeps the
   policy close to fluent, sensible text, where the reward model's judgement can be trusted.
3. *Advantages*: a **value head** on the policy's transformer predicts the reward still to come
   from each token on; **GAE** (generalised advantage estimation) turns rewards and values into
   "how much better than expected was this token".
4. *Update*: a few epochs of minibatch steps on the **clipped objective**: the probability
   ratio ``pi_new / pi_old`` of each sampled token is clipped to ``[1 - clip, 1 + clip]``, so one
   batch of samples cannot push the policy far.

**DPO** (direct preference optimisation) skips the reward model and the sampling: it trains
the policy directly on the comparisons with ``-log sigmoid(beta * (chosen margin - rejected
margin))``, where a margin is ``log pi(answer) - log pi_ref(answer)``, plus a small supervised
term on the chosen answers (:data:`DPO_NLL_WEIGHT`). It runs on the course's one training loop
(:func:`course_utils.train.train`), like the reward model.

What PPO, DPO and the reward model share (the prompt/answer token format, log-probabilities of an
answer, the KL estimate, sampling answers and grading them with the hidden rubric) lives in
:mod:`course_utils.policy`.

The **hidden-rubric judge** (:func:`course_utils.policy.evaluate_policy`, :func:`win_rate`) grades
sampled answers with the world's rubric, the "humans" the raters imitate; it never looks at the
reward model.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import config, stages
from .policy import (PolicyEval, RewardFn, action_mask, encode_prompt, evaluate_policy, kl_estimate,
                     max_answer_tokens, pack, response_logprobs, sequence_logprob, token_logprobs,
                     transformer_hidden)
from .train import TrainConfig, TrainResult, make_optimizer, train


# ----------------------------------------------------------------------------- masked averages (PPO)

def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Shift and scale ``x`` to mean 0, std 1 over the masked entries (0 elsewhere)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


# ----------------------------------------------------------------------------- PPO pieces

class PolicyWithValue(nn.Module):
    """The policy GPT plus a value head on its last hidden states: one pass gives both the
    next-token logits and, at every position, the predicted reward still to come."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt = gpt
        self.value_head = nn.Linear(gpt.config.n_embd, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    @property
    def config(self):
        return self.gpt.config

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = transformer_hidden(self.gpt, ids)
        return self.gpt.lm_head(h), self.value_head(h).squeeze(-1).float()


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (B, N) actions; ``mask`` marks real actions
    (a contiguous run per row; after the last one the episode is over).

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``:
    ``lam = 0`` trusts the value head (one-step), ``lam = 1`` uses the whole observed return.
    Returns ``(advantages, returns)`` with ``returns = advantages + values``, both 0 off the mask.
    """
    B, N = rewards.shape
    advantages = torch.zeros_like(rewards)
    last = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(N)):
        nonterminal = mask[:, t + 1] if t + 1 < N else torch.zeros_like(last)
        next_value = values[:, t + 1] * nonterminal if t + 1 < N else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * nonterminal * last) * mask[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * mask


def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    clip: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped surrogate, to minimise: ``-min(ratio * A, clip(ratio, 1-c, 1+c) * A)``,
    averaged over the masked tokens. Returns ``(loss, share of tokens where the clip was active)``.

    Once a token's ratio has moved past ``1 +/- clip`` in the direction its advantage wants,
    its gradient is zero: the update cannot run away from the policy that sampled the data.
    """
    per_token, clipped = clipped_surrogate(logp, old_logp, advantages, clip)
    return masked_mean(per_token, mask), masked_mean(clipped.float(), mask)


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token, the clipped objective to minimise and whether the clip was active (both the
    shape of ``logp``); :func:`ppo_policy_loss` averages them, GRPO averages them its own way."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip) * advantages
    return -torch.minimum(unclipped, clipped), clipped < unclipped


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                   clip: float = 0.2) -> torch.Tensor:
    """Squared error of the value head against the returns, with the new values clipped to
    ``old +/- clip`` (the larger of the two errors is used), as in the PPO implementations."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


@dataclass
class PPOConfig:
    steps: int = 60                 # rollout + update rounds
    prompts_per_step: int = 8       # prompts per rollout batch
    samples_per_prompt: int = 4     # answers sampled per prompt (same-length prompts generate together)
    max_new_tokens: int = 64
    temperature: float = 1.0        # sample from the policy itself: PPO's ratios assume it
    # The leash: reward per token lost for log(pi/pi_ref). On the cpu model, with the update
    # below and the reward model that reads the chat model's likelihood: 0.1 gave a win rate of
    # 55.3 % (KL 0.7 nats), 0.3 held the policy too close to move (52.4 %, KL 0.3). With rougher
    # updates (16 optimizer steps per batch) and an earlier reward model and data, 0.1 had let
    # the policy drift into a reward-model blind spot (33 %, KL 6.1).
    kl_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.2
    vf_clip: float = 0.2
    vf_coef: float = 0.1
    # How hard each batch of answers is used. On the cpu model, 4 epochs of minibatches of 8 (16
    # optimizer steps per batch) made PPO drift even when its reward was the hidden rubric itself
    # (win rate 42.8 %, KL 9.5 nats): Adam takes a full-size step on every noisy minibatch
    # gradient. Two epochs over the whole batch at once (2 steps) gave 56.0 % with the rubric as
    # the reward.
    ppo_epochs: int = 2
    minibatch_size: int = 32
    lr: float = 3e-5
    grad_clip: float = 1.0
    missing_end_penalty: float = 1.0  # an answer cut off at max_new_tokens loses this much reward
    seed: int = config.DEFAULT_SEED

    def to_dict(self) -> dict:
        return asdict(self)


def ppo_config(**overrides) -> PPOConfig:
    """PPO sizes per profile.

    ==== ===== ================ ========== ==========================================
    prof steps prompts x samples new tokens cost
    ==== ===== ================ ========== ==========================================
    ci   4     2 x 2            12         seconds (every code path, no lesson)
    cpu  70    8 x 4            64         ~2 min on 2 cores
    gpu  300   16 x 4           64
    ==== ===== ================ ========== ==========================================
    """
    cfg = PPOConfig(
        steps=config.pick(ci=4, cpu=70, gpu=300, smoke=1),  # one rollout, ppo_epochs optimizer steps
        prompts_per_step=config.pick(ci=2, cpu=8, gpu=16, smoke=1),
        samples_per_prompt=config.pick(ci=2, cpu=4, gpu=4, smoke=2),
        max_new_tokens=max_answer_tokens(),  # room for a refusal with an alternative
        minibatch_size=config.pick(ci=4, cpu=32, gpu=64, smoke=2),  # the whole batch of answers: one step per epoch
    )
    return replace(cfg, **overrides)  # an unknown name is a TypeError, like reward_config and dpo_config


@dataclass
class Rollout:
    """One batch of sampled answers and everything PPO computes from them, (B, ...) tensors."""

    prompts: list[list[int]]
    responses: list[list[int]]
    ids: torch.Tensor          # (B, T) prompt + response, right-padded
    mask: torch.Tensor         # (B, T-1) action mask: 1 where an action wrote a response token
    old_logp: torch.Tensor     # (B, T-1) log pi_old of each action
    ref_logp: torch.Tensor     # (B, T-1) log pi_ref
    values: torch.Tensor       # (B, T-1) value head before the action
    scores: torch.Tensor       # (B,) reward model (after the missing-end penalty)
    rewards: torch.Tensor      # (B, T-1) -kl_coef * k1 per token, + score on the last token
    advantages: torch.Tensor   # (B, T-1) whitened GAE advantages
    returns: torch.Tensor      # (B, T-1)
    ended: torch.Tensor        # (B,) did the answer end with a stop token
    prompt_index: list[int] = field(default_factory=list)  # which prompt of the pool each row answers


@torch.no_grad()
def rollout(policy: PolicyWithValue, reference: nn.Module, reward_fn: RewardFn, prompts: Sequence[Sequence[int]],
            cfg: PPOConfig, *, stop_ids: Sequence[int], pad_id: int, generator: torch.Generator | None = None,
            prompt_index: Sequence[int] | None = None) -> Rollout:
    """Sample ``cfg.samples_per_prompt`` answers per prompt and compute rewards and advantages."""
    from .generate import generate_batch

    device = next(policy.parameters()).device
    policy.eval()
    rows = [list(p) for p in prompts for _ in range(cfg.samples_per_prompt)]
    index = [i for i in (prompt_index or range(len(prompts))) for _ in range(cfg.samples_per_prompt)]
    responses = generate_batch(policy.gpt, rows, cfg.max_new_tokens, temperature=cfg.temperature,
                               stop_ids=stop_ids, generator=generator)
    stops = set(stop_ids)
    ended = torch.tensor([bool(r) and r[-1] in stops for r in responses])
    ids, response_mask, lengths = pack(rows, responses, pad_id=pad_id, block_size=policy.config.block_size)
    ids, response_mask = ids.to(device), response_mask.to(device)
    mask = action_mask(response_mask)
    logits, values = policy(ids)
    old_logp = token_logprobs(logits, ids, cfg.temperature) * mask
    values = values[:, :-1] * mask
    ref_logp = response_logprobs(reference, ids, response_mask, cfg.temperature)
    scores = reward_fn(rows, responses).to(device).float()
    scores = scores - cfg.missing_end_penalty * (~ended).to(device).float()
    rewards = -cfg.kl_coef * (old_logp - ref_logp) * mask
    last = (lengths - 2).to(device)  # the action that wrote the last token
    rewards[torch.arange(len(rows), device=device), last] += scores
    advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
    advantages = masked_whiten(advantages, mask)
    return Rollout(rows, responses, ids, mask, old_logp, ref_logp, values, scores, rewards, advantages, returns,
                   ended, index)


def ppo_update(policy: PolicyWithValue, optimizer: torch.optim.Optimizer, batch: Rollout, cfg: PPOConfig,
               generator: torch.Generator | None = None) -> dict:
    """``cfg.ppo_epochs`` passes of minibatch steps on the clipped objective; returns mean stats."""
    policy.train()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    B = batch.ids.size(0)
    stats = {"pg_loss": 0.0, "vf_loss": 0.0, "clipfrac": 0.0}
    n = 0
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(B, generator=generator)
        for start in range(0, B, cfg.minibatch_size):
            mb = order[start:start + cfg.minibatch_size].to(batch.ids.device)
            ids, mask = batch.ids[mb], batch.mask[mb]
            # Trim the padding this minibatch does not need.
            T = int(mask.sum(0).nonzero().max()) + 2 if mask.any() else ids.size(1)
            ids, mask = ids[:, :T], mask[:, :T - 1]
            logits, values = policy(ids)
            logp = token_logprobs(logits, ids, cfg.temperature) * mask
            pg_loss, clipfrac = ppo_policy_loss(logp, batch.old_logp[mb, :T - 1], batch.advantages[mb, :T - 1], mask,
                                                cfg.clip)
            vf_loss = ppo_value_loss(values[:, :-1], batch.values[mb, :T - 1], batch.returns[mb, :T - 1], mask,
                                     cfg.vf_clip)
            loss = pg_loss + cfg.vf_coef * vf_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            stats["pg_loss"] += pg_loss.item()
            stats["vf_loss"] += vf_loss.item()
            stats["clipfrac"] += clipfrac.item()
            n += 1
    policy.eval()
    return {k: v / max(1, n) for k, v in stats.items()}


@dataclass
class PPOResult:
    history: list[dict]   # per step: score, kl, objective, length, ended, judge (if any), losses, seconds
    samples: list[dict]   # a few rollout answers at intervals: {"step", "prompt", "answer", "score"}
    final: dict


def ppo_train(policy: PolicyWithValue, reference: nn.Module, reward_fn: RewardFn, prompts: Sequence[Sequence[int]],
              cfg: PPOConfig, *, stop_ids: Sequence[int], pad_id: int,
              judge_fn: Callable[[int, list[int]], float] | None = None, decode: Callable | None = None,
              sample_every: int = 0, progress: bool = True, desc: str = "PPO") -> PPOResult:
    """Run ``cfg.steps`` rounds of rollout and update; the reference model stays frozen.

    ``prompts`` are token ids (see :func:`course_utils.policy.encode_prompt`); each round draws
    ``cfg.prompts_per_step`` of them at random (seeded by ``cfg.seed``). ``judge_fn(i, response)``,
    if given, grades each sampled answer to prompt ``i`` independently of the reward (the
    history's ``judge``): that is how reward hacking becomes visible. ``decode`` turns ids into
    text for the samples kept every ``sample_every`` steps.
    """
    from tqdm.auto import tqdm

    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    device = next(policy.parameters()).device
    optimizer = make_optimizer(policy, TrainConfig(lr=cfg.lr, weight_decay=0.0))
    gen = torch.Generator().manual_seed(cfg.seed)
    sample_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    history, samples = [], []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=desc, unit="step", dynamic_ncols=True, **({} if progress else {"disable": True}))
    for step in bar:
        pick = torch.randint(0, len(prompts), (cfg.prompts_per_step,), generator=gen).tolist()
        batch = rollout(policy, reference, reward_fn, [prompts[i] for i in pick], cfg, stop_ids=stop_ids,
                        pad_id=pad_id, generator=sample_gen, prompt_index=pick)
        stats = ppo_update(policy, optimizer, batch, cfg, gen)
        kl = kl_estimate(batch.old_logp, batch.ref_logp, batch.mask)
        lengths = batch.mask.sum(-1)
        record = {"step": step + 1,
                  "score": float(batch.scores.mean()),
                  "kl": float(kl.mean()),
                  "objective": float((batch.scores - cfg.kl_coef * (batch.old_logp - batch.ref_logp).sum(-1)).mean()),
                  "length": float(lengths.mean()),
                  "ended": float(batch.ended.float().mean()),
                  **stats,
                  "seconds": round(time.perf_counter() - t0, 2)}
        if judge_fn is not None:
            record["judge"] = sum(judge_fn(i, r) for i, r in zip(batch.prompt_index, batch.responses)) / len(pick) \
                / cfg.samples_per_prompt
        history.append(record)
        if decode is not None and sample_every and ((step + 1) % sample_every == 0 or step == 0):
            samples.append({"step": step + 1, "prompt": decode(batch.prompts[0]), "answer": decode(batch.responses[0]),
                            "score": float(batch.scores[0])})
        bar.set_postfix(score=f"{record['score']:.2f}", kl=f"{record['kl']:.2f}", refresh=False)
    bar.close()
    last = history[-min(5, len(history)):]
    final = {"steps": cfg.steps, "seconds": round(time.perf_counter() - t0, 2),
             **{f"last5_{k}": round(sum(h[k] for h in last) / len(last), 4)
                for k in ("score", "kl", "length", "ended") + (("judge",) if judge_fn else ())}}
    return PPOResult(history, samples, final)


def reward_model_scorer(reward_model: nn.Module, *, pad_id: int, mean: float = 0.0, std: float = 1.0) -> RewardFn:
    """A ``reward_fn`` for PPO from a trained :class:`course_utils.reward.RewardModel`: its
    score of prompt + answer, shifted and scaled by the mean and std of its scores on the
    training answers (so a typical answer scores about 0 and the KL coefficient has a fixed
    meaning whatever scale the reward model happened to learn)."""
    device = next(reward_model.parameters()).device

    @torch.no_grad()
    def reward_fn(prompts, responses):
        reward_model.eval()
        ids, mask, lengths = pack(prompts, responses, pad_id=pad_id, block_size=reward_model.config.block_size)
        r = reward_model(ids.to(device), lengths.to(device), mask.to(device))
        return (r - mean) / max(std, 1e-6)

    return reward_fn


# ----------------------------------------------------------------------------- DPO

def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss from sequence log-probabilities (B,) under the policy and the reference.

    ``-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))``: Bradley–Terry again, with the
    *implicit reward* ``beta * (log pi(y) - log pi_ref(y))`` in place of a reward model.
    Returns ``(loss, chosen_rewards, rejected_rewards)``, the implicit rewards detached.
    """
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen - rejected).mean()
    return loss, chosen.detach(), rejected.detach()


def dpo_loss_fn(beta: float, nll_weight: float = 0.0):
    """A ``loss_fn`` for :func:`course_utils.train.train` on :class:`course_utils.reward.PreferenceBatches`
    carrying ``ref_logp`` (see :func:`attach_reference_logprobs`): :func:`dpo_loss`, plus
    ``nll_weight`` times the chosen answers' negative log-likelihood per token (0: plain DPO)."""

    def loss_fn(model, batch):
        logp = sequence_logprob(model, batch["ids"], batch["mask"])
        chosen, rejected = logp.chunk(2)
        loss, _, _ = dpo_loss(chosen, rejected, batch["ref_logp"][:, 0], batch["ref_logp"][:, 1], beta)
        if nll_weight:
            chosen_tokens = action_mask(batch["mask"]).sum(-1).chunk(2)[0].clamp(min=1.0)
            loss = loss - nll_weight * (chosen / chosen_tokens).mean()
        return loss

    return loss_fn


def attach_reference_logprobs(reference: nn.Module, data, batch_size: int = 64) -> None:
    """Compute ``log pi_ref`` of every chosen and rejected answer once, and attach them to
    ``data`` (a :class:`course_utils.reward.PreferenceBatches`) as ``ref_logp`` (N, 2)."""
    reference.eval()
    data.attach_per_answer("ref_logp", lambda ids, mask: sequence_logprob(reference, ids, mask),
                           device=next(reference.parameters()).device, batch_size=batch_size)


@torch.no_grad()
def dpo_accuracy(model: nn.Module, data, split: str = "val", beta: float = 0.1) -> dict:
    """How often the policy's implicit reward ranks the raters' chosen answer first, and the mean margin."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    margins = []
    for batch in data.iterate(split):
        logp = sequence_logprob(model, batch["ids"].to(device), batch["mask"].to(device)).cpu()
        c, r = logp.chunk(2)
        _, rc, rr = dpo_loss(c, r, batch["ref_logp"][:, 0], batch["ref_logp"][:, 1], beta)
        margins.append(rc - rr)
    model.train(was_training)
    m = torch.cat(margins)
    return {"dpo_accuracy": float((m > 0).float().mean()), "dpo_margin": float(m.mean())}


def dpo_config(**overrides) -> TrainConfig:
    """DPO training sizes per profile (a :class:`course_utils.train.TrainConfig`; ``beta`` is separate).

    ==== ===== ===== ====== ======================================
    prof steps pairs lr     cost
    ==== ===== ===== ====== ======================================
    ci   8     8     1e-4   seconds
    cpu  120   32    1e-4   ~0.5 epoch of ~7,200 comparisons, ~2 min
    gpu  600   64    5e-5
    ==== ===== ===== ====== ======================================

    On the cpu chain whose chat data mix answer qualities (win rate vs sft_tools at temperature 1):
    120 steps at 1e-4 56.3 %; lr 2e-4 56.6 %; 240 steps 55.4 % (one thread each). DPO wins on
    unsafe requests (70-73 %) and hardly on facts (51-52 %) in all three.
    """
    cfg = TrainConfig(
        max_steps=config.pick(ci=8, cpu=120, gpu=600, smoke=2),
        batch_size=config.pick(ci=8, cpu=32, gpu=64, smoke=2),
        lr=config.pick(ci=1e-4, cpu=1e-4, gpu=5e-5),
        warmup_steps=config.pick(ci=2, cpu=10, gpu=40, smoke=1),
        weight_decay=0.0,
        grad_clip=1.0,
        eval_every=config.pick(ci=4, cpu=40, gpu=200, smoke=0),
        eval_batches=config.pick(ci=2, cpu=8, gpu=16, smoke=1),
        seed=config.DEFAULT_SEED,
    )
    return replace(cfg, **overrides)  # an unknown name is a TypeError, not a silent no-op


# How far DPO may move from the reference. On the cpu chain with sampled comparisons: 0.05 won
# 52.2 % (KL 2.7, more repeated answers), 0.1 53.4 % (KL 1.1), 0.3 53.4 % (KL 0.4).
DPO_BETA = 0.1
# Plain DPO only asks that the chosen answer gain on the rejected one; both may lose likelihood
# together, and the mass goes to answers nobody compared. On a cpu sft_tools it lowered refusals of
# unsafe requests from 68 to 21 of 130 sampled answers (a needless refusal of a harmless question
# is a rejected answer that starts with the same words) and lost to sft_tools (44.8 %). Adding the
# chosen answers' log-likelihood per token with weight 1 kept them (51.6 %, KL 1.2; on the current
# sft_tools 51.7 %, KL 1.4).
DPO_NLL_WEIGHT = 1.0


# ----------------------------------------------------------------------------- the hidden-rubric judge

def win_rate(candidate: PolicyEval, baseline: PolicyEval) -> dict:
    """Answer by answer (same prompt, same sample slot), how often the hidden rubric scores the
    candidate higher than the baseline. A tie counts half: 50 % means "no better"."""
    if [p.prompt for p in candidate.prompts] != [p.prompt for p in baseline.prompts] or \
            candidate.samples != baseline.samples:
        raise ValueError("win_rate needs two evaluations of the same prompts with the same number of samples")
    return _wins(candidate.rubric, baseline.rubric)


def win_rate_ceiling(baseline: PolicyEval) -> dict:
    """The win rate a perfect model would get against ``baseline``: every answer as good as the
    best candidate answer the rubric knows for its prompt. Where the baseline's answer is
    already that good, the best a model can do is tie, so the ceiling is below 100 %."""
    best = [max(c.score for c in baseline.prompts[k // baseline.samples].candidates)
            for k in range(len(baseline.rubric))]
    return _wins(best, baseline.rubric)


def _wins(a: Sequence[float], b: Sequence[float]) -> dict:
    wins = sum(x > y for x, y in zip(a, b))
    ties = sum(x == y for x, y in zip(a, b))
    n = len(a)
    return {"win_rate": round((wins + 0.5 * ties) / max(1, n), 4), "wins": wins, "ties": ties,
            "losses": n - wins - ties, "n": n}


def win_rate_by_kind(candidate: PolicyEval, baseline: PolicyEval) -> dict[str, dict]:
    """:func:`win_rate` separately for each kind of prompt ("fact", "unsafe"), with both mean rubric scores."""
    win_rate(candidate, baseline)  # same checks
    kinds = [candidate.prompts[k // candidate.samples].meta["kind"] for k in range(len(candidate.rubric))]
    out = {}
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        a, b = [candidate.rubric[i] for i in idx], [baseline.rubric[i] for i in idx]
        out[kind] = {**_wins(a, b), "rubric_mean": round(sum(a) / len(a), 3),
                     "baseline_rubric_mean": round(sum(b) / len(b), 3)}
    return out


def side_by_side(new: PolicyEval, old: PolicyEval, n: int = 8) -> str:
    """Text to print: the first answer of each model to the same questions, one under the other
    with its rubric score, for ``n`` questions: the first ``n // 2`` in order, then only those
    where the rubric's verdict changed."""
    win_rate(new, old)  # same checks
    lines, shown = [], 0
    for k in range(0, len(new.answers), new.samples):
        if new.rubric[k] == old.rubric[k] and shown >= n // 2:
            continue  # show mostly the answers that changed the verdict
        lines += [f"Q: {new.prompts[k // new.samples].prompt}",
                  f"   {old.name:<9} ({old.rubric[k]:+5.1f}) {old.answers[k][:100]!r}",
                  f"   {new.name:<9} ({new.rubric[k]:+5.1f}) {new.answers[k][:100]!r}"]
        shown += 1
        if shown >= n:
            break
    return "\n".join(lines)


def verdict(prompt_meta: dict, answer: str) -> str:
    """What the hidden rubric sees in an answer, in a word or two: "fact: right", "fact: I don't
    know", "fact: wrong", "unsafe: refuses" or "unsafe: goes along"."""
    from .world import describe_answer

    seen = describe_answer(prompt_meta, answer)
    if prompt_meta["kind"] == "unsafe":
        return "unsafe: refuses" if seen["refused"] else "unsafe: goes along"
    return "fact: right" if seen["correct"] else "fact: I don't know" if seen["idk"] else "fact: wrong"


def reward_by_verdict(evaluation: PolicyEval) -> dict[str, dict]:
    """Graded answers (with reward-model scores) grouped by :func:`verdict`, in alphabetical order:
    per verdict the number of answers, their mean reward-model score and the share that closed
    the turn. Does the reward model score right answers above wrong ones, refusals of unsafe
    requests above going along?"""
    if evaluation.reward is None:
        raise ValueError("reward_by_verdict needs an evaluation with reward-model scores (evaluate_policy(reward_fn=...))")
    groups: dict[str, list[tuple[float, bool]]] = {}
    for k, answer in enumerate(evaluation.answers):
        question = evaluation.prompts[k // evaluation.samples]
        groups.setdefault(verdict(question.meta, answer), []).append((evaluation.reward[k], evaluation.ended[k]))
    return {v: {"answers": len(rows), "reward_mean": sum(r for r, _ in rows) / len(rows),
                "ended": sum(e for _, e in rows) / len(rows)} for v, rows in sorted(groups.items())}


# ----------------------------------------------------------------------------- the stages

def eval_settings(greedy: bool = False) -> dict:
    """How the chapter judges a policy: answers per held-out prompt, temperature, length.

    Every model is compared with ``sft_tools`` decoding the same way: sampled at temperature 1
    (the policy exactly as RL trains it), and, with ``greedy=True``, one answer each at
    temperature 0 (each model's single most likely answer)."""
    if greedy:
        return {"samples": 1, "temperature": 0.0, "max_new_tokens": ppo_config().max_new_tokens, "seed": 0}
    return {"samples": config.pick(ci=1, cpu=2, gpu=4, smoke=1), "temperature": 1.0,
            "max_new_tokens": ppo_config().max_new_tokens, "seed": 0}


@dataclass
class Judged:
    """A model's graded answers to the held-out prompts, sampled and greedy, beside ``sft_tools``' own."""

    sampled: PolicyEval
    greedy: PolicyEval
    baseline: PolicyEval
    greedy_baseline: PolicyEval

    def metrics(self) -> dict:
        """Wins, ties, losses and the win rate against ``sft_tools`` at each decoding, with the
        ceiling (a perfect model's win rate) beside each."""
        greedy = win_rate(self.greedy, self.greedy_baseline)
        return {**win_rate(self.sampled, self.baseline), "win_rate_ceiling": win_rate_ceiling(self.baseline)["win_rate"],
                "greedy_win_rate": greedy["win_rate"], "greedy_wins": greedy["wins"], "greedy_ties": greedy["ties"],
                "greedy_losses": greedy["losses"], "greedy_n": greedy["n"],
                "greedy_win_rate_ceiling": win_rate_ceiling(self.greedy_baseline)["win_rate"],
                **{f"eval_{k}": v for k, v in self.sampled.summary().items() if k != "model"},
                "baseline_rubric_mean": self.baseline.summary()["rubric_mean"]}


def judge_policy(model: nn.Module, tokenizer, prompts: Sequence, *, name: str, reference: nn.Module,
                 baseline: PolicyEval | None = None, greedy_baseline: PolicyEval | None = None,
                 reward_fn: RewardFn | None = None) -> Judged:
    """Evaluate ``model`` and ``reference`` (``sft_tools``) on ``prompts``, sampled and greedy;
    baselines already computed are reused."""
    sampled = evaluate_policy(model, tokenizer, prompts, name=name, reference=reference, reward_fn=reward_fn,
                              **eval_settings())
    greedy = evaluate_policy(model, tokenizer, prompts, name=f"{name}, greedy", reference=reference,
                             **eval_settings(greedy=True))
    baseline = baseline or evaluate_policy(reference, tokenizer, prompts, name="sft_tools", reward_fn=reward_fn,
                                           **eval_settings())
    greedy_baseline = greedy_baseline or evaluate_policy(reference, tokenizer, prompts, name="sft_tools, greedy",
                                                         **eval_settings(greedy=True))
    return Judged(sampled, greedy, baseline, greedy_baseline)


@dataclass
class RLRun:
    """What :func:`build_rlhf_stage` and :func:`build_dpo_stage` hand back to the notebook."""

    model: nn.Module                  # the trained policy (a plain GPT)
    tokenizer: object
    metrics: dict
    judged: Judged                    # its graded answers to the held-out prompts, and sft_tools'
    result: object                    # PPOResult or TrainResult
    stage: stages.Stage | None
    policy: nn.Module | None = None   # PPO: the policy with its value head

    @property
    def evaluation(self) -> PolicyEval:
        return self.judged.sampled

    @property
    def baseline(self) -> PolicyEval:
        return self.judged.baseline

    def report(self) -> str:
        """Text to print: the win rate against ``sft_tools`` at each decoding (wins, ties, losses
        and the ceiling), the KL and the mean rubric score, and the sampled win rate by kind of prompt."""
        m = self.metrics
        lines = [f"{self.evaluation.name}:",
                 f"  sampled: win rate {m['win_rate']:.1%} ({m['wins']} wins, {m['ties']} ties, {m['losses']} "
                 f"losses; ceiling {m['win_rate_ceiling']:.1%})",
                 f"  greedy : win rate {m['greedy_win_rate']:.1%} ({m['greedy_wins']} wins, {m['greedy_ties']} ties, "
                 f"{m['greedy_losses']} losses; ceiling {m['greedy_win_rate_ceiling']:.1%})",
                 f"  KL to sft_tools {m['eval_kl']:.2f} nats per answer; mean rubric score "
                 f"{m['baseline_rubric_mean']:+.2f} -> {m['eval_rubric_mean']:+.2f}"]
        for kind, row in win_rate_by_kind(self.evaluation, self.baseline).items():
            lines.append(f"  {kind:<7} sampled win rate {row['win_rate']:.0%} over {row['n']} answers; rubric "
                         f"{row['baseline_rubric_mean']:+.2f} -> {row['rubric_mean']:+.2f}")
        return "\n".join(lines)


def _setting(tokenizer=None):
    """sft_tools (as the reference), its tokenizer, the world and the RL prompts split by prompt."""
    from .model import model_from_stage
    from .reward import load_world, split_prompts
    from .world import preference_prompts

    parent = stages.ensure_stage("sft_tools")
    tokenizer = tokenizer or parent.tokenizer()
    reference = model_from_stage(parent)
    reference.requires_grad_(False)
    prompts = split_prompts(preference_prompts(load_world())[:config.budget(None, smoke=10)])
    return parent, tokenizer, reference, prompts


def _save_policy_stage(name: str, model, tokenizer, parent, metrics: dict, history: dict, train_cfg: dict) -> stages.Stage:
    from .model import model_meta, save_model_files

    files = {
        **save_model_files(model),
        stages.TOKENIZER_FILE: parent.path(stages.TOKENIZER_FILE).read_bytes(),
        "metrics.json": json.dumps(metrics, indent=2, ensure_ascii=False),
        "history.json": json.dumps(history, ensure_ascii=False),
    }
    stages.save_stage(name, files, meta={**model_meta(model), "metrics": metrics, "train_config": train_cfg})
    return stages.load_stage(name)


def build_rlhf_stage(*, cfg: PPOConfig | None = None, baseline: PolicyEval | None = None,
                     greedy_baseline: PolicyEval | None = None, save: bool = True, progress: bool = True,
                     verbose: bool = True) -> RLRun:
    """PPO from ``sft_tools`` against stage ``reward``; judged on held-out prompts; saves stage ``rlhf``.

    ``save=False`` trains and evaluates without saving (the chapter's reward-hacking run).
    ``baseline`` and ``greedy_baseline`` reuse ``sft_tools``' graded answers already computed
    (:func:`course_utils.policy.evaluate_policy` with :func:`eval_settings`).
    """
    from .chat import assistant_stop_ids
    from .model import model_from_stage
    from .reward import load_reward_model
    from .world import judge

    cfg = cfg or ppo_config()
    parent, tokenizer, reference, prompts = _setting()
    reward_model, _, reward_stage = load_reward_model()
    reward_model.requires_grad_(False)
    m = reward_stage.metrics
    reward_fn = reward_model_scorer(reward_model, pad_id=tokenizer.eot_id, mean=m.get("score_mean", 0.0),
                                    std=m.get("score_std", 1.0))
    config.seed_everything(cfg.seed)
    policy = PolicyWithValue(model_from_stage(parent)).to(config.device())
    train_prompts = prompts["train"]
    encoded = [encode_prompt(tokenizer, p.prompt) for p in train_prompts]
    if verbose:
        print(f"PPO: {cfg.steps} steps x {cfg.prompts_per_step} prompts x {cfg.samples_per_prompt} samples, "
              f"kl_coef {cfg.kl_coef}, {len(train_prompts)} training prompts")
    stop_ids = assistant_stop_ids(tokenizer)
    result = ppo_train(policy, reference, reward_fn, encoded, cfg, stop_ids=stop_ids, pad_id=tokenizer.eot_id,
                       judge_fn=lambda i, r: judge(train_prompts[i].meta,
                                                   tokenizer.decode([t for t in r if t not in stop_ids])),
                       decode=tokenizer.decode, sample_every=max(1, cfg.steps // 5), progress=progress,
                       desc=f"PPO (kl_coef {cfg.kl_coef:g})")
    judged = judge_policy(policy.gpt, tokenizer, prompts["val"], name="rlhf", reference=reference,
                          baseline=baseline, greedy_baseline=greedy_baseline, reward_fn=reward_fn)
    metrics = {**judged.metrics(), "baseline_reward_mean": judged.baseline.summary().get("reward_mean"),
               "train_seconds": result.final["seconds"], "kl_coef": cfg.kl_coef, "profile": config.profile()}
    stage = None
    if save:
        stage = _save_policy_stage("rlhf", policy.gpt, tokenizer, parent, metrics,
                                   {"history": result.history, "samples": result.samples}, cfg.to_dict())
    if verbose:
        print(f"{'saved stage rlhf' if save else 'PPO run'}: {_verdict(metrics)}, "
              f"KL {metrics['eval_kl']:.2f} nats, {result.final['seconds']:.0f} s of PPO")
    return RLRun(policy.gpt, tokenizer, metrics, judged, result, stage, policy)


def _verdict(m: dict) -> str:
    return (f"win rate vs sft_tools by the hidden rubric {m['win_rate']:.1%} sampled "
            f"({m['wins']}/{m['ties']}/{m['losses']} wins/ties/losses, ceiling {m['win_rate_ceiling']:.1%}), "
            f"{m['greedy_win_rate']:.1%} greedy (ceiling {m['greedy_win_rate_ceiling']:.1%})")


def build_dpo_stage(*, cfg: TrainConfig | None = None, beta: float = DPO_BETA, nll_weight: float = DPO_NLL_WEIGHT,
                    baseline: PolicyEval | None = None, greedy_baseline: PolicyEval | None = None,
                    reward_fn: RewardFn | None = None, live_plot: bool = False, progress: bool = True,
                    verbose: bool = True) -> RLRun:
    """DPO from ``sft_tools`` on the raters' comparisons (the reward model's training data: the
    written answers and sft_tools' own, stored with stage ``reward``); judged on the held-out
    prompts like PPO; saves stage ``dpo``.

    Training never uses a reward model; ``reward_fn`` (optional) only *reports* the reward
    model's opinion of the final answers, for comparison with PPO."""
    from .model import model_from_stage
    from .reward import load_sampled_pairs, preference_data

    cfg = cfg or dpo_config()
    parent, tokenizer, reference, prompts = _setting()
    config.seed_everything(cfg.seed)
    policy = model_from_stage(parent).train()
    data = preference_data(tokenizer, policy.config.block_size, sampled=load_sampled_pairs())
    start = time.perf_counter()
    attach_reference_logprobs(reference, data)
    ref_seconds = time.perf_counter() - start
    if verbose:
        print(f"DPO: beta {beta}, chosen-answer NLL weight {nll_weight}, {len(data.pairs['train'])} training "
              f"comparisons, {cfg.max_steps} steps x "
              f"{cfg.batch_size} comparisons ({ref_seconds:.0f} s to score them once under the reference)")
    result = train(policy, data, cfg, loss_fn=dpo_loss_fn(beta, nll_weight),
                   on_eval=lambda model, step: dpo_accuracy(model, data, "val", beta), live_plot=live_plot,
                   progress=progress, desc=f"DPO (beta {beta:g})", verbose=verbose)
    judged = judge_policy(policy, tokenizer, prompts["val"], name="dpo", reference=reference, baseline=baseline,
                          greedy_baseline=greedy_baseline, reward_fn=reward_fn)
    metrics = {**judged.metrics(), **dpo_accuracy(policy, data, "val", beta),
               "train_seconds": round(result.final["seconds"] + ref_seconds, 2), "beta": beta,
               "nll_weight": nll_weight,
               "profile": config.profile()}
    stage = _save_policy_stage("dpo", policy, tokenizer, parent, metrics, {"history": result.history},
                               {**cfg.to_dict(), "beta": beta, "nll_weight": nll_weight})
    if verbose:
        print(f"saved stage dpo: {_verdict(metrics)}, KL {metrics['eval_kl']:.2f} nats, "
              f"{metrics['train_seconds']:.0f} s of training")
    return RLRun(policy, tokenizer, metrics, judged, result, stage)


def load_policy(name: str = "rlhf", device=None):
    """A trained policy stage (``rlhf`` or ``dpo``) as ``(model, tokenizer)``, rebuilt headless if missing."""
    from .model import model_from_stage

    stage = stages.ensure_stage(name)
    return model_from_stage(stage, device), stage.tokenizer()


def load_history(name: str = "rlhf") -> dict:
    """The training history stored with stage ``rlhf`` or ``dpo``."""
    return json.loads(stages.ensure_stage(name).path("history.json").read_text(encoding="utf-8"))

