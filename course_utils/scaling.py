"""Scaling: how much arithmetic a training run is, what it costs, and how loss falls with size.

- :func:`count_params`: the model's parameters by role. *N* needs care at this size: the token
  table (shared with the output head) is a large share of a small model and a tiny share of a
  large one.
- :func:`flops_per_token`: multiply-adds of one token through the model, counted layer by layer,
  attention scores included; training costs three forward passes (the backward pass is two).
  ``6 x N x D`` is the usual shorthand; :func:`flops_per_token` says how far off it is here.
- :func:`measure_matmul_flops`, :func:`mfu`: what this machine can do, and how much of it a run uses.
- :data:`PUBLIC_MODELS`, :data:`GPUS`, :func:`training_cost`: the same arithmetic for well-known
  models, each figure with its source; :func:`training_memory` and :func:`sharded_memory`: what
  a model needs in memory to train, and how ZeRO/FSDP, tensor and pipeline parallelism split it.
- :func:`fit_power_law`: fits ``L(N) = a * N**-alpha + c`` to a few (size, loss) points.
- :func:`sweep_shapes`, :func:`sweep_config`, :func:`train_size`: the scaling-law sweep of
  chapter 14, small models trained on the pretraining corpus with the course's one loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
import torch

from . import config

# Chinchilla's rule of thumb: a compute-optimal model sees about 20 training tokens per parameter.
CHINCHILLA_TOKENS_PER_PARAM = 20


# ----------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class ParamCount:
    embedding: int  # the token table, vocab_size x n_embd (tied: it is also the output head)
    attention: int  # q, k, v and output projections of every layer
    mlp: int  # SwiGLU's gate, up and down of every layer
    norms: int  # RMSNorm gains

    @property
    def total(self) -> int:
        return self.embedding + self.attention + self.mlp + self.norms

    @property
    def non_embedding(self) -> int:
        """Kaplan et al.'s N: what is left without the token table."""
        return self.total - self.embedding


def count_params(shape) -> ParamCount:
    """The parameters of a :class:`course_utils.model.GPT` of this shape, by role, from the shape alone."""
    d, h, L = shape.n_embd, shape.mlp_hidden, shape.n_layer
    return ParamCount(embedding=shape.vocab_size * d, attention=L * 4 * d * d, mlp=L * 3 * d * h,
                      norms=(2 * L + 1) * d)


# ----------------------------------------------------------------------------- FLOPs

@dataclass(frozen=True)
class FlopCount:
    """Forward-pass FLOPs per token (a multiply-add is 2 FLOPs), by part."""

    attention_proj: float  # x -> q, k, v and the output projection: 2 x 4 d^2 per layer
    attention_scores: float  # q.k for every key, then the weighted sum of values: 2 x 2 T d per layer
    mlp: float  # SwiGLU: 2 x 3 d h per layer
    head: float  # the output head, 2 d V: the token table is used as a matrix here
    # Element-wise work (norms, RoPE, softmax, SiLU) and the embedding lookup are not counted:
    # they do a handful of operations per number, the matrix products above do d or T per number.

    @property
    def forward(self) -> float:
        return self.attention_proj + self.attention_scores + self.mlp + self.head

    @property
    def training(self) -> float:
        """Forward plus backward: the backward pass needs two products per forward product (the
        gradient with respect to the input and with respect to the weights), so 3 x forward."""
        return 3 * self.forward


def flops_per_token(shape, context: int | None = None) -> FlopCount:
    """FLOPs of one token through a model of this shape, with ``context`` tokens per row
    (default: the full ``block_size``).

    Attention is counted against every key of the row, as a dense kernel computes it (a causal
    kernel could skip the masked half; PaLM and nanoGPT count it this way too)."""
    d, h, L, V = shape.n_embd, shape.mlp_hidden, shape.n_layer, shape.vocab_size
    T = shape.block_size if context is None else context
    return FlopCount(attention_proj=L * 2 * 4 * d * d, attention_scores=L * 2 * 2 * T * d,
                     mlp=L * 2 * 3 * d * h, head=2 * d * V)


