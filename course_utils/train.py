"""The one training loop of the course.

Pretraining, supervised fine-tuning, reward modelling and LoRA all train through
:func:`train`. It knows nothing about language models: it takes

- a ``model`` (any ``nn.Module``),
- a batch source ``get_batch(split, batch_size, generator) -> batch``, where ``split`` is
  ``"train"`` or ``"val"`` and ``generator`` is a :class:`torch.Generator` the source must
  draw all its randomness from (that is what makes resume exact: the generator's state
  *is* the data position),
- a ``loss_fn(model, batch) -> scalar tensor`` (default :func:`lm_loss`: the batch is
  ``(x, y)`` or ``(x, y, loss_mask)`` and the model returns ``(logits, loss)``),

and does the rest: AdamW with weight-decay groups, warmup then cosine learning rate,
gradient accumulation and clipping, held-out evaluation, samples at intervals, a progress
bar, an optional live loss plot, a stop on NaN/inf with a clear message, an optional time
budget, and checkpoints that resume *exactly* (the resumed run's losses are bitwise the
same as an uninterrupted run's). Checkpoints are safetensors plus JSON: nothing is pickled.

A batch source that keeps its own position (e.g. an epoch cursor) can expose
``state_dict()`` / ``load_state_dict(d)`` (JSON-able); the loop saves and restores it too.

Under a process group (``torchrun``; see :mod:`course_utils.distributed`) the same loop trains
data-parallel: ``cfg.batch_size`` is then per process, each process trains on its own rows of
the global batch, the gradients are averaged across processes, and only rank 0 logs and saves.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
import warnings
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from . import distributed

Batch = Any
GetBatch = Callable[[str, int, torch.Generator], Batch]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]

CKPT_MODEL = "model.safetensors"
CKPT_OPTIM = "optimizer.safetensors"  # optimizer tensors and RNG states
CKPT_STATE = "trainer.json"  # step, history, config, scalars
CKPT_FORMAT = 1

# Fields that shape the run itself: resuming with a different value would not continue
# the same run, so it is refused. The others (budget, intervals, ...) may change freely.
_RUN_DEFINING = ("max_steps", "batch_size", "grad_accum", "lr", "min_lr", "warmup_steps",
                 "weight_decay", "betas", "eps", "seed", "amp_dtype")


# ----------------------------------------------------------------------------- config and result

@dataclass
class TrainConfig:
    max_steps: int = 200  # optimizer steps; the cosine schedule ends here
    batch_size: int = 16  # sequences per micro-batch (what get_batch is asked for)
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size * grad_accum)
    lr: float = 1e-3  # peak learning rate, reached at the end of warmup
    min_lr: float | None = None  # floor of the cosine; None means lr / 10
    warmup_steps: int = 20
    weight_decay: float = 0.1  # only on matrices (see decay_groups)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float | None = 1.0  # max global gradient norm; None or 0 to turn off
    eval_every: int = 100  # evaluate every N steps (and always at the end); 0: only at the end
    eval_batches: int = 8  # held-out batches per evaluation (the same batches every time)
    sample_every: int = 0  # call on_sample every N steps (and at the end); 0: only at the end
    seed: int = 1337  # seeds the batch generator
    time_budget_s: float | None = None  # stop cleanly (and checkpoint) after this many seconds
    checkpoint_every: int = 0  # also checkpoint every N steps; 0: only when the run stops
    checkpoint_dir: str | None = None  # where checkpoints go; None: no checkpoints
    amp_dtype: str | None = None  # "bfloat16" for autocast; None keeps float32 (the default)
    num_threads: int | None = None  # torch threads; None keeps torch's default (one per core)
    # torch.compile the training forward and backward: fuses the many small element-wise steps
    # (RMSNorm, RoPE, SwiGLU) into fewer kernels, ~15 % more tokens per second for the cpu model
    # (benchmarks/train_throughput.py). Off by default: compiled runs are not bitwise
    # reproducible (a resumed run drifts from the uninterrupted one in the 7th digit), it costs
    # a one-off compile, and it needs a C++ compiler; a failed compile falls back to plain PyTorch.
    compile: bool = False

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


@dataclass
class TrainResult:
    history: list[dict]  # one record per optimizer step: step, train_loss, lr, tokens, seconds, val_loss (or None)
    final: dict  # steps, tokens, seconds, tokens_per_s, train_loss, val_loss, stopped
    samples: list[dict] = field(default_factory=list)  # {"step", "text"} from on_sample
    checkpoint: str | None = None  # where the last checkpoint was written

    @property
    def train_losses(self) -> list[float]:
        return [h["train_loss"] for h in self.history]

    @property
    def evals(self) -> list[dict]:
        return [h for h in self.history if h.get("val_loss") is not None]


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient became NaN or infinite."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to this model or this run."""


