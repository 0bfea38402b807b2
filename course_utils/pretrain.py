"""Pretraining: the clean corpus becomes one long stream of tokens, and the model learns to
predict each next token from the ones before it. Builds stage ``base``.

- :func:`tokenize_docs`: documents -> one token stream, each document followed by ``<|endoftext|>``.
- :class:`TokenWindows`: the batch source for :func:`course_utils.train.train`: random windows
  of ``block_size + 1`` tokens; ``x`` is the window minus its last token, ``y`` the window minus
  its first (the "next token" at every position).
- :func:`pretrain_config`: the training sizes of each profile.
- :func:`evaluate_base`: held-out loss, bits per byte and cloze fact recall.
- :func:`build_base_stage`: all of the above, then ``save_stage("base", ...)``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F

from . import config, stages
from .cleaning import load_clean_corpus
from .train import TrainConfig, TrainResult, train

# What the model is asked to continue at intervals while it trains (see the samples in chapter 04).
SAMPLE_PROMPTS = ("The capital of France is", "Once upon a time")


# ----------------------------------------------------------------------------- sizes

def pretrain_config(**overrides) -> TrainConfig:
    """Training sizes per profile; the model's own sizes are in :func:`course_utils.model.default_config`.

    ==== ===== ===== ===== ======= =============================================
    prof steps batch lr    warmup  cost
    ==== ===== ===== ===== ======= =============================================
    ci   30    8     3e-3  5       seconds (every code path, no lesson)
    cpu  800   16    3e-3  40      ~3.3M tokens, a few minutes on 2 cores
    gpu  4000  64    1e-3  200     ~130M tokens
    ==== ===== ===== ===== ======= =============================================
    """
    cfg = TrainConfig(
        max_steps=config.pick(ci=30, cpu=800, gpu=4000, smoke=2),
        batch_size=config.pick(ci=8, cpu=16, gpu=64, smoke=2),
        lr=config.pick(ci=3e-3, cpu=3e-3, gpu=1e-3),
        warmup_steps=config.pick(ci=5, cpu=40, gpu=200, smoke=1),
        weight_decay=0.1,
        grad_clip=1.0,
        eval_every=config.pick(ci=10, cpu=50, gpu=250, smoke=0),  # 0: at the end only
        eval_batches=config.pick(ci=2, cpu=8, gpu=20, smoke=1),
        sample_every=config.pick(ci=15, cpu=200, gpu=1000, smoke=0),
        seed=config.DEFAULT_SEED,
    )
    return replace(cfg, **overrides)  # an unknown name is a TypeError, not a silent no-op


# ----------------------------------------------------------------------------- data

def tokenize_docs(tokenizer, docs: Sequence[str]) -> torch.Tensor:
    """One stream of token ids: every document, each followed by ``<|endoftext|>``.

    The end-of-text token tells the model where one document stops and an unrelated one
    starts; at generation time it is how a base model says "this page is over".
    """
    ids: list[int] = []
    eot = tokenizer.eot_id
    for doc in docs:
        ids.extend(tokenizer.encode_ordinary(doc) if hasattr(tokenizer, "encode_ordinary") else tokenizer.encode(doc))
        ids.append(eot)
    dtype = torch.int16 if tokenizer.vocab_size <= 32767 else torch.int32  # a compact stream; widened per batch
    return torch.tensor(ids, dtype=dtype)


class TokenWindows:
    """Random windows of the token streams: ``get_batch(split, batch_size, generator) -> (x, y)``.

    Each row starts at a random offset drawn from ``generator`` (so the training loop's saved
    generator state is the data position). ``x`` holds tokens ``i .. i+T-1`` and ``y`` the tokens
    one step later, ``i+1 .. i+T``: at every position the target is the next token.
    """

    def __init__(self, train_ids: torch.Tensor, val_ids: torch.Tensor, block_size: int):
        self.data = {"train": train_ids, "val": val_ids}
        self.block_size = block_size
        for split, ids in self.data.items():
            if len(ids) < block_size + 2:
                raise ValueError(f"The {split} stream has {len(ids)} tokens, fewer than block_size + 2 = "
                                 f"{block_size + 2}: the corpus is too small for this context length.")
        self._offsets = torch.arange(block_size + 1)

    def __call__(self, split: str, batch_size: int, generator: torch.Generator):
        data = self.data[split]
        starts = torch.randint(len(data) - self.block_size - 1, (batch_size,), generator=generator)
        chunk = data[starts[:, None] + self._offsets].long()  # (B, T + 1)
        return chunk[:, :-1], chunk[:, 1:]


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def heldout_loss(model, tokenizer, ids: torch.Tensor, *, batch_size: int = 16, max_tokens: int = 200_000) -> dict:
    """Loss and bits per byte over (up to ``max_tokens`` of) a token stream, read in consecutive windows.

    Bits per byte = the total loss of the predicted tokens in nats, over ln 2 (nats -> bits),
    over the number of UTF-8 bytes those tokens spell; that is ``loss x tokens / bytes / ln 2``.
    Unlike the loss per token, it does not depend on the tokenizer, so models with different
    vocabularies can be compared. ``<|endoftext|>`` counts as a predicted token of 0 bytes.
    """
    T = model.config.block_size
    device = next(model.parameters()).device
    n_windows = max(1, min((len(ids) - 1) // T, max_tokens // T))
    special = set(getattr(tokenizer, "special_tokens", {}).values())
    n_bytes = torch.tensor([0 if i in special else len(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)])
    total_loss, total_tokens, total_bytes = 0.0, 0, 0
    model.eval()
    for start in range(0, n_windows, batch_size):
        rows = torch.arange(start, min(start + batch_size, n_windows))
        idx = rows[:, None] * T + torch.arange(T + 1)
        chunk = ids[idx].long()
        x, y = chunk[:, :-1].to(device), chunk[:, 1:]
        logits, _ = model(x)
        losses = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1).to(device),
                                 reduction="sum")
        total_loss += float(losses)
        total_tokens += y.numel()
        total_bytes += int(n_bytes[y].sum())
    loss = total_loss / total_tokens
    return {"loss": loss, "tokens": total_tokens, "bytes": total_bytes,
            "bits_per_byte": total_loss / math.log(2) / max(1, total_bytes)}


def load_probes() -> list[tuple[str, str]]:
    """The cloze probes of the world the clean corpus was made from (e.g. "The capital of France is" -> "Paris")."""
    from . import world

    seed = stages.ensure_stage("clean").meta.get("seed", config.DEFAULT_SEED)
    return list(world.cloze_probes(world.build_world(seed)))


def evaluate_base(model, tokenizer, val_ids: torch.Tensor, probes: Sequence[tuple[str, str]] | None = None) -> dict:
    """The numbers stage ``base`` records: held-out loss, bits per byte, cloze fact recall."""
    from .evals import cloze_recall

    held = heldout_loss(model, tokenizer, val_ids, max_tokens=config.budget(200_000, smoke=model.config.block_size))
    probes = load_probes() if probes is None else probes
    cloze = cloze_recall(model, tokenizer, list(probes)[:config.budget(None, smoke=4)])
    return {"val_loss": round(held["loss"], 4), "bits_per_byte": round(held["bits_per_byte"], 4),
            "val_tokens_scored": held["tokens"], "cloze_top1": round(cloze["top1"], 4), "cloze_n": cloze["n"],
            "cloze_examples": cloze["examples"][:10]}


# ----------------------------------------------------------------------------- the stage

@dataclass
class BaseRun:
    """What :func:`build_base_stage` hands back to the notebook."""

    model: torch.nn.Module
    tokenizer: object
    result: TrainResult
    metrics: dict
    data: TokenWindows
    stage: stages.Stage


def sampler(tokenizer, prompts: Sequence[str] = SAMPLE_PROMPTS, max_new_tokens: int = 40, seed: int = 0):
    """An ``on_sample`` callback: continue each prompt (temperature 0.8, top-k 50, fixed seed)."""
    from .generate import text_generate

    def on_sample(model, step):
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        return "\n".join(f"{p!r} -> {text_generate(model, tokenizer, p, max_new_tokens, temperature=0.8, top_k=50, generator=gen)!r}"
                         for p in prompts)

    return on_sample


def recall_tracker(tokenizer, probes: Sequence[tuple[str, str]], every: int):
    """An ``on_eval`` callback: cloze fact recall every ``every`` steps (facts are learnt late; this shows when)."""
    from .evals import cloze_recall

    def on_eval(model, step):
        if not every or step % every:
            return {}
        return {"cloze_top1": cloze_recall(model, tokenizer, probes)["top1"]}

    return on_eval


def prepare_data(tokenizer, block_size: int) -> tuple[TokenWindows, dict]:
    """Tokenize the clean corpus; return the batch source and a few counts about it."""
    start = time.perf_counter()
    train_docs, val_docs = load_clean_corpus("train"), load_clean_corpus("val")
    train_ids, val_ids = tokenize_docs(tokenizer, train_docs), tokenize_docs(tokenizer, val_docs)
    info = {"train_docs": len(train_docs), "val_docs": len(val_docs), "train_tokens": len(train_ids),
            "val_tokens": len(val_ids), "train_bytes": sum(len(d.encode("utf-8")) for d in train_docs),
            "tokenize_seconds": round(time.perf_counter() - start, 2)}
    return TokenWindows(train_ids, val_ids, block_size), info


def build_base_stage(*, cfg: TrainConfig | None = None, live_plot: bool = False, progress: bool = True,
                     verbose: bool = True, model_overrides: dict | None = None) -> BaseRun:
    """Pretrain the course model on the clean corpus and save stage ``base``.

    ``cfg`` defaults to :func:`pretrain_config` and the model to
    :func:`course_utils.model.default_config`; ``live_plot`` draws the losses in a notebook.
    The stage holds ``model.safetensors``, a copy of ``tokenizer.json`` (so it stands alone),
    ``metrics.json`` and ``history.json`` (the loss per step and the samples).
    """
    from .model import GPT, default_config, model_meta, save_model_files

    cfg = cfg or pretrain_config()
    tok_stage = stages.ensure_stage("tokenizer")
    tokenizer = tok_stage.tokenizer()
    model_cfg = default_config(tokenizer.vocab_size, **(model_overrides or {}))
    data, data_info = prepare_data(tokenizer, model_cfg.block_size)
    probes = load_probes()

    torch.manual_seed(cfg.seed)  # the same initial weights every time
    model = GPT(model_cfg).to(config.device())
    if verbose:
        print(f"model: {model.num_params() / 1e6:.2f}M parameters, context {model_cfg.block_size} tokens; "
              f"corpus: {data_info['train_tokens']:,} training tokens ({data_info['train_docs']} documents); "
              f"{cfg.max_steps} steps x {cfg.batch_size * cfg.grad_accum} x {model_cfg.block_size} tokens "
              f"= {cfg.max_steps * cfg.batch_size * cfg.grad_accum * model_cfg.block_size / max(1, data_info['train_tokens']):.1f} epochs")
    result = train(model, data, cfg, on_sample=sampler(tokenizer), on_eval=recall_tracker(tokenizer, probes, cfg.sample_every),
                   live_plot=live_plot, progress=progress, desc="pretraining", verbose=verbose)
    metrics = evaluate_base(model, tokenizer, data.data["val"], probes)
    metrics.update({"train_loss": round(result.final["train_loss"], 4), "steps": result.final["steps"],
                    "train_tokens_seen": result.final["tokens"], "train_seconds": result.final["seconds"],
                    "train_cpu_seconds": result.final["session_cpu_seconds"],
                    "tokens_per_s": result.final["tokens_per_s"], "stopped": result.final["stopped"],
                    "profile": config.profile()})
    summary = {k: result.final[k] for k in ("steps", "tokens", "seconds", "tokens_per_s", "stopped")}
    files = {
        **save_model_files(model),
        stages.TOKENIZER_FILE: tok_stage.path(stages.TOKENIZER_FILE).read_bytes(),
        "metrics.json": json.dumps(metrics, indent=2, ensure_ascii=False),
        "history.json": json.dumps({"history": result.history, "samples": result.samples}, ensure_ascii=False),
    }
    meta = {**model_meta(model), "metrics": {k: v for k, v in metrics.items() if k != "cloze_examples"},
            "train_config": cfg.to_dict(), "train_summary": summary, "data": data_info}
    stages.save_stage("base", files, meta=meta)
    if verbose:
        print(f"saved stage 'base': val loss {metrics['val_loss']:.3f}, {metrics['bits_per_byte']:.3f} bits/byte, "
              f"cloze recall {metrics['cloze_top1']:.0%} of {metrics['cloze_n']} facts, "
              f"{result.final['seconds']:.0f} s of training")
    return BaseRun(model=model, tokenizer=tokenizer, result=result, metrics=metrics, data=data,
                   stage=stages.load_stage("base"))


def load_base(device=None):
    """The pretrained model and its tokenizer, rebuilt headless first if stage 'base' is missing."""
    from .model import model_from_stage

    stage = stages.ensure_stage("base")
    return model_from_stage(stage, device), stage.tokenizer()


def load_history(stage: stages.Stage | None = None) -> dict:
    """The per-step history and training samples stored with stage 'base'."""
    stage = stage or stages.ensure_stage("base")
    return json.loads(stage.path("history.json").read_text(encoding="utf-8"))
