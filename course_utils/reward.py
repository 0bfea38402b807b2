"""A reward model learned from human comparisons (chapter 08). Builds stage ``reward``.

Raters never give an answer a score; they only say which of two answers they prefer. The
**Bradley–Terry** model turns scores into such choices: if the reward model gives the two
answers scores ``r_a`` and ``r_b``, the chance that a rater prefers ``a`` is
``sigmoid(r_a - r_b)``. Training maximises the likelihood of the raters' actual choices, i.e.
minimises ``-log sigmoid(r_chosen - r_rejected)``: only *differences* of scores matter, so the
scale of rewards is learned but their zero point is arbitrary.

The network is the chat model itself with its next-token head replaced by a **scalar head**:
the transformer reads ``prompt + answer + <|im_end|>`` and the head turns the hidden state
of the last real token (the one that has seen everything) into one number. To that number it
adds, with a learned weight, how likely a frozen copy of the chat model finds the answer: the
chat model knows which facts are true, and a small reward model cannot learn that from a few
thousand comparisons (see :class:`RewardModel`).

The token format it reads, (prompt, answer) -> padded ids with a mask on the answer, is the one
PPO and DPO use too: it lives in :mod:`course_utils.policy`, with the log-probabilities of an answer.

- :class:`RewardModel`, :func:`bradley_terry_loss`, :func:`pairwise_accuracy`.
- :class:`PreferenceBatches`: the raters' comparisons as a batch source for :func:`course_utils.train.train`;
  :func:`sampled_pairs`: comparisons of the chat model's own answers, beside the world's written ones.
- :func:`build_reward_stage`: initialise from ``sft_tools``, train with the course's one loop,
  save stage ``reward``; :func:`load_reward_model` reads it back.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import config, stages
from .policy import (action_mask, encode_prompt, encode_response, evaluate_policy, pack,
                     response_logprobs, transformer_hidden)
from .train import TrainConfig, TrainResult, train

# Every 5th preference prompt (by id) is held out: its comparisons are never trained on, and
# its prompts are where chapter 09 measures win rates. Split by *prompt*, so a held-out
# comparison never shares its question with a training one.
HELDOUT_EVERY = 5
# Raters also compare the chat model's own answers: this many sampled per preference prompt.
SAMPLED_ANSWERS_PER_PROMPT = 4
SAMPLED_PAIRS_FILE = "sampled_comparisons.json"


# ----------------------------------------------------------------------------- sizes

def reward_config(**overrides) -> TrainConfig:
    """Training sizes of the reward model per profile (the backbone is ``sft_tools``' model).

    ==== ===== ===== ====== =============================================
    prof steps pairs lr     cost
    ==== ===== ===== ====== =============================================
    ci   12    8     3e-4   seconds (every code path, no lesson)
    cpu  400   16    3e-4   ~0.9 epoch of ~7,200 comparisons
    gpu  1200  64    1e-4   ~5 epochs of ~14,000 comparisons
    ==== ===== ===== ====== =============================================

    Measured on the cpu model (held-out pairwise accuracy): 1,900 comparisons seen 2.5 times at
    lr 1e-3 gave 71 %; 7,200 comparisons seen about once at 3e-4, 74 %. More distinct
    comparisons help more than more passes over the same ones. With the likelihood term (see
    RewardModel), 800 steps gave 80.7 % against 82.3 % at 400 (one thread each).
    """
    cfg = TrainConfig(
        max_steps=config.pick(ci=12, cpu=400, gpu=1200, smoke=2),
        batch_size=config.pick(ci=8, cpu=16, gpu=64, smoke=2),  # comparisons per step (twice as many sequences)
        lr=config.pick(ci=3e-4, cpu=3e-4, gpu=1e-4),
        warmup_steps=config.pick(ci=2, cpu=20, gpu=60, smoke=1),
        weight_decay=0.1,
        grad_clip=1.0,
        eval_every=config.pick(ci=6, cpu=100, gpu=200, smoke=0),
        eval_batches=config.pick(ci=2, cpu=4, gpu=16, smoke=1),
        seed=config.DEFAULT_SEED,
    )
    return replace(cfg, **overrides)  # an unknown name is a TypeError, not a silent no-op


# ----------------------------------------------------------------------------- the network

class RewardModel(nn.Module):
    """A transformer backbone (a :class:`course_utils.model.GPT`) and a scalar head, plus the
    chat model's own opinion of the answer.

    ``forward(ids, lengths, answer_mask)`` -> one reward per row, the sum of two terms:

    - the head's score of the backbone's hidden state at position ``lengths - 1`` (the last
      real token; rows are right-padded, and causal attention means the padding after a token
      never changes what that token sees), and
    - ``likelihood_weight`` times the **mean log-probability per answer token** under ``prior``,
      a frozen copy of the chat model (``sft_tools``): how plausible the answer is to a model
      that knows the facts. ``answer_mask`` (from :func:`pack`) marks the answer's tokens.

    Why the second term: a wrong fact differs from the right one in a word or two, and a
    reward model this small does not learn from a few thousand comparisons which of hundreds of
    facts are true (trained alone, its head scored right and wrong facts almost alike), while
    the chat model it starts from already knows most of them. The prior stays frozen so that
    training cannot bend its likelihoods. The weight is trained like the head, but AdamW moves
    one number by at most about the learning rate per step, so it stays near its start of 1
    (0.98 after the cpu run; starting at 0.3, 2 or 4 was no better, and a 30 times larger
    learning rate for it moved it to 0.64 and cost 1.3 points).
    The backbone's own next-token head is kept (it is the embedding matrix, tied) but unused.
    """

    def __init__(self, backbone, prior):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.n_embd, 1, bias=False)
        # Zero: before training the head has no opinion; the score is the chat model's likelihood.
        nn.init.zeros_(self.head.weight)
        self.prior = prior.requires_grad_(False).eval()
        self.likelihood_weight = nn.Parameter(torch.tensor(1.0))

    @property
    def config(self):
        return self.backbone.config

    def train(self, mode: bool = True):
        super().train(mode)
        self.prior.eval()  # frozen: always in inference mode
        return self

    @torch.no_grad()
    def answer_likelihood(self, ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
        """Mean log-probability per answer token under the frozen prior, (B,)."""
        tokens = action_mask(answer_mask).sum(-1).clamp(min=1.0)
        return response_logprobs(self.prior, ids, answer_mask).sum(-1).float() / tokens

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, answer_mask: torch.Tensor,
                likelihood: torch.Tensor | None = None) -> torch.Tensor:
        """``likelihood``: :meth:`answer_likelihood` of these rows if already known (the prior
        is frozen, so a stored value is exact; see :func:`attach_answer_likelihood`)."""
        h = transformer_hidden(self.backbone, ids)
        last = h[torch.arange(ids.size(0), device=ids.device), lengths - 1]
        if likelihood is None:
            likelihood = self.answer_likelihood(ids, answer_mask)
        return self.head(last).squeeze(-1).float() + self.likelihood_weight * likelihood.to(ids.device).float()

    def num_params(self) -> int:
        """Trained parameters (backbone, head, weight); the frozen prior is not counted."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- the loss

def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """``-log sigmoid(r_chosen - r_rejected)``, averaged: the negative log-likelihood of the
    raters' choices under Bradley–Terry. Its gradient raises ``r_chosen`` and lowers
    ``r_rejected``, by ``1 - sigmoid(difference)``: a lot when the model disagrees with the
    rater, hardly at all once it agrees confidently."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Share of comparisons where the chosen answer scores higher (a tie counts as half)."""
    diff = r_chosen - r_rejected
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def reward_loss(model: RewardModel, batch: dict) -> torch.Tensor:
    """The ``loss_fn`` for :func:`course_utils.train.train`: chosen and rejected answers go
    through the model as one batch (first half chosen, second half rejected)."""
    r = model(batch["ids"], batch["lengths"], batch["mask"], stored_likelihood(batch))
    r_chosen, r_rejected = r.chunk(2)
    return bradley_terry_loss(r_chosen, r_rejected)


def stored_likelihood(batch: dict) -> torch.Tensor | None:
    """The batch's prior likelihoods in row order (chosen, then rejected), if attached."""
    if "answer_likelihood" not in batch:
        return None
    pairs = batch["answer_likelihood"]
    return torch.cat([pairs[:, 0], pairs[:, 1]])


def attach_answer_likelihood(model: RewardModel, data: "PreferenceBatches", splits: Sequence[str] | None = None,
                             batch_size: int = 64) -> None:
    """Compute the frozen prior's :meth:`RewardModel.answer_likelihood` of every chosen and
    rejected answer of ``splits`` (default: all) once, and attach them to ``data`` as
    ``answer_likelihood`` (N, 2).

    The prior never changes, so every later pass can reuse these numbers instead of running a
    second transformer over the same answers again (DPO does the same with its reference model).
    It pays for comparisons that are scored many times, like the held-out ones."""
    data.attach_per_answer("answer_likelihood", model.answer_likelihood, splits,
                           device=next(model.parameters()).device, batch_size=batch_size)


# ----------------------------------------------------------------------------- the data

def load_world():
    """The synthetic world the earlier stages were trained on (its seed is stored with stage ``clean``)."""
    from . import world

    seed = config.DEFAULT_SEED
    if stages.stage_exists("clean"):
        seed = stages.load_stage("clean").meta.get("seed", seed)
    return world.build_world(seed)


def split_pairs(pairs) -> dict[str, list]:
    """``{"train": [...], "val": [...]}``: comparisons of every HELDOUT_EVERY-th prompt are held out."""
    return {"train": [p for p in pairs if p.prompt_id % HELDOUT_EVERY],
            "val": [p for p in pairs if p.prompt_id % HELDOUT_EVERY == 0]}


def split_prompts(prompts) -> dict[str, list]:
    """The same split for :class:`course_utils.world.PreferencePrompt` s (the prompts RL trains and is judged on)."""
    return {"train": [p for p in prompts if p.prompt_id % HELDOUT_EVERY],
            "val": [p for p in prompts if p.prompt_id % HELDOUT_EVERY == 0]}


class PreferenceBatches:
    """Rater comparisons as a batch source for :func:`course_utils.train.train` (and DPO).

    ``pairs`` maps a split ("train", "val") to :class:`course_utils.world.PreferencePair` s.
    A batch is a dict: ``ids`` (2B, T), ``mask`` (2B, T, 1.0 on answer tokens) and ``lengths``
    (2B,), the B chosen answers first, then the B rejected ones in the same order, and
    ``index`` (B,) the pairs' positions in their split. With :meth:`attach` (or
    :meth:`attach_per_answer`) a batch also carries per-pair tensors computed once: DPO's
    reference log-probabilities, the reward model's prior likelihood of the held-out answers.
    """

    def __init__(self, pairs: dict[str, Sequence], tokenizer, block_size: int, pad_id: int | None = None):
        self.pairs = {split: list(ps) for split, ps in pairs.items()}
        self.block_size = block_size
        self.pad_id = tokenizer.eot_id if pad_id is None else pad_id
        prompt_cache: dict[str, list[int]] = {}
        self.encoded = {}
        for split, ps in self.pairs.items():
            rows = []
            for p in ps:
                if p.prompt not in prompt_cache:
                    prompt_cache[p.prompt] = encode_prompt(tokenizer, p.prompt)
                rows.append((prompt_cache[p.prompt], encode_response(tokenizer, p.chosen),
                             encode_response(tokenizer, p.rejected)))
            self.encoded[split] = rows
        self.extra: dict[str, dict[str, torch.Tensor]] = {split: {} for split in self.pairs}

    def __len__(self) -> int:
        return len(self.pairs.get("train", ()))

    def batch(self, split: str, index: Sequence[int]) -> dict:
        """The batch of the pairs at positions ``index`` of ``split``."""
        rows = [self.encoded[split][i] for i in index]
        prompts = [r[0] for r in rows] * 2
        responses = [r[1] for r in rows] + [r[2] for r in rows]
        ids, mask, lengths = pack(prompts, responses, pad_id=self.pad_id, block_size=self.block_size)
        index = torch.as_tensor(list(index), dtype=torch.long)
        out = {"ids": ids, "mask": mask, "lengths": lengths, "index": index}
        for name, values in self.extra[split].items():
            out[name] = values[index]
        return out

    def __call__(self, split: str, batch_size: int, generator: torch.Generator) -> dict:
        n = len(self.encoded[split])
        return self.batch(split, torch.randint(0, n, (batch_size,), generator=generator).tolist())

    def iterate(self, split: str, batch_size: int = 64):
        """Every pair of ``split`` once, in order, as batches (for evaluation)."""
        n = len(self.encoded[split])
        for start in range(0, n, batch_size):
            yield self.batch(split, range(start, min(n, start + batch_size)))

    def attach(self, split: str, name: str, values: torch.Tensor) -> None:
        """Add a per-pair tensor (indexed like the split) to every batch of ``split`` as ``batch[name]``."""
        if len(values) != len(self.encoded[split]):
            raise ValueError(f"{name}: {len(values)} values for {len(self.encoded[split])} pairs of split {split!r}")
        self.extra[split][name] = values

    @torch.no_grad()
    def attach_per_answer(self, name: str, score, splits: Sequence[str] | None = None, device=None,
                          batch_size: int = 64) -> None:
        """Compute ``score(ids, mask)``, one number per row, for every chosen and rejected answer of
        ``splits`` (default: all) once, and :meth:`attach` it as ``name`` (N, 2): column 0 the
        chosen answer, column 1 the rejected one."""
        for split in self.pairs if splits is None else splits:
            out = []
            for batch in self.iterate(split, batch_size):
                values = score(batch["ids"].to(device), batch["mask"].to(device)).cpu()
                out.append(torch.stack(values.chunk(2), dim=1))
            self.attach(split, name, torch.cat(out) if out else torch.zeros(0, 2))


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def score_pairs(model: RewardModel, data: PreferenceBatches, split: str = "val", batch_size: int = 64) -> dict:
    """The reward of every chosen and rejected answer of ``split``: ``{"chosen", "rejected"}``
    tensors, and ``{"chosen_prior", "rejected_prior"}``, the part of each reward that is the
    weighted likelihood under the frozen chat model (the rest is the head's)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts = {"chosen": [], "rejected": [], "chosen_prior": [], "rejected_prior": []}
    for batch in data.iterate(split, batch_size):
        ids, mask = batch["ids"].to(device), batch["mask"].to(device)
        likelihood = stored_likelihood(batch)
        if likelihood is None:
            likelihood = model.answer_likelihood(ids, mask)
        likelihood = likelihood.to(device).float()
        chosen, rejected = model(ids, batch["lengths"].to(device), mask, likelihood).cpu().chunk(2)
        chosen_prior, rejected_prior = (model.likelihood_weight * likelihood).cpu().chunk(2)
        parts["chosen"].append(chosen)
        parts["rejected"].append(rejected)
        parts["chosen_prior"].append(chosen_prior)
        parts["rejected_prior"].append(rejected_prior)
    model.train(was_training)
    return {name: torch.cat(values) if values else torch.zeros(0) for name, values in parts.items()}


def evaluate_reward_model(model: RewardModel, data: PreferenceBatches, split: str = "val") -> dict:
    """Held-out numbers: accuracy on the raters' labels, agreement with the hidden rubric,
    the rater-noise ceiling, and the Bradley–Terry loss."""
    from .world import rater_noise_ceiling

    scores = score_pairs(model, data, split)
    rc, rr = scores["chosen"], scores["rejected"]
    pairs = data.pairs[split]
    # Which answer the hidden rubric prefers (the raters' label is a noisy copy of this).
    rubric_sign = torch.tensor([1.0 if p.chosen_score > p.rejected_score else -1.0 for p in pairs])
    diff = rc - rr
    return {
        "pairs": len(pairs),
        "accuracy": round(pairwise_accuracy(rc, rr), 4),
        "rubric_agreement": round(float(((diff * rubric_sign) > 0).float().mean()), 4),
        "noise_ceiling": round(rater_noise_ceiling(pairs), 4),
        "raters_agree_with_rubric": round(sum(p.agrees_with_rubric for p in pairs) / max(1, len(pairs)), 4),
        "bt_loss": round(float(bradley_terry_loss(rc, rr)), 4),
    }


def calibration(model: RewardModel, data: PreferenceBatches, split: str = "val", bins: int = 8) -> list[dict]:
    """Predicted vs observed: pairs binned by the model's ``sigmoid(r_a - r_b)``; in each bin,
    how often the raters really preferred ``a``. Each pair is counted in both orders, so the
    plot is symmetric around 0.5. Rows: ``{"predicted", "observed", "n"}``."""
    scores = score_pairs(model, data, split)
    p = torch.sigmoid(scores["chosen"] - scores["rejected"])
    probs = torch.cat([p, 1 - p])
    outcomes = torch.cat([torch.ones_like(p), torch.zeros_like(p)])
    edges = torch.linspace(0, 1, bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (probs >= lo) & ((probs < hi) | (hi == 1))
        if sel.any():
            rows.append({"predicted": float(probs[sel].mean()), "observed": float(outcomes[sel].mean()),
                         "n": int(sel.sum())})
    return rows


def margins_by_flaw(pairs: Sequence, scores: dict, prompts: Sequence, min_pairs: int = 3) -> list[dict]:
    """Which comparisons are hard? ``pairs`` grouped by the flaws of their two answers, e.g.
    ``"good > wrong_fact"`` (the answer the hidden rubric prefers first; "good" has no flaw).

    ``scores`` are :func:`score_pairs` of the same ``pairs`` in the same order; ``prompts`` the
    :class:`course_utils.world.PreferencePrompt` s whose candidate answers they compare (an
    answer that is no candidate, e.g. a sampled one, counts as "own answer"). Per group with at
    least ``min_pairs`` comparisons: ``agree`` of ``n`` where the reward model orders the two
    like the rubric, and the mean margin (the rubric-better answer's reward minus the other's)
    split into the head's part and the frozen chat model's likelihood part. Hardest first.
    """
    flaws_of = {(pp.prompt_id, c.text): "+".join(c.flaws) or "good" for pp in prompts for c in pp.candidates}
    groups: dict[str, list[tuple[bool, float, float]]] = {}
    for i, p in enumerate(pairs):
        # Margins are "rubric-better answer minus rubric-worse answer": positive means the reward model agrees.
        sign = 1.0 if p.chosen_score > p.rejected_score else -1.0
        better, worse = (p.chosen, p.rejected) if sign > 0 else (p.rejected, p.chosen)
        margin = sign * float(scores["chosen"][i] - scores["rejected"][i])
        from_likelihood = sign * float(scores["chosen_prior"][i] - scores["rejected_prior"][i])
        key = " > ".join(flaws_of.get((p.prompt_id, a), "own answer") for a in (better, worse))
        groups.setdefault(key, []).append((margin > 0, margin - from_likelihood, from_likelihood))
    rows = []
    for key, g in groups.items():
        if len(g) >= min_pairs:
            agree = sum(r[0] for r in g)
            rows.append({"comparison": key, "agree": agree, "n": len(g), "agree_share": agree / len(g),
                         "head_margin": sum(r[1] for r in g) / len(g),
                         "likelihood_margin": sum(r[2] for r in g) / len(g)})
    return sorted(rows, key=lambda r: r["agree_share"])


@torch.no_grad()
def score_answers(model: RewardModel, tokenizer, prompt: str, answers: Sequence[str]) -> list[float]:
    """The reward model's score for each answer to ``prompt``."""
    device = next(model.parameters()).device
    p = encode_prompt(tokenizer, prompt)
    ids, mask, lengths = pack([p] * len(answers), [encode_response(tokenizer, a) for a in answers],
                              pad_id=tokenizer.eot_id, block_size=model.config.block_size)
    was_training = model.training
    model.eval()
    r = model(ids.to(device), lengths.to(device), mask.to(device)).cpu().tolist()
    model.train(was_training)
    return r


def accuracy_callback(data: PreferenceBatches, split: str = "val"):
    """An ``on_eval`` callback for :func:`course_utils.train.train`: held-out pairwise accuracy."""

    def on_eval(model, step):
        scores = score_pairs(model, data, split)
        return {"val_accuracy": pairwise_accuracy(scores["chosen"], scores["rejected"])}

    return on_eval


# ----------------------------------------------------------------------------- the stage

@dataclass
class RewardRun:
    """What :func:`build_reward_stage` hands back to the notebook."""

    model: RewardModel
    tokenizer: object
    data: PreferenceBatches
    result: TrainResult
    metrics: dict
    stage: stages.Stage


def preference_data(tokenizer, block_size: int, world=None, sampled: Sequence = ()) -> PreferenceBatches:
    """The raters' comparisons, split by prompt, as a batch source: the world's written answers
    and the ``sampled`` comparisons of the chat model's own answers (see :func:`sampled_pairs`).
    Both train together; held out, ``"val"`` keeps the written ones and ``"val_sampled"`` the
    sampled ones, so the two kinds of accuracy are reported apart."""
    from .world import preference_pairs

    written, own = split_pairs(preference_pairs(world or load_world())), split_pairs(sampled)
    n = config.budget(None, smoke=4)  # every comparison, or a few of each kind in a smoke run
    return PreferenceBatches({"train": written["train"][:n] + own["train"][:n], "val": written["val"][:n],
                              "val_sampled": own["val"][:n]}, tokenizer, block_size)


@torch.no_grad()
def sampled_pairs(model: nn.Module, tokenizer, prompts: Sequence, *, samples: int = SAMPLED_ANSWERS_PER_PROMPT,
                  seed: int = config.DEFAULT_SEED, world=None) -> list:
    """What real raters mostly see: the chat model's own answers. ``samples`` answers per prompt
    at temperature 1, graded by the hidden rubric and compared by the same noisy raters as the
    written answers (:func:`course_utils.world.rate_answers`).

    Written answers show the flaws someone thought of; sampled ones show the mistakes this
    model really makes (a wrong name, a request it complies with), which are the answers PPO
    will write and DPO will move between. On the cpu chain they lifted DPO's win rate from
    51.0 % to 53.4 % (53 to 55 % over three draws of the samples); the reward model's accuracy
    on the written held-out comparisons went from 82.5 % to 81.9 %."""
    from .world import rate_answers
    from .world.facts import component_rng

    world = world or load_world()
    answers = evaluate_policy(model, tokenizer, prompts, name="sampled", samples=samples, temperature=1.0, seed=seed)
    rng = component_rng(world.seed, "raters of sampled answers")
    out = []
    for i, prompt in enumerate(prompts):
        mine = slice(i * samples, (i + 1) * samples)
        out += rate_answers(prompt, list(zip(answers.answers[mine], answers.rubric[mine])),
                            world.sizes.pairs_per_prompt, rng, source="sampled")
    return out


def load_sampled_pairs(stage: stages.Stage | None = None) -> list:
    """The comparisons of sampled answers stored with stage ``reward`` (DPO trains on them too)."""
    from .world import PreferencePair

    stage = stage or stages.ensure_stage("reward")
    path = stage.path(SAMPLED_PAIRS_FILE)
    try:
        return [PreferencePair(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
    except (ValueError, TypeError) as exc:
        raise stages.StageCorruptError(f"Stage 'reward': {path} does not hold comparisons ({exc}). "
                                       f"Run {stages.spec('reward').notebook} again to rebuild it.") from exc


def build_reward_stage(*, cfg: TrainConfig | None = None, live_plot: bool = False, progress: bool = True,
                       verbose: bool = True) -> RewardRun:
    """Train a reward model on the raters' comparisons and save stage ``reward``.

    The backbone starts as a copy of ``sft_tools`` (it already reads the chat format and knows
    the facts), the scalar head at zero, the likelihood weight at 1; a second copy of
    ``sft_tools`` stays frozen as the prior. Training is :func:`course_utils.train.train` with
    :func:`reward_loss` and :class:`PreferenceBatches`; ``val_loss`` in its history is the
    held-out Bradley–Terry loss and ``val_accuracy`` the held-out pairwise accuracy.
    Before training, ``sft_tools`` answers every preference prompt a few times and the raters
    compare those answers too (:func:`sampled_pairs`).
    The stage holds the weights (backbone, head, weight and prior), the tokenizer,
    ``metrics.json`` (incl. the calibration table), ``history.json`` and the comparisons of
    sampled answers (``SAMPLED_PAIRS_FILE``, which DPO trains on as well).
    """
    from .model import model_from_stage, model_meta, save_model_files
    from .world import preference_prompts

    cfg = cfg or reward_config()
    parent = stages.ensure_stage("sft_tools")
    tokenizer = parent.tokenizer()
    config.seed_everything(cfg.seed)
    backbone = model_from_stage(parent)
    model = RewardModel(backbone, prior=model_from_stage(parent)).to(config.device())
    world = load_world()
    start = time.perf_counter()
    prompts = preference_prompts(world)[:config.budget(None, smoke=5)]
    sampled = sampled_pairs(model.prior, tokenizer, prompts, seed=cfg.seed, world=world)
    sampling_seconds = time.perf_counter() - start
    data = preference_data(tokenizer, backbone.config.block_size, world, sampled=sampled)
    # The held-out comparisons are scored at every evaluation: score them under the prior once.
    # Training draws most comparisons about once, so their likelihood is computed as they come.
    start = time.perf_counter()
    attach_answer_likelihood(model, data, splits=["val", "val_sampled"])
    likelihood_seconds = time.perf_counter() - start
    if verbose:
        n_sampled = sum(p.source == "sampled" for p in data.pairs["train"])
        print(f"reward model: {model.num_params() / 1e6:.2f}M parameters (backbone from 'sft_tools'); "
              f"{len(data.pairs['train'])} training comparisons ({n_sampled} of sft_tools' own answers, sampled "
              f"in {sampling_seconds:.0f} s), {len(data.pairs['val'])} + {len(data.pairs['val_sampled'])} held out "
              f"({likelihood_seconds:.0f} s to score those once under the frozen chat model); "
              f"{cfg.max_steps} steps x {cfg.batch_size} comparisons "
              f"= {cfg.max_steps * cfg.batch_size / max(1, len(data)):.1f} epochs")
    result = train(model, data, cfg, loss_fn=reward_loss, on_eval=accuracy_callback(data), live_plot=live_plot,
                   progress=progress, desc="reward model", verbose=verbose)
    metrics = evaluate_reward_model(model, data, "val")
    own = evaluate_reward_model(model, data, "val_sampled")
    metrics.update({"sampled_pairs": own["pairs"], "sampled_accuracy": own["accuracy"],
                    "sampled_noise_ceiling": own["noise_ceiling"]})
    # A sample of the training comparisons: accuracy on what it was trained on, and the spread of
    # its scores, which PPO uses to centre and scale rewards.
    sample = PreferenceBatches({"train": data.pairs["train"][::max(1, len(data) // 400)]}, tokenizer,
                               backbone.config.block_size)
    scores = score_pairs(model, sample, "train")
    all_scores = torch.cat([scores["chosen"], scores["rejected"]])
    metrics.update({
        "train_accuracy": round(pairwise_accuracy(scores["chosen"], scores["rejected"]), 4),
        "score_mean": round(float(all_scores.mean()), 4),
        "score_std": round(float(all_scores.std()), 4),
        "steps": result.final["steps"],
        "train_seconds": round(result.final["seconds"] + likelihood_seconds + sampling_seconds, 2),
        "stopped": result.final["stopped"], "profile": config.profile(),
    })
    calib = calibration(model, data, "val")
    files = {
        **save_model_files(model),
        stages.TOKENIZER_FILE: parent.path(stages.TOKENIZER_FILE).read_bytes(),
        "metrics.json": json.dumps({**metrics, "calibration": calib}, indent=2),
        "history.json": json.dumps({"history": result.history}),
        SAMPLED_PAIRS_FILE: json.dumps([asdict(p) for p in sampled], ensure_ascii=False),
    }
    meta = {**model_meta(backbone), "n_params": model.num_params(),
            "head": "scalar on the last token + weight x mean log-likelihood under frozen sft_tools",
            "metrics": metrics, "train_config": cfg.to_dict()}
    stages.save_stage("reward", files, meta=meta)
    if verbose:
        print(f"saved stage 'reward': held-out accuracy {metrics['accuracy']:.1%} on {metrics['pairs']} comparisons "
              f"(rater-noise ceiling {metrics['noise_ceiling']:.1%}); agrees with the hidden rubric on "
              f"{metrics['rubric_agreement']:.1%}; on comparisons of sft_tools' own answers "
              f"{metrics['sampled_accuracy']:.1%} of {metrics['sampled_pairs']}; "
              f"{metrics['train_seconds']:.0f} s of training")
    return RewardRun(model=model, tokenizer=tokenizer, data=data, result=result, metrics=metrics,
                     stage=stages.load_stage("reward"))


def load_reward_model(device=None) -> tuple[RewardModel, object, stages.Stage]:
    """Stage ``reward`` as ``(model, tokenizer, stage)``, rebuilt headless first if it is missing."""
    from .model import GPT, GPTConfig

    stage = stages.ensure_stage("reward")
    shape = GPTConfig.from_dict(stage.model_config)
    model = RewardModel(GPT(shape), prior=GPT(shape))
    stage.load_weights(model)
    return model.to(device or config.device()).eval(), stage.tokenizer(), stage


def reward_history(stage: stages.Stage | None = None) -> list[dict]:
    """The per-step training history stored with stage ``reward``."""
    stage = stage or stages.ensure_stage("reward")
    return json.loads(stage.path("history.json").read_text(encoding="utf-8"))["history"]