# ----------------------------------------------------------------------------- pieces

def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then cosine to min_lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.final_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.final_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.final_lr)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on matrices only.

    Following nanoGPT, a parameter is decayed when it has two or more dimensions (the
    weights of linear layers). Norm gains and biases (1-D) are not; neither are embedding
    tables (a row is only updated when its token appears, so decay would shrink rare
    tokens toward zero). A tied output head shares the embedding tensor and so is not
    decayed either. Frozen parameters (``requires_grad=False``, e.g. under LoRA) are left out.
    """
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for _, p in model.named_parameters():  # named_parameters() lists a shared tensor once
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and id(p) not in embedding_ids else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    groups = decay_groups(model, cfg.weight_decay)
    # The fused kernel is the fastest AdamW on CPU and GPU alike (one pass over all tensors).
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=True)


def lm_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Next-token loss: ``batch`` is ``(x, y)`` or ``(x, y, loss_mask)``; the model returns ``(logits, loss)``."""
    x, y, *rest = batch
    mask = rest[0] if rest else None
    if mask is None:
        _, loss = model(x, targets=y)
    else:
        _, loss = model(x, targets=y, loss_mask=mask)
    return loss


def count_tokens(batch: Batch) -> int:
    """Tokens in a batch: the size of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    if isinstance(batch, (tuple, list)) and batch:
        return count_tokens(batch[0])
    if isinstance(batch, dict) and batch:
        return count_tokens(next(iter(batch.values())))
    return 0


def to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _autocast(cfg: TrainConfig, device: torch.device):
    if not cfg.amp_dtype:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, cfg.amp_dtype))


@torch.no_grad()
def evaluate(model: nn.Module, get_batch: GetBatch, *, loss_fn: LossFn | None = None, batches: int = 8,
             batch_size: int = 16, split: str = "val", seed: int = 0, amp_dtype: str | None = None) -> float:
    """Mean loss over ``batches`` batches of ``split``.

    The batches come from their own generator seeded with ``seed``, so every evaluation
    sees the same batches and the training data stream is not disturbed.
    """
    loss_fn = loss_fn or lm_loss
    device = model_device(model)
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    ctx = _autocast(TrainConfig(amp_dtype=amp_dtype), device)
    with torch.random.fork_rng(devices=[]):
        for _ in range(batches):
            batch = to_device(get_batch(split, batch_size, gen), device)
            with ctx:
                total += float(loss_fn(model, batch))
    model.train(was_training)
    return total / max(1, batches)


# ----------------------------------------------------------------------------- checkpoints

def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{key}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in info.get("scalars", {}).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = []
    for g in info["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _rng_state(batch_gen: torch.Generator) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state(), "rng.batches": batch_gen.get_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    scalars = {
        "python": _jsonable(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, scalars


def _set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict, batch_gen: torch.Generator) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    batch_gen.set_state(tensors["rng.batches"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    if "python" in scalars:
        version, state, gauss = scalars["python"]
        random.setstate((version, tuple(state), gauss))
    if "numpy" in scalars:
        name, keys, pos, has_gauss, cached = scalars["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _jsonable(x):
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    return x


def save_checkpoint(path: str | Path, model: nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig, *,
                    step: int, history: list[dict], samples: list[dict], seconds: float,
                    batch_gen: torch.Generator, data_state: dict | None = None) -> Path:
    """Write a resumable checkpoint folder atomically (temporary folder, then rename)."""
    from safetensors.torch import save_file, save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_model(model, str(tmp / CKPT_MODEL))  # save_model copes with tied weights
        opt_tensors, opt_info = _flatten_optimizer(opt)
        rng_tensors, rng_scalars = _rng_state(batch_gen)
        save_file({**opt_tensors, **rng_tensors}, str(tmp / CKPT_OPTIM))
        model_cfg = getattr(model, "config", None)
        state = {
            "format": CKPT_FORMAT,
            "step": step,
            "seconds": seconds,
            "train_config": cfg.to_dict(),
            "model_config": model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else None,
            "param_shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
            "optimizer": opt_info,
            "rng": rng_scalars,
            "data_state": data_state,
            "history": history,
            "samples": samples,
        }
        (tmp / CKPT_STATE).write_text(json.dumps(state), encoding="utf-8")
        old = path.parent / f".old-{path.name}"
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def has_checkpoint(path: str | Path | None) -> bool:
    return path is not None and (Path(path) / CKPT_STATE).exists()


def load_checkpoint(path: str | Path, model: nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig,
                    batch_gen: torch.Generator) -> dict:
    """Restore model, optimizer, RNG states from ``path``; return the JSON state (step, history, ...).

    Raises :class:`CheckpointMismatchError` when the checkpoint belongs to another model or run.
    """
    from safetensors.torch import load_file, load_model

    path = Path(path)
    if not has_checkpoint(path):
        raise FileNotFoundError(f"No training checkpoint in {path} (expected {CKPT_STATE}, {CKPT_MODEL}, "
                                f"{CKPT_OPTIM}). Train without resume first.")
    state = json.loads((path / CKPT_STATE).read_text(encoding="utf-8"))
    if state.get("format") != CKPT_FORMAT:
        raise CheckpointMismatchError(f"Checkpoint {path} has format {state.get('format')}, expected {CKPT_FORMAT}.")
    here = {k: list(v.shape) for k, v in model.state_dict().items()}
    there = state["param_shapes"]
    problems = []
    for k in sorted(set(here) | set(there)):
        if k not in there:
            problems.append(f"tensor {k!r} is in the model but not in the checkpoint")
        elif k not in here:
            problems.append(f"tensor {k!r} is in the checkpoint but not in the model")
        elif here[k] != there[k]:
            problems.append(f"tensor {k!r} has shape {tuple(there[k])} in the checkpoint, {tuple(here[k])} in the model")
    if problems:
        raise CheckpointMismatchError(
            f"The checkpoint in {path} was made for a different model ({len(problems)} difference(s); "
            f"first: {'; '.join(problems[:3])}). Delete it or point checkpoint_dir elsewhere to start afresh.")
    saved_cfg = TrainConfig.from_dict(state["train_config"])
    diffs = [f"{k}: {getattr(saved_cfg, k)!r} in the checkpoint, {getattr(cfg, k)!r} now"
             for k in _RUN_DEFINING if getattr(saved_cfg, k) != getattr(cfg, k)]
    if diffs:
        raise CheckpointMismatchError(
            f"The checkpoint in {path} belongs to a run with different settings ({'; '.join(diffs)}): resuming "
            f"would not continue the same run. Use the same TrainConfig, or start afresh in another checkpoint_dir.")
    missing, unexpected = load_model(model, str(path / CKPT_MODEL), strict=False)
    if unexpected:
        raise CheckpointMismatchError(f"Checkpoint {path} holds unknown tensors {unexpected[:5]}.")
    tensors = load_file(str(path / CKPT_OPTIM))
    opt.load_state_dict(_unflatten_optimizer(tensors, state["optimizer"]))
    _set_rng_state(tensors, state["rng"], batch_gen)
    return state


# ----------------------------------------------------------------------------- the loop

def _compiled(model: nn.Module) -> nn.Module:
    # The compiled module shares the parameters; checkpoints, evaluation and sampling keep
    # using `model` itself, so their state dicts and shapes are unaffected.
    return torch.compile(model)


def train(model: nn.Module, get_batch: GetBatch, cfg: TrainConfig, *, loss_fn: LossFn | None = None,
          on_sample: Callable[[nn.Module, int], str | None] | None = None,
          on_eval: Callable[[nn.Module, int], dict] | None = None,
          live_plot: bool = False, resume: bool | str | Path = False, stop_at_step: int | None = None,
          progress: bool = True, desc: str = "training", verbose: bool = True) -> TrainResult:
    """Train ``model`` on batches from ``get_batch`` and return the loss history.

    - ``loss_fn(model, batch)``: the loss to minimise (default :func:`lm_loss`).
    - ``on_sample(model, step)``: called every ``cfg.sample_every`` steps and at the end, in eval
      mode under ``torch.no_grad``, with the global RNG forked (sampling never changes the run);
      a returned string is kept in ``result.samples`` and printed when ``verbose``.
    - ``on_eval(model, step)``: extra held-out metrics, merged into the history record.
    - ``live_plot``: draw the losses in the notebook while training (a no-op outside IPython).
    - ``resume``: ``True`` continues from the checkpoint in ``cfg.checkpoint_dir`` (a path
      names another folder). The continued run is bitwise the run that was interrupted.
    - ``stop_at_step``: stop early at this step as if interrupted (checkpoint saved), without
      changing the learning-rate schedule (which is set by ``cfg.max_steps``).
    """
    loss_fn = loss_fn or lm_loss
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = model_device(model)
    opt = make_optimizer(model, cfg)
    params = [p for g in opt.param_groups for p in g["params"]]
    batch_gen = torch.Generator().manual_seed(cfg.seed)
    step, prior_seconds = 0, 0.0
    history: list[dict] = []
    samples: list[dict] = []
    ckpt_path = Path(resume) if isinstance(resume, (str, Path)) else (
        Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None)
    if resume:
        if ckpt_path is None:
            raise ValueError("resume=True needs cfg.checkpoint_dir (or pass the checkpoint folder as resume=...).")
        state = load_checkpoint(ckpt_path, model, opt, cfg, batch_gen)
        step, prior_seconds = state["step"], state["seconds"]
        history, samples = state["history"], state["samples"]
        if state.get("data_state") is not None and hasattr(get_batch, "load_state_dict"):
            get_batch.load_state_dict(state["data_state"])
        if verbose and distributed.is_main():
            print(f"Resumed from {ckpt_path} at step {step}/{cfg.max_steps}.")

    # Several processes (torchrun): each trains on its share of every batch and the gradients are
    # averaged (see course_utils.distributed); rank 0 alone shows progress, evaluates and saves.
    parallel, main, world = distributed.active(), distributed.is_main(), distributed.world_size()
    plot = None
    if live_plot and main:
        from .plots import LiveLossPlot

        plot = LiveLossPlot(title=desc, max_steps=cfg.max_steps)
    from tqdm.auto import tqdm

    # TQDM_DISABLE=1 in the environment silences the bar, so `disable` is passed only to turn it off.
    bar = tqdm(total=cfg.max_steps, initial=step, desc=desc, unit="step", dynamic_ncols=True,
               **({} if progress and main else {"disable": True}))
    tokens_total = history[-1]["tokens"] if history else 0
    last_good = next((h for h in reversed(history) if h["train_loss"] is not None), None)
    t0 = time.perf_counter()
    cpu0 = time.process_time()  # CPU seconds too: on a busy machine wall time says little about the code
    session_tokens = 0
    stopped = "max_steps"
    checkpoint_written = None
    stop_eval: dict = {}
    phase, snapshot = "done", None

    def checkpoint() -> None:
        nonlocal checkpoint_written
        if main and (cfg.checkpoint_dir or isinstance(resume, (str, Path))):
            data_state = get_batch.state_dict() if hasattr(get_batch, "state_dict") else None
            checkpoint_written = str(save_checkpoint(
                ckpt_path, model, opt, cfg, step=step, history=history, samples=samples,
                seconds=prior_seconds + time.perf_counter() - t0, batch_gen=batch_gen, data_state=data_state))

    def run_eval(record: dict) -> None:
        record["val_loss"] = evaluate(model, get_batch, loss_fn=loss_fn, batches=cfg.eval_batches,
                                      batch_size=cfg.batch_size, seed=cfg.seed + 1, amp_dtype=cfg.amp_dtype)
        if on_eval is not None:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                model.eval()
                record.update(on_eval(model, step))
                model.train()

    def run_sample() -> None:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()
            text = on_sample(model, step)
            model.train()
        if text is not None:
            samples.append({"step": step, "text": text})
            if verbose:
                tqdm.write(f"--- sample at step {step} ---\n{text}")

    synced = distributed.wrap(model) if parallel else model  # averages the gradients across processes
    step_model = _compiled(synced) if cfg.compile else synced
    model.train()
    try:
        while step < cfg.max_steps:
            if stop_at_step is not None and step >= stop_at_step:
                stopped = "stop_at_step"
                break
            # Until the weights change, an interrupt (Ctrl-C, "stop kernel") can roll back to here.
            phase, snapshot = "step", (batch_gen.get_state(), torch.get_rng_state())
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            loss_sum, step_tokens = 0.0, 0
            for micro in range(cfg.grad_accum):
                # The global batch, the same on every process (same generator); each keeps its own rows.
                global_batch = get_batch("train", cfg.batch_size * world, batch_gen)
                batch = to_device(distributed.my_rows(global_batch), device)
                # Gradients are averaged across processes once per step, in the last micro-batch's backward.
                with distributed.sync_gradients(synced, now=micro == cfg.grad_accum - 1):
                    with _autocast(cfg, device):
                        try:
                            loss = loss_fn(step_model, batch)
                        except Exception as err:  # noqa: BLE001 - only a failed compile is caught
                            if step_model is synced:
                                raise
                            warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                                          f"training without it.", stacklevel=2)
                            step_model = synced
                            loss = loss_fn(synced, batch)
                    (loss / cfg.grad_accum).backward()
                loss_sum += loss.item()
                step_tokens += count_tokens(global_batch)
            train_loss = loss_sum / cfg.grad_accum
            if parallel:
                train_loss = distributed.mean(train_loss)  # the loss of the global batch, on every process
            grad_norm = None
            if math.isfinite(train_loss) and cfg.grad_clip:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            if not math.isfinite(train_loss) or (grad_norm is not None and not math.isfinite(grad_norm)):
                what = f"the loss became {train_loss}" if not math.isfinite(train_loss) else \
                    f"the gradient norm became {grad_norm} (loss {train_loss:.4f})"
                good = (f"the last good loss was {last_good['train_loss']:.4f} at step {last_good['step']}"
                        if last_good else "no step had finished yet")
                raise TrainingDiverged(
                    f"Training diverged at step {step + 1}: {what}; {good}. The weights were not updated by "
                    f"this step. Hint: lower the learning rate (now {lr:.3g}, peak cfg.lr={cfg.lr:.3g}; try "
                    f"half), lengthen the warmup, or clip gradients harder (grad_clip={cfg.grad_clip}).")
            phase = "update"
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens_total += step_tokens
            session_tokens += step_tokens
            elapsed = time.perf_counter() - t0
            record = {"step": step, "train_loss": train_loss, "lr": lr, "tokens": tokens_total,
                      "seconds": round(prior_seconds + elapsed, 3), "val_loss": None}
            if grad_norm is not None:
                record["grad_norm"] = grad_norm
            history.append(record)
            last_good = record
            phase = "done"
            out_of_time = cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s
            if parallel and cfg.time_budget_s is not None:
                out_of_time = distributed.any_of(out_of_time)  # all processes stop at the same step
            is_last = step >= cfg.max_steps or out_of_time or (stop_at_step is not None and step >= stop_at_step)
            evaluates = main and cfg.eval_batches  # rank 0 evaluates for all processes
            if evaluates and ((cfg.eval_every and step % cfg.eval_every == 0) or step >= cfg.max_steps):
                run_eval(record)
            elif evaluates and is_last:
                # Interrupted off the evaluation grid: evaluate for the final metrics but keep the
                # history exactly what an uninterrupted run records, so a resumed run matches it.
                stop_eval = {}
                run_eval(stop_eval)
            if on_sample is not None and main and ((cfg.sample_every and step % cfg.sample_every == 0) or is_last):
                run_sample()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and not is_last:
                checkpoint()
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{lr:.2e}",
                            tok_s=f"{session_tokens / max(elapsed, 1e-9):,.0f}", refresh=False)
            if plot is not None:
                plot.update(history, force=is_last)
            if out_of_time:
                stopped = "time_budget"
                if verbose and main:
                    tqdm.write(f"Time budget of {cfg.time_budget_s:g} s reached at step {step}/{cfg.max_steps}: "
                               f"stopping and saving.")
                break
    except KeyboardInterrupt:
        # Save what a resume needs, as of the last completed step, then let the interrupt through.
        if phase == "step":
            batch_gen.set_state(snapshot[0])
            torch.set_rng_state(snapshot[1])
            opt.zero_grad(set_to_none=True)
        if phase != "update" and ckpt_path is not None:
            checkpoint()
            print(f"Interrupted after step {step}/{cfg.max_steps}; checkpoint saved in {ckpt_path}. "
                  f"Continue with train(..., resume=True).")
        raise
    finally:
        bar.close()
        if plot is not None:
            plot.close()
    checkpoint()
    model.eval()
    seconds = time.perf_counter() - t0
    evals = [h for h in history if h.get("val_loss") is not None]
    recent = [h["train_loss"] for h in history[-10:]]
    final = {
        "steps": step,
        "tokens": tokens_total,
        "seconds": round(prior_seconds + seconds, 2),
        "session_seconds": round(seconds, 2),
        "session_cpu_seconds": round(time.process_time() - cpu0, 2),
        "tokens_per_s": round(session_tokens / seconds, 1) if seconds > 0 and session_tokens else None,
        "train_loss": sum(recent) / len(recent) if recent else None,
        "val_loss": stop_eval.get("val_loss", evals[-1]["val_loss"] if evals else None),
        "stopped": stopped,
    }
    return TrainResult(history=history, final=final, samples=samples, checkpoint=checkpoint_written)