def training_flops(shape, tokens: float, context: int | None = None) -> float:
    """FLOPs to train a model of this shape on ``tokens`` tokens."""
    return flops_per_token(shape, context).training * tokens


def six_nd(params: float, tokens: float) -> float:
    """The shorthand: 6 FLOPs per parameter per token (2 forward, 4 backward)."""
    return 6 * params * tokens


# ----------------------------------------------------------------------------- this machine

def measure_matmul_flops(size: int = 1024, seconds: float = 1.0, threads: int | None = None,
                         device: torch.device | None = None) -> float:
    """FLOP/s of a large float32 matrix product on the course's device: the practical peak that
    utilisation (MFU) is measured against. ``threads`` defaults to torch's current setting."""
    device = device or config.device()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = (torch.randn(size, size, generator=gen).to(device) for _ in range(2))
        a @ b  # warm-up: first calls allocate and pick kernels
        best, spent = 0.0, 0.0
        while spent < seconds:
            start = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading the clock
            took = time.perf_counter() - start
            spent += took
            best = max(best, 2 * size ** 3 / took)  # the best repeat: the machine when undisturbed
        return best
    finally:
        torch.set_num_threads(before)


def mfu(training_flops_per_token: float, tokens_per_s: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the useful FLOP/s of a run as a share of the peak."""
    return training_flops_per_token * tokens_per_s / peak_flops


def course_runs(vocab_size: int) -> list[dict]:
    """The course's pretraining and fine-tuning runs in the active profile: shape, tokens, FLOPs.

    A stage already built reports the tokens it saw and its speed; otherwise the tokens are
    what its recipe plans (steps x rows x context: every row is a full window in pretraining,
    at most one in fine-tuning) and the speed is unknown."""
    from .model import default_config
    from .pretrain import pretrain_config
    from .sft import sft_config, tools_config
    from .stages import StageError, load_stage

    shape = default_config(vocab_size)
    rows = []
    for stage, run, cfg in (("base", "pretraining (04)", pretrain_config()), ("sft", "SFT (06)", sft_config()),
                            ("sft_tools", "SFT with tools (07)", tools_config())):
        tokens = cfg.max_steps * cfg.batch_size * cfg.grad_accum * shape.block_size
        tokens_per_s = None
        try:
            summary = load_stage(stage).meta.get("train_summary") or {}
            tokens, tokens_per_s = summary.get("tokens", tokens), summary.get("tokens_per_s")
        except StageError:
            pass
        params = count_params(shape)
        rows.append({"run": run, "params": params.total, "non_embedding_params": params.non_embedding,
                     "tokens": tokens, "flops": training_flops(shape, tokens),
                     "six_nd": six_nd(params.total, tokens), "tokens_per_s": tokens_per_s,
                     "measured": tokens_per_s is not None, "shape": shape})
    return rows


# ----------------------------------------------------------------------------- public models

@dataclass(frozen=True)
class GPU:
    name: str
    peak_flops: float  # dense bf16/fp16 tensor-core FLOP/s (without "sparsity")
    watts: float  # board power (TDP)
    source: str


GPUS = {
    "V100": GPU("V100", 125e12, 300, "NVIDIA Tesla V100 datasheet: 125 TFLOPS deep learning (fp16 tensor cores), 300 W (SXM2)"),
    "A100": GPU("A100", 312e12, 400, "NVIDIA A100 datasheet: 312 TFLOPS bf16 tensor cores (dense), 400 W (SXM)"),
    "H100": GPU("H100", 989e12, 700, "NVIDIA H100 datasheet: 989 TFLOPS bf16 tensor cores (dense, SXM), 700 W"),
}


@dataclass(frozen=True)
class PublicModel:
    name: str
    params: float
    tokens: float
    gpu: str | None  # a key of GPUS, or None when not trained on GPUs
    gpus: int | None  # GPUs used at once, as reported
    reported_gpu_hours: float | None
    reported_flops: float | None
    source: str


PUBLIC_MODELS = {
    "GPT-3 175B": PublicModel(
        "GPT-3 175B", 175e9, 300e9, "V100", None, None, 3.14e23,
        "Brown et al. 2020, Language Models are Few-Shot Learners (arXiv:2005.14165): 300B training tokens "
        "(Table 2.2), 3.14e23 FLOPs (Table D.1), V100 GPUs on a Microsoft cluster (number not given)"),
    "Chinchilla 70B": PublicModel(
        "Chinchilla 70B", 70e9, 1.4e12, None, None, None, None,
        "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models (arXiv:2203.15556): 70B "
        "parameters, 1.4T tokens, the same compute as the 280B Gopher; trained on TPUs"),
    "Llama 2 70B": PublicModel(
        "Llama 2 70B", 70e9, 2e12, "A100", None, 1_720_320, None,
        "Touvron et al. 2023, Llama 2 (arXiv:2307.09288): 2T tokens (Table 1), 1,720,320 A100-80GB "
        "GPU-hours at 400 W (Table 2)"),
    "Llama 3.1 405B": PublicModel(
        "Llama 3.1 405B", 405e9, 15.6e12, "H100", 16_384, 30.84e6, 3.8e25,
        "Llama Team 2024, The Llama 3 Herd of Models (arXiv:2407.21783): 15.6T tokens, 3.8e25 FLOPs, up to "
        "16,384 H100 GPUs at 38-43 % MFU; Llama 3.1 model card: 30.84M H100-80GB GPU-hours for the 405B"),
}


def training_cost(params: float, tokens: float, *, peak_flops: float, mfu: float, gpus: int,
                  usd_per_gpu_hour: float, watts_per_gpu: float) -> dict:
    """Compute, time, money and energy of training ``params`` parameters on ``tokens`` tokens,
    with 6 N D FLOPs (attention adds a few % at these sizes). The energy counts the GPUs alone:
    no cooling, CPUs or network."""
    flops = six_nd(params, tokens)
    gpu_hours = flops / (peak_flops * mfu) / 3600
    return {"flops": flops, "gpu_hours": gpu_hours, "days": gpu_hours / gpus / 24,
            "usd": gpu_hours * usd_per_gpu_hour, "mwh": gpu_hours * watts_per_gpu / 1e6}


# ----------------------------------------------------------------------------- memory (on paper)

@dataclass(frozen=True)
class Transformer:
    """The shape memory arithmetic needs."""

    name: str
    params: float
    n_layer: int
    d_model: int
    n_head: int
    source: str = ""


LLAMA2_7B = Transformer("Llama 2 7B", 6.74e9, 32, 4096, 32, "Touvron et al. 2023 (arXiv:2307.09288)")


def llama2_7b_shape(context: int = 4096):
    """Llama 2 7B's shape as a course config, for counting its FLOPs (not for building: 6.7B parameters).
    Its embeddings are not tied, but the output head costs the same FLOPs either way."""
    from .model import GPTConfig

    return GPTConfig(vocab_size=32000, block_size=context, n_layer=32, n_head=32, n_embd=4096, mlp_hidden=11008)


def training_memory(model: Transformer, *, seq_len: int = 4096, micro_batch: int = 1,
                    flash_attention: bool = True, recompute: bool = False) -> dict:
    """Bytes to train ``model`` with Adam in mixed precision, per part, on one device.

    Following the ZeRO paper (Rajbhandari et al. 2019, arXiv:1910.02054), each parameter costs
    2 bytes of bf16 weight, 2 of bf16 gradient and 12 of optimizer state (an fp32 master copy,
    Adam's two moments): 16 bytes. Activations kept for the backward pass follow Korthikanti et
    al. 2022 (arXiv:2205.05198): ``s b h (34 + 5 a s / h)`` bytes per layer; the second term is
    the (s x s) attention scores, which a fused ("flash") attention does not keep; with full
    recomputation only each layer's input is kept (``2 s b h``) and recomputed in the backward pass.
    """
    s, b, h, a, L = seq_len, micro_batch, model.d_model, model.n_head, model.n_layer
    if recompute:
        per_layer = 2 * s * b * h
    else:
        per_layer = s * b * h * (34 + (0 if flash_attention else 5 * a * s / h))
    return {"weights": 2 * model.params, "gradients": 2 * model.params, "optimizer": 12 * model.params,
            "activations": L * per_layer}


def sharded_memory(parts: dict, *, gpus: int = 1, zero_stage: int = 0, tensor: int = 1, pipeline: int = 1) -> dict:
    """Bytes per GPU when ``parts`` (from :func:`training_memory`) are split.

    - data parallel with ZeRO over ``gpus`` (FSDP is stage 3): stage 1 shards the optimizer
      state, stage 2 the gradients too, stage 3 the weights too (gathered layer by layer when used);
    - tensor parallelism over ``tensor`` GPUs splits every matrix (and most activations);
    - pipeline parallelism over ``pipeline`` GPUs gives each a slice of the layers.
    (Activations under tensor parallelism are simplified: the parts each GPU keeps whole are ignored.)
    """
    split = tensor * pipeline  # every GPU of a model replica holds this share of the model
    per_gpu = {k: v / split for k, v in parts.items()}
    for stage, part in ((1, "optimizer"), (2, "gradients"), (3, "weights")):
        if zero_stage >= stage:
            per_gpu[part] /= gpus
    return per_gpu


# ----------------------------------------------------------------------------- the fitter

@dataclass(frozen=True)
class PowerLaw:
    """``L(N) = a * N**-alpha + c``: a power law falling toward a floor ``c``."""

    a: float
    alpha: float
    c: float

    def __call__(self, n):
        return self.a * np.asarray(n, dtype=float) ** -self.alpha + self.c


def fit_power_law(n: Sequence[float], loss: Sequence[float], *, c: float | None = None) -> PowerLaw:
    """Fit ``L(N) = a N^-alpha + c`` to points, minimising the squared error of log L (so each
    point counts by its relative error).

    For a fixed floor ``c`` the law is a straight line on log axes, ``log(L - c) = log a -
    alpha log N``, solved exactly by least squares; the floor itself is searched between 0 and
    just under the smallest loss (a grid, then a finer grid around the best). Pass ``c`` to fix
    it (``c=0``: a pure power law, a straight line on log-log axes)."""
    n, loss = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    if n.shape != loss.shape or len(n) < 3:
        raise ValueError(f"need at least 3 (N, loss) points of the same length, got {len(n)} and {len(loss)}")
    if (n <= 0).any() or (loss <= 0).any():
        raise ValueError("sizes and losses must be positive")
    log_n, log_loss = np.log(n), np.log(loss)

    def fit_given(floor: float) -> tuple[float, PowerLaw]:
        slope, intercept = np.polyfit(log_n, np.log(loss - floor), 1)
        law = PowerLaw(float(np.exp(intercept)), float(-slope), float(floor))
        return float(np.sum((np.log(law(n)) - log_loss) ** 2)), law

    if c is not None:
        return fit_given(c)[1]
    top = loss.min() * (1 - 1e-6)
    grid = np.linspace(0.0, top, 401)
    for _ in range(3):  # zoom in around the best floor
        errors = [fit_given(f)[0] for f in grid]
        best = int(np.argmin(errors))
        step = grid[1] - grid[0]
        grid = np.linspace(max(0.0, grid[best] - step), min(top, grid[best] + step), 201)
    return min((fit_given(f) for f in grid), key=lambda e_law: e_law[0])[1]


# ----------------------------------------------------------------------------- the sweep

# Widths of the sweep's models as fractions of the course model's width (chapter 04's shape),
# and of the larger model whose loss the fitted law predicts. Depth, vocabulary and head size
# stay the course model's, so only the width changes.
SWEEP_WIDTHS = (3 / 16, 4 / 16, 5 / 16, 6 / 16, 7 / 16)
CHECK_WIDTH = 10 / 16


def _with_width(base, width: int):
    from .model import GPTConfig

    n_head = max(1, width // base.head_dim)
    while width % n_head or (width // n_head) % 2:  # every head the same even size (RoPE)
        n_head -= 1
    # Half the course model's context: the same tokens per step in twice the rows, for cheaper
    # attention; it is the same for every size, so the comparison is fair.
    return GPTConfig(**{**base.to_dict(), "n_embd": width, "n_head": n_head, "mlp_hidden": None,
                        "block_size": base.block_size // 2})


def sweep_shapes(base) -> list:
    """The five model shapes of the sweep: the course model's shape (``base``) at smaller widths."""
    return [_with_width(base, 2 * round(base.n_embd * f / 2)) for f in SWEEP_WIDTHS]


def check_shape(base):
    """The larger model trained once to check the law's prediction."""
    return _with_width(base, 2 * round(base.n_embd * CHECK_WIDTH / 2))


def sweep_config(**overrides):
    """Training of every sweep model: the same tokens, steps and learning rate for all sizes.

    ==== ===== ===== ============================================
    prof steps batch tokens per model (x context: half the course model's)
    ==== ===== ===== ============================================
    ci   6     4     768 (every code path, no lesson)
    cpu  300   8     307k: about half a pass over the corpus
    gpu  2000  32    16M
    ==== ===== ===== ============================================
    """
    from .pretrain import pretrain_config

    steps = config.pick(ci=6, cpu=300, gpu=2000, smoke=2)
    cfg = pretrain_config(max_steps=steps, batch_size=config.pick(ci=4, cpu=8, gpu=32, smoke=2),
                          warmup_steps=max(1, steps // 10), eval_every=0,
                          eval_batches=config.pick(ci=2, cpu=16, gpu=32, smoke=1), sample_every=0,
                          # One thread on a CPU: matrices this small leave a second thread mostly waiting,
                          # and threads that must keep in step suffer most when other programs share the
                          # cores (on a busy 2-core machine two threads ran these models several times
                          # slower than one). The gpu profile trains on the GPU.
                          num_threads=config.pick(ci=1, cpu=1, gpu=None))
    return replace(cfg, **overrides)


@dataclass
class SizeRun:
    """One model of the sweep, trained."""

    n_embd: int
    params: int
    non_embedding_params: int
    tokens: int
    flops: float  # training FLOPs, by flops_per_token
    val_loss: float
    train_loss: float
    seconds: float
    tokens_per_s: float
    history: list

    def to_dict(self) -> dict:
        return asdict(self)


def train_size(shape, data, cfg, *, progress: bool = True) -> SizeRun:
    """Train a fresh model of ``shape`` on ``data`` (a batch source) with the course's loop."""
    from .model import GPT
    from .train import train

    torch.manual_seed(cfg.seed)  # every size starts from the same seed and sees the same batches
    model = GPT(shape).to(config.device())
    threads = torch.get_num_threads()
    try:
        result = train(model, data, cfg, progress=progress, verbose=False, desc=f"width {shape.n_embd}")
    finally:
        torch.set_num_threads(threads)  # cfg.num_threads is for this run only
    params = count_params(shape)
    return SizeRun(n_embd=shape.n_embd, params=params.total, non_embedding_params=params.non_embedding,
                   tokens=result.final["tokens"], flops=training_flops(shape, result.final["tokens"]),
                   val_loss=result.final["val_loss"], train_loss=result.final["train_loss"],
                   seconds=result.final["session_seconds"], tokens_per_s=result.final["tokens_per_s"],
                   history=result.history)


def prediction_error(law: PowerLaw, n: float, loss: float) -> float:
    """The law's error at (n, loss) as a share of the measured loss (+ = predicted too high)."""
    return float((law(n) - loss) / loss)


def tokens_per_param(tokens: float, params: float) -> float:
    return tokens / params


def compute_optimal(flops: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> tuple[float, float]:
    """The model size and token count Chinchilla's rule picks for a compute budget: C = 6 N D and
    D = r N give N = sqrt(C / 6r)."""
    params = math.sqrt(flops / (6 * tokens_per_param))
    return params, tokens_per_param * params
