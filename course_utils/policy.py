"""A chat model as a *policy*: what the reward model (chapter 08) and PPO and DPO (chapter 09) share.

- **The token format.** :func:`encode_prompt` / :func:`encode_response` / :func:`pack`:
  (prompt, answer) -> padded token ids with a mask on the answer's tokens; one format for the
  reward model, PPO and DPO. :func:`transformer_hidden`: the GPT's final hidden states, which a
  reward head or a value head reads instead of the next-token head.
- **Log-probabilities of an answer.** :func:`token_logprobs` / :func:`response_logprobs` /
  :func:`sequence_logprob` under a model, the prompt masked out with the mask of :func:`pack`
  (:func:`action_mask`); :func:`kl_estimate`, how far a policy has moved from a reference.
- **Sampling answers to judge them.** :func:`evaluate_policy` samples answers to
  :class:`course_utils.world.PreferencePrompt` s and grades each with the world's hidden rubric
  (the "humans" the raters imitate), optionally a reward function and the KL to a reference:
  a :class:`PolicyEval`. The reward model samples the chat model's own answers for its raters
  this way, and chapter 09 judges every policy this way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import config

# (prompts, responses) as token ids -> one score per response.
RewardFn = Callable[[Sequence[Sequence[int]], Sequence[Sequence[int]]], torch.Tensor]


def max_answer_tokens() -> int:
    """How many tokens a policy may write per answer: in PPO's rollouts, when its answers are
    sampled for the raters, and when it is judged. Room for a refusal with an alternative."""
    return config.pick(ci=12, cpu=64, gpu=64)


# ----------------------------------------------------------------------------- token sequences

def transformer_hidden(gpt, idx: torch.Tensor) -> torch.Tensor:
    """The GPT's last hidden states (B, T, n_embd), after its final RMSNorm: what its
    next-token head reads. A reward or value head reads them instead."""
    x = gpt.drop(gpt.tok_emb(idx))
    for i, block in enumerate(gpt.blocks):
        x, _ = block(x, None, i)
    return gpt.norm(x)


def encode_prompt(tokenizer, prompt: str, max_tokens: int | None = None) -> list[int]:
    """A one-question conversation ready for the assistant's reply (ends with ``<|im_start|>assistant\\n``)."""
    from .chat import render_for_completion

    return render_for_completion([{"role": "user", "content": prompt}], tokenizer, max_tokens=max_tokens)


def encode_response(tokenizer, answer: str) -> list[int]:
    """An answer as the model would write it: its text, then ``<|im_end|>``.

    ``encode_prompt(p) + encode_response(a)`` is exactly the chat template's rendering of the
    two-message conversation, less the final newline, and exactly what a sampled reply looks
    like (generation stops at, and keeps, ``<|im_end|>``).
    """
    from .tokenizer import IM_END

    return list(tokenizer.encode(answer, allowed_special="none")) + [tokenizer.special_id(IM_END)]


def pack(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], *, pad_id: int,
         block_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Join each prompt and its response, right-pad to a common length.

    Returns ``(ids, response_mask, lengths)``: ``ids`` (B, T) long; ``response_mask`` (B, T),
    1.0 exactly on the response's tokens (0 on the prompt and the padding: the "masking of
    prompt tokens" every method here needs); ``lengths`` (B,) the real length of each row.
    A pair longer than ``block_size`` keeps its prompt and loses the end of its response.
    """
    rows = []
    for p, r in zip(prompts, responses):
        p, r = list(p), list(r)
        if len(p) >= block_size:
            raise ValueError(f"a prompt of {len(p)} tokens leaves no room for a response in {block_size} tokens")
        r = r[:block_size - len(p)]
        rows.append((p, r))
    T = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T)
    lengths = torch.zeros(len(rows), dtype=torch.long)
    for i, (p, r) in enumerate(rows):
        n = len(p) + len(r)
        ids[i, :n] = torch.tensor(p + r, dtype=torch.long)
        mask[i, len(p):n] = 1.0
        lengths[i] = n
    return ids, mask, lengths


# ----------------------------------------------------------------------------- log-probabilities

def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``out[b, t] = log p(ids[b, t+1] | ids[b, :t+1])``: (B, T-1), in float32.

    Position ``t`` of the output is the *action* that wrote token ``t + 1``. ``temperature``
    gives the probabilities of the distribution actually sampled from, ``softmax(logits / T)``.
    """
    logp = F.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


def action_mask(response_mask: torch.Tensor) -> torch.Tensor:
    """The response mask of :func:`pack` (B, T) in action coordinates (B, T-1):
    1 where the action writes a response token. Prompt and padding are masked out."""
    return response_mask[:, 1:]


def policy_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits of a GPT or a :class:`course_utils.rl.PolicyWithValue` (both return logits first)."""
    return model(ids)[0]


def response_logprobs(model: nn.Module, ids: torch.Tensor, response_mask: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probabilities of the response under ``model`` (sampled at ``temperature``),
    (B, T-1), 0 off the response."""
    return token_logprobs(policy_logits(model, ids), ids, temperature) * action_mask(response_mask)


