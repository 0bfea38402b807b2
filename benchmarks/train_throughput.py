"""Training and generation speed of the course model, printed as JSON.

Training: tokens per second of ``course_utils.train.train`` on the course model (the active
profile's shape, default ``cpu``) against two references written here, same batch, alternating
round by round in one process (the median of each is compared, so machine noise hits all alike):

- ``plain``: the course's own design (RMSNorm, RoPE, SwiGLU, tied embeddings, no biases) written
  the straightforward way, with a textbook AdamW loop. The same shape *and* the same arithmetic, so
  the ratio measures the implementation and the loop alone. Target: ratio >= 1.0.
- ``gpt2``: a plain nanoGPT-style model of the same shape (LayerNorm, learned positions, GELU
  MLP of 4 x n_embd) with nanoGPT's loop (AdamW, clipping). SwiGLU's three matrices do more
  multiply-adds than GELU's two (``multiply_adds`` reports how many more), so this ratio also
  includes that price of the modern design.
- ``gpt2_same_budget``: the same nanoGPT-style model with its MLP widened to do exactly the
  multiply-adds of the course's SwiGLU (hidden 3/2 x mlp_hidden): the same shape *and* the same
  arithmetic. What is left between it and the course is the rest of the design (RMSNorm for
  LayerNorm, RoPE for learned positions, SiLU gating for GELU) and the implementation.
  Target: ratio >= 1.0.

Generation: new tokens per second for 256 greedy tokens with and without the KV cache.
Target: the cache >= 3x faster.

    .venv/bin/python benchmarks/train_throughput.py [--rounds 5] [--steps 8] [--threads 1] [--compile] [--bf16]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils import config
from course_utils.generate import generate
from course_utils.model import GPT, default_config
from course_utils.pretrain import pretrain_config
from course_utils.train import TrainConfig, train


# ----------------------------------------------------------------------------- the references

class PlainBlock(nn.Module):
    """The course's block (RMSNorm, RoPE, SwiGLU, no biases) as one would first write it."""

    def __init__(self, d, n_head, hidden):
        super().__init__()
        self.n_head = n_head
        self.norm1, self.norm2 = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.gate, self.up = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(rms_norm(x, self.norm1)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        h = rms_norm(x, self.norm2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rms_norm(x, weight, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class PlainGPT(nn.Module):
    """The course's architecture, written plainly (no custom kernels, no fused loss)."""

    def __init__(self, vocab, block, d, n_layer, n_head, hidden):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(PlainBlock(d, n_head, hidden) for _ in range(n_layer))
        self.norm = nn.Parameter(torch.ones(d))
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight
        head_dim = d // n_head
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(block).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx, targets):
        T = idx.size(1)
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.wte(idx)
        for b in self.blocks:
            x = b(x, cos, sin)
        x = rms_norm(x, self.norm)
        logits = self.head(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


class RefBlock(nn.Module):
    def __init__(self, d, n_head, hidden):
        super().__init__()
        self.n_head = n_head
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class RefGPT(nn.Module):
    """A plain GPT-2-style model: what one would write from a textbook."""

    def __init__(self, vocab, block, d, n_layer, n_head, hidden):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.blocks = nn.ModuleList(RefBlock(d, n_head, hidden) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def ref_train(model, get_batch, steps, batch_size, gen, opt):
    for _ in range(steps):
        x, y = get_batch("train", batch_size, gen)
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def multiply_adds(cfg, same_budget_hidden) -> dict:
    """Forward multiply-adds per token of each model, and the MLP's share of the difference.

    Per layer: q, k, v and the output projection (4 d^2), attention over on average T/2 earlier
    tokens (scores and weighted values, 2 x d x T/2), and the MLP: SwiGLU 3 x d x hidden, GELU
    2 x d x hidden. Plus the output head, d x vocab. Norms, RoPE and activations are left out.
    """
    d, T, L, V = cfg.n_embd, cfg.block_size, cfg.n_layer, cfg.vocab_size
    rest = L * (4 * d * d + d * T) + d * V
    mlp = {"course": 3 * d * cfg.mlp_hidden, "gpt2": 2 * d * 4 * d, "gpt2_same_budget": 2 * d * same_budget_hidden}
    total = {n: rest + L * m for n, m in mlp.items()}
    return {**total, "mlp_extra_vs_gpt2": L * (mlp["course"] - mlp["gpt2"]),
            "mlp_extra_share_vs_gpt2": round(total["course"] / total["gpt2"] - 1, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per round")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--gen-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--compile", action="store_true", help="train the course model with TrainConfig.compile=True")
    ap.add_argument("--bf16", action="store_true",
                    help="train the course model under bfloat16 autocast (TrainConfig.amp_dtype); numerics change")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = default_config(args.vocab)
    T, B = cfg.block_size, args.batch
    course = GPT(cfg)
    same_budget_hidden = 3 * cfg.mlp_hidden // 2  # 2 x d x hidden = SwiGLU's 3 x d x mlp_hidden
    refs = {"plain": PlainGPT(cfg.vocab_size, T, cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.mlp_hidden),
            "gpt2": RefGPT(cfg.vocab_size, T, cfg.n_embd, cfg.n_layer, cfg.n_head, 4 * cfg.n_embd),
            "gpt2_same_budget": RefGPT(cfg.vocab_size, T, cfg.n_embd, cfg.n_layer, cfg.n_head, same_budget_hidden)}
    data = torch.randint(0, cfg.vocab_size, (200_000,))

    def get_batch(split, batch_size, gen):
        starts = torch.randint(len(data) - T - 1, (batch_size,), generator=gen)
        idx = starts[:, None] + torch.arange(T + 1)
        chunk = data[idx]
        return chunk[:, :-1], chunk[:, 1:]

    # The course loop as pretraining runs it, or with torch.compile (--compile; round 0, not
    # counted, pays the one-off compile).
    tcfg = TrainConfig(max_steps=args.steps, batch_size=B, lr=1e-4, warmup_steps=1, eval_every=0, eval_batches=0,
                       compile=args.compile or pretrain_config().compile, amp_dtype="bfloat16" if args.bf16 else None)
    ref_opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.1) for name, m in refs.items()}
    ref_gen = torch.Generator().manual_seed(0)
    tokens = args.steps * B * T
    # Wall-clock tokens/s is what a learner feels; tokens per CPU-second (process time, all
    # threads) is steadier when other programs share the cores, so both are reported.
    names = ("course",) + tuple(refs)
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(args.rounds + 1):  # round 0 warms all up and is not counted
        order = names[r % len(names):] + names[:r % len(names)]  # each goes first in turn
        for which in order:
            t0, c0 = time.perf_counter(), time.process_time()
            if which == "course":
                train(course, get_batch, tcfg, progress=False, verbose=False)
            else:
                ref_train(refs[which], get_batch, args.steps, B, ref_gen, ref_opts[which])
            if r:
                wall[which].append(tokens / (time.perf_counter() - t0))
                cpu[which].append(tokens / (time.process_time() - c0))
    med = {k: {n: statistics.median(v[n]) for n in names} for k, v in (("wall", wall), ("cpu", cpu))}

    def ratio(clock, ref):
        """Median ratio, and the lowest and highest ratio of a single round (the spread)."""
        runs = wall if clock == "wall" else cpu
        per_round = [c / r for c, r in zip(runs["course"], runs[ref])]
        return {"median": round(med[clock]["course"] / med[clock][ref], 3),
                "low": round(min(per_round), 3), "high": round(max(per_round), 3)}

    macs = multiply_adds(cfg, same_budget_hidden)

    # Generation: greedy, one-token prompt, the same model with and without the KV cache.
    course.eval()
    n_new = min(args.gen_tokens, T)
    gen_tps = {}
    for use_cache in (True, False, True, False):
        t0 = time.perf_counter()
        out = generate(course, [0], n_new, temperature=0.0, use_cache=use_cache)
        gen_tps.setdefault(use_cache, []).append(len(out) / (time.perf_counter() - t0))
    cached, uncached = max(gen_tps[True]), max(gen_tps[False])

    result = {
        "profile": config.profile(),
        "threads": torch.get_num_threads(),
        "compiled": tcfg.compile,
        "amp_dtype": tcfg.amp_dtype,
        "torch": torch.__version__,
        "shape": {"vocab": cfg.vocab_size, "block": T, "batch": B, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                  "n_embd": cfg.n_embd},
        "params": {"course": course.num_params(), **{n: n_params(m) for n, m in refs.items()}},
        "multiply_adds_per_token": macs,
        "train_tokens_per_s": {
            **{n: round(med["wall"][n]) for n in names},
            **{f"ratio_vs_{r}": ratio("wall", r) for r in refs},
            "per_cpu_second": {**{n: round(med["cpu"][n]) for n in names},
                               **{f"ratio_vs_{r}": ratio("cpu", r) for r in refs}},
            "load_average_1min": round(os.getloadavg()[0], 2),
            "rounds": args.rounds,
            "steps_per_round": args.steps,
            "targets": {"ratio_vs_plain": 1.0, "ratio_vs_gpt2_same_budget": 1.0},
        },
        "generate_tokens_per_s": {
            "new_tokens": n_new,
            "kv_cache": round(cached, 1),
            "no_cache": round(uncached, 1),
            "speedup": round(cached / uncached, 2),
            "target_speedup": 3.0,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