def sequence_logprob(model: nn.Module, ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """``log pi(response | prompt)`` per row (B,): the sum of its tokens' log-probabilities."""
    return response_logprobs(model, ids, response_mask).sum(-1)


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sequence estimate of KL(policy || reference) from tokens sampled from the policy.

    Per token: ``r - 1 - log r`` with ``r = p_ref / p_policy`` of the sampled token (Schulman's
    "k3"). Its average over samples is the KL, like ``log p_policy - log p_ref`` ("k1", the
    per-token penalty in the reward), but it is never negative for any single sample, so a
    sum over a response is a sensible "distance travelled". Returns (B,), summed over tokens.
    """
    per_token = k3(logp, ref_logp)
    if mask is not None:
        per_token = per_token * mask
    return per_token.sum(-1)


def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per token, ``r - 1 - log r`` with ``r = p_ref / p_policy``: the never-negative KL estimate
    of :func:`kl_estimate`, before the sum (a penalty GRPO can add to its loss)."""
    log_r = (ref_logp - logp).float()
    return torch.expm1(log_r) - log_r


# ----------------------------------------------------------------------------- sampled answers, graded

@dataclass
class PolicyEval:
    """Sampled answers of one model to the evaluation prompts, graded.

    ``answers[k]`` answers ``prompts[k // samples]``. ``rubric`` is the world's hidden rubric
    (the judge), ``reward`` the reward model's normalised score (if a reward function was
    given), ``kl`` the per-answer KL estimate to the reference model.
    """

    name: str
    prompts: list
    samples: int
    answers: list[str]
    rubric: list[float]
    kl: list[float]
    reward: list[float] | None
    lengths: list[int]
    ended: list[bool]

    def summary(self) -> dict:
        n = max(1, len(self.answers))
        out = {"model": self.name, "answers": len(self.answers), "rubric_mean": round(sum(self.rubric) / n, 4),
               "kl": round(sum(self.kl) / n, 4), "length": round(sum(self.lengths) / n, 2),
               "ended": round(sum(self.ended) / n, 4)}
        if self.reward is not None:
            out["reward_mean"] = round(sum(self.reward) / n, 4)
        return out

    def rows(self, limit: int | None = None) -> list[dict]:
        out = []
        for k, answer in enumerate(self.answers[:limit]):
            p = self.prompts[k // self.samples]
            out.append({"prompt": p.prompt, "answer": answer, "rubric": self.rubric[k],
                        **({"reward": self.reward[k]} if self.reward is not None else {})})
        return out


@torch.no_grad()
def evaluate_policy(model: nn.Module, tokenizer, prompts: Sequence, *, name: str = "policy",
                    reference: nn.Module | None = None, reward_fn: RewardFn | None = None, samples: int = 2,
                    temperature: float = 1.0, max_new_tokens: int | None = None, seed: int = 0,
                    batch_size: int = 64) -> PolicyEval:
    """Sample ``samples`` answers per prompt (``prompts``: :class:`course_utils.world.PreferencePrompt` s)
    and grade each with the hidden rubric, the reward function, and the KL to ``reference``.
    ``max_new_tokens`` defaults to :func:`max_answer_tokens`."""
    from .chat import assistant_stop_ids
    from .generate import generate_batch
    from .world import judge

    max_new_tokens = max_new_tokens or max_answer_tokens()
    device = next(model.parameters()).device
    stop_ids = assistant_stop_ids(tokenizer)
    encoded = [encode_prompt(tokenizer, p.prompt) for p in prompts]
    rows = [e for e in encoded for _ in range(samples)]
    gen = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    responses = generate_batch(model, rows, max_new_tokens, temperature=temperature, stop_ids=stop_ids,
                               generator=gen)
    ended = [bool(r) and r[-1] in stop_ids for r in responses]
    texts = [tokenizer.decode([t for t in r if t not in stop_ids]) for r in responses]
    rubric = [judge(prompts[k // samples].meta, t) for k, t in enumerate(texts)]
    kl, reward = [], [] if reward_fn is not None else None
    for start in range(0, len(rows), batch_size):
        p, r = rows[start:start + batch_size], responses[start:start + batch_size]
        if reference is not None:
            ids, response_mask, _ = pack(p, r, pad_id=tokenizer.eot_id, block_size=model.config.block_size)
            ids, response_mask = ids.to(device), response_mask.to(device)
            logp = response_logprobs(model, ids, response_mask, temperature)
            ref_logp = response_logprobs(reference, ids, response_mask, temperature)
            kl += kl_estimate(logp, ref_logp, action_mask(response_mask)).cpu().tolist()
        if reward_fn is not None:
            reward += reward_fn(p, r).cpu().tolist()
    if reference is None:
        kl = [0.0] * len(rows)
    return PolicyEval(name, list(prompts), samples, texts, rubric, kl, reward, [len(r) for r in responses], ended)
