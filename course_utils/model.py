"""The decoder-only transformer the whole course trains, in one readable file.

It is GPT-2's shape with the defaults of today's open models (Llama, Qwen, Mistral):

- **RMSNorm** before each sub-layer (pre-norm), and once more before the output head;
- **rotary position embeddings (RoPE)**: no position table; queries and keys are rotated by an
  angle proportional to their position, so attention scores depend on *relative* distance;
- a **SwiGLU** MLP (a gated MLP: ``down(silu(gate(x)) * up(x))``);
- **tied embeddings**: the output head reuses the token-embedding matrix;
- **no biases** anywhere.

Tensor names follow the roles: ``tok_emb``, ``blocks.{i}.attn_norm``, ``blocks.{i}.attn.qkv``,
``blocks.{i}.attn.proj``, ``blocks.{i}.mlp_norm``, ``blocks.{i}.mlp.gate|up|down``, ``norm``,
``lm_head``. RoPE uses the "rotate half" pairing (dimension i with i + head_dim/2), the same
convention as Hugging Face's Llama, so an export only has to split ``qkv`` into q, k and v.

Stages store ``GPTConfig.to_dict()`` as ``meta["model_config"]``; :func:`model_from_stage`
rebuilds the model from it, and :func:`save_model_files` writes the weights for
:func:`course_utils.stages.save_stage`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config as course_config

IGNORE_INDEX = -100  # targets with this value are never trained on (PyTorch's default)


# ----------------------------------------------------------------------------- configuration

@dataclass
class GPTConfig:
    vocab_size: int = 2048
    block_size: int = 256  # context length: the most tokens the model ever sees at once
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    # SwiGLU has three matrices instead of two, so its hidden size is ~8/3 * n_embd rather
    # than GPT-2's 4 * n_embd: the same parameter count. None = that size, rounded up to 64.
    mlp_hidden: int | None = None
    dropout: float = 0.0  # tiny models on small data rarely need it; kept for experiments
    rope_base: float = 10000.0  # sets the slowest rotation; 10k is the usual choice
    norm_eps: float = 1e-5

    def __post_init__(self):
        if self.mlp_hidden is None:
            self.mlp_hidden = 64 * math.ceil(8 * self.n_embd / 3 / 64)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.head_dim % 2:
            raise ValueError(f"head size n_embd/n_head={self.head_dim} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown GPTConfig fields {unknown}: this config was written by a different version "
                             f"of course_utils.model. Known fields: {sorted(known)}")
        return cls(**d)


def default_config(vocab_size: int, **overrides) -> GPTConfig:
    """The course's model size for the active profile (``COURSE_PROFILE``); ``overrides`` replace fields.

    - ci : d=64,  2 layers, 2 heads, context 64,  MLP 192:  0.14M parameters with the 512-token vocabulary
    - cpu: d=128, 4 layers, 4 heads, context 256, MLP 384:  1.12M with 2048 tokens (~10k tokens/s to train on 2 cores)
    - gpu: d=384, 6 layers, 6 heads, context 512, MLP 1024: 13.8M with 8192 tokens
    """
    cfg = GPTConfig(
        vocab_size=vocab_size,
        n_embd=course_config.pick(ci=64, cpu=128, gpu=384),
        n_layer=course_config.pick(ci=2, cpu=4, gpu=6),
        n_head=course_config.pick(ci=2, cpu=4, gpu=6),
        block_size=course_config.pick(ci=64, cpu=256, gpu=512),
    )
    # mlp_hidden is recomputed from the new n_embd unless it is overridden too.
    return replace(cfg, **{"mlp_hidden": None, **overrides}) if overrides else cfg


# ----------------------------------------------------------------------------- building blocks

class RMSNorm(nn.Module):
    """Scale each vector to unit root-mean-square, then by a learned gain.

    Cheaper than LayerNorm (no mean, no bias) and works as well: ``x / rms(x) * weight``.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # Same as x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.
        if x.device.type == "cpu" and torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            # Training on CPU: with a hand-written gradient, much faster there (see below).
            return _RMSNormFunction.apply(x, self.weight, self.eps)
        # Otherwise PyTorch's own: fused on GPUs, and without the ~10 us of Python that a custom
        # autograd function costs per call (felt when generating one token at a time).
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


class _RMSNormFunction(torch.autograd.Function):
    """RMSNorm with its gradient written out by hand, for training on CPU.

    On CPU, PyTorch (2.13) has no fused RMSNorm kernel: ``F.rms_norm`` runs the formula step by
    step, and autograd builds the gradient from ~13 more steps, each a full pass over the
    activations. RMSNorm runs 2 * n_layer + 1 times per forward, so that was a good share of a
    training step. Written out, the forward takes 3 passes and the backward 6.
    With r = 1 / rms(x), one number per vector of size d, and g = grad_out * weight:

        grad_x      = r * g - x * r**3 * mean(g * x)     (the mean over the d numbers of each vector)
        grad_weight = sum over all positions of grad_out * x * r

    ``torch.autograd.gradcheck`` confirms it against finite differences.
    """

    @staticmethod
    def forward(ctx, x, weight, eps):
        # rms = |x| / sqrt(d): vector_norm reads x once and writes one number per vector.
        r = torch.rsqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() / x.size(-1) + eps)
        ctx.save_for_backward(x, weight, r)  # r is small: one number per vector
        return x * r * weight

    @staticmethod
    @torch.autograd.function.once_differentiable  # a gradient of this gradient would be wrong: refuse it
    def backward(ctx, grad_out):
        x, weight, r = ctx.saved_tensors
        d = x.size(-1)
        grad_out_x = grad_out * x  # both gradients start from it
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            # mean(g * x) = (grad_out * x) @ weight / d: a matrix-vector product, no temporary.
            mean_gx = (grad_out_x @ weight).unsqueeze(-1) / d
            grad_x = torch.addcmul(grad_out * weight * r, x, -mean_gx * r.pow(3))
        if ctx.needs_input_grad[1]:
            # The sum over positions of (grad_out * x) * r: a matrix-vector product too.
            grad_weight = grad_out_x.reshape(-1, d).T @ r.reshape(-1)
        return grad_x, grad_weight, None


def rotate_half(x):
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension: a 90-degree turn of each pair.

    The textbook form, kept for reading and for tests; :class:`RotaryEmbedding` computes the same
    thing with fewer operations (see its ``forward``).
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotate queries and keys by an angle that grows with their position.

    Pair ``(i, i + head_dim/2)`` turns by ``position * base ** (-2i / head_dim)`` radians: the
    first pairs spin fast (fine position), the last ones slowly (coarse position). Because a
    query rotated by angle a and a key rotated by b meet with angle a - b, the attention score
    depends only on how far apart they are. No parameters: cos and sin are precomputed.
    """

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (max_len, head_dim/2)
        # Not persistent: recomputed from the config, never stored in a checkpoint.
        # cos is the same for both members of a pair. sin carries the minus sign of rotate_half:
        # -sin for the first half, +sin for the second (see forward).
        self.register_buffer("cos", torch.cat((angles.cos(), angles.cos()), dim=-1), persistent=False)
        self.register_buffer("sin", torch.cat((-angles.sin(), angles.sin()), dim=-1), persistent=False)

    def forward(self, x, start: int = 0, positions=None):
        """Rotate ``x`` of shape (..., T, head_dim) whose first token sits at position ``start``.

        Any leading dimensions broadcast: the model rotates queries and keys together, stacked
        as (2, B, n_head, T, head_dim), in one call. ``positions`` (B, T), when given, replaces
        ``start``: each row's own positions (rows of a left-padded batch start at different columns).
        """
        T, half = x.size(-2), x.size(-1) // 2
        if positions is not None:
            # (B, T, head_dim) -> (B, 1, T, head_dim): one angle per row and position, shared by the heads.
            cos, sin = self.cos[positions].unsqueeze(-3).to(x.dtype), self.sin[positions].unsqueeze(-3).to(x.dtype)
        else:
            if start + T > self.cos.size(0):
                raise ValueError(f"positions {start}..{start + T - 1} exceed the context length {self.cos.size(0)}")
            cos = self.cos[start:start + T].to(x.dtype)
            sin = self.sin[start:start + T].to(x.dtype)
        # x * cos + rotate_half(x) * sin, where rotate_half(x) = (-x2, x1). The minus sign lives in
        # the sin buffer, so what is left is swapping the halves, (x2, x1): a roll by half the
        # width. addcmul(a, b, c) = a + b * c in one pass. That is 3 passes over q and k instead of
        # 5 (neg, cat, mul, mul, add); in training they add up, in every layer, forward and backward.
        return torch.addcmul(x * cos, x.roll(half, dims=-1), sin)


class KVCache:
    """Keys and values of every layer for the tokens seen so far, so generation feeds one token
    at a time instead of the whole context again.

    ``pos`` counts the columns already stored; it is also the position of the next token, which
    is where RoPE rotates its query and key. Keys are stored already rotated. Memory is allocated
    on first use, with the batch size, device and dtype of the first keys, and grows (up to
    ``max_len``) as tokens arrive: writing into place, never concatenating.

    **Left padding.** Prompts of different lengths share one batch by padding the shorter ones on
    the left: ``pad`` (B,) holds each row's number of padding columns (None: no padding). A row's
    token in column c then sits at position ``c - pad``, exactly where it would sit alone, and no
    real token attends to a padding column (see :meth:`layout`).
    """

    def __init__(self, n_layer: int, max_len: int):
        self.n_layer = n_layer
        self.max_len = max_len
        self.pos = 0
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer
        self.pad: torch.Tensor | None = None
        self._layout = None  # positions and mask of the current forward, shared by its layers

    def update(self, layer: int, k, v):
        """Store ``k, v`` (B, n_head, T, head_dim) at columns ``pos..pos+T-1``; return all keys and values so far."""
        B, H, T, D = k.shape
        end = self.pos + T
        if end > self.max_len:
            raise ValueError(f"KV cache full: {self.pos} + {T} tokens > max_len {self.max_len}")
        if self.k[layer] is None or self.k[layer].size(2) < end:
            # Room for this step and 64 more tokens (or double), so growing (a copy) is rare.
            size = min(self.max_len, max(end + 64, 2 * (0 if self.k[layer] is None else self.k[layer].size(2))))
            self.k[layer], self.v[layer] = (self._resized(t, new, size) for t, new in ((self.k[layer], k),
                                                                                        (self.v[layer], v)))
        self.k[layer][:, :, self.pos:end] = k
        self.v[layer][:, :, self.pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def _resized(self, old, new, size):
        B, H, _, D = new.shape
        out = new.new_zeros(B, H, size, D)
        if old is not None:
            out[:, :, :self.pos] = old[:, :, :self.pos]
        return out

    def layout(self, T: int):
        """RoPE positions (B, T) and the attention mask (B, 1, T, pos + T) for ``T`` new columns.

        Both None without padding (the model then uses its plain causal path). With padding, a
        query may see the keys at or before its column that are not padding; a padding query
        sees itself only (it needs one key, or its softmax would be 0/0; nothing reads its output).
        """
        if self.pad is None:
            return None, None
        if self._layout is None or self._layout[0] != (self.pos, T):
            cols = torch.arange(self.pos, self.pos + T, device=self.pad.device)  # the new columns
            keys = torch.arange(self.pos + T, device=self.pad.device)
            positions = (cols[None, :] - self.pad[:, None]).clamp(min=0)
            mask = (keys <= cols[:, None]) & (keys[None, None, :] >= self.pad[:, None, None])
            mask |= keys == cols[:, None]
            self._layout = ((self.pos, T), positions, mask[:, None])
        return self._layout[1], self._layout[2]

    def set_padding(self, pad) -> None:
        """Declare each row's left padding (a (B,) tensor of columns, or None); before the first token."""
        if self.pos:
            raise ValueError("set the padding of a KV cache before its first token")
        self.pad = pad if pad is not None and bool(pad.any()) else None
        self._layout = None

    def keep_rows(self, rows) -> None:
        """Keep only the batch rows ``rows`` (a tensor of indices): finished rows stop costing work."""
        for store in (self.k, self.v):
            for i, t in enumerate(store):
                if t is not None:
                    store[i] = t[rows]
        if self.pad is not None:
            self.pad = self.pad[rows]
        self.drop_front(0 if self.pad is None else int(self.pad.min()))

    def drop_front(self, n: int) -> None:
        """Forget the first ``n`` columns, padding in every row (positions, so keys, do not change)."""
        if n <= 0:
            if self.pad is not None and not bool(self.pad.any()):
                self.pad, self._layout = None, None
            return
        if self.pad is None or int(self.pad.min()) < n:
            raise ValueError(f"drop_front({n}): only padding columns can be dropped")
        for store in (self.k, self.v):
            for i, t in enumerate(store):
                if t is not None:
                    t[:, :, :self.pos - n] = t[:, :, n:self.pos].clone()
        self.pos -= n
        self.pad = self.pad - n
        self._layout = None
        self.drop_front(0)

    def advance(self, n: int) -> None:
        """Called by the model once every layer has stored its ``n`` new tokens."""
        self.pos += n

    def reset(self) -> None:
        """Empty the cache (its memory is kept), padding included."""
        self.pos = 0
        self.pad = None
        self._layout = None


def causal_mask(T: int, start: int, device=None):
    """Boolean (T, start + T) mask, True where query i (at position start + i) may look at key j."""
    q_pos = torch.arange(start, start + T, device=device)[:, None]
    k_pos = torch.arange(start + T, device=device)[None, :]
    return k_pos <= q_pos


class CausalSelfAttention(nn.Module):
    """Every token looks back at the tokens before it (never ahead) and takes a weighted
    average of their values; each head does this in its own head_dim-sized subspace."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.head_dim, self.n_embd = config.n_head, config.head_dim, config.n_embd
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # q, k, v in one matmul
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)  # writes back to the residual stream
        self.rope = RotaryEmbedding(config.head_dim, config.block_size, config.rope_base)
        self.dropout = config.dropout
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x, kv_cache: KVCache | None = None, layer: int = 0, return_attention: bool = False):
        """Return ``(y, attention)``; ``attention`` is (B, n_head, T, T_keys) or None unless asked for."""
        B, T, C = x.shape
        # One matmul for q, k and v, then (B, T, 3 * C) -> (3, B, n_head, T, head_dim): each head is a
        # separate attention. permute only relabels the dimensions; no data is copied.
        qkv = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        qk, v = qkv.split((2, 1))  # queries and keys together (to rotate them in one call), values
        v = v.squeeze(0)
        start = kv_cache.pos if kv_cache is not None else 0
        positions, mask = kv_cache.layout(T) if kv_cache is not None else (None, None)  # None unless padded
        q, k = self.rope(qk, start, positions).unbind(0)  # RoPE on queries and keys at once; v is not rotated
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)
        dropout_p = self.dropout if self.training else 0.0

        attention = None
        if return_attention:
            # The explicit recipe, kept for plots: scores, causal mask, softmax, weighted sum.
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            scores = scores.masked_fill(~(causal_mask(T, start, x.device) if mask is None else mask), float("-inf"))
            attention = F.softmax(scores, dim=-1)
            y = F.dropout(attention, dropout_p, self.training) @ v
        elif mask is not None:
            # A left-padded batch: causal, and blind to the padding columns.
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        elif start == 0:
            # The fast path: a fused kernel that never materialises the (T, T) matrix.
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        elif T == 1:
            # One new token with a cache: it may look at every stored key, so no mask.
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            # Several new tokens after a cache: is_causal would align the mask to the wrong corner.
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T, start, x.device),
                                               dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_drop(self.proj(y)), attention


class SwiGLU(nn.Module):
    """The MLP: ``down(silu(gate(x)) * up(x))``. The gate decides, per hidden unit, how much of
    ``up(x)`` passes; this gating trains better than a plain ReLU/GELU MLP of the same size."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.gate = nn.Linear(config.n_embd, config.mlp_hidden, bias=False)
        self.up = nn.Linear(config.n_embd, config.mlp_hidden, bias=False)
        self.down = nn.Linear(config.mlp_hidden, config.n_embd, bias=False)  # writes back to the residual stream
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.drop(self.down(F.silu(self.gate(x)) * self.up(x)))


class Block(nn.Module):
    """One transformer layer. Each sub-layer reads a normalised copy of the residual stream and
    *adds* its result back, so information (and gradient) can flow straight through the stack."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x, kv_cache=None, layer=0, return_attention=False):
        a, attention = self.attn(self.attn_norm(x), kv_cache, layer, return_attention)
        x = x + a  # tokens talk to each other
        x = x + self.mlp(self.mlp_norm(x))  # each token thinks on its own
        return x, attention


# ----------------------------------------------------------------------------- the model

def cross_entropy_loss(logits, targets, loss_mask=None):
    """Mean next-token cross-entropy over the positions that count.

    A position counts when its target is not ``IGNORE_INDEX`` (-100) and, if ``loss_mask`` is
    given (same shape as ``targets``; 1 = train on this token, 0 = do not), its mask is non-zero.
    The mean is over counted positions only, so padding or prompt tokens do not dilute it;
    a float mask acts as per-token weights. No counted position gives a loss of 0, not NaN.
    """
    if loss_mask is not None and loss_mask.shape != targets.shape:
        raise ValueError(f"loss_mask shape {tuple(loss_mask.shape)} != targets shape {tuple(targets.shape)}")
    V = logits.size(-1)
    # Always in float32: under bf16 autocast the log-softmax over the vocabulary loses precision
    # (.float() costs nothing when the logits already are float32).
    logits, targets = logits.reshape(-1, V).float(), targets.reshape(-1)
    counted = (targets != IGNORE_INDEX).float()
    if loss_mask is None:
        # The common case (pretraining): one fused kernel sums the loss over the counted positions.
        # Dividing by their number ourselves is PyTorch's mean, except that it gives 0, not NaN,
        # when nothing counts.
        total = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
        return total / counted.sum().clamp(min=1.0)
    # With a mask: the loss of every position, then a weighted mean.
    per_token = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="none")
    weight = counted * loss_mask.reshape(-1).float()
    total = weight.sum()
    return (per_token * weight).sum() / torch.where(total > 0, total, torch.ones_like(total))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Tied embeddings: reading a token and writing a token use the same vectors. It saves
        # vocab_size * n_embd parameters, a large share of a small model.
        self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # Each layer adds two outputs to the residual stream; shrinking those projections keeps
        # the stream's variance from growing with depth (GPT-2's scheme).
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, loss_mask=None, kv_cache: KVCache | None = None,
                return_attention: bool = False, prefix_embeds=None):
        """``idx`` (B, T) token ids -> ``(logits, loss)``, or ``(logits, loss, attentions)``.

        - ``targets`` (B, T): the next token at each position; -100 = ignore. ``loss`` is None without targets.
        - ``loss_mask`` (B, T): 1 where the loss counts (e.g. assistant tokens in SFT); see :func:`cross_entropy_loss`.
        - ``kv_cache``: continue from the tokens stored there; ``idx`` are the next tokens.
        - ``return_attention``: also return a list (one per layer) of (B, n_head, T, T_keys)
          attention weights, computed explicitly (slower; for plots).
        - ``prefix_embeds`` (B, P, n_embd): vectors read before the tokens as if they were P more
          tokens (an image's patches, chapter 15). Logits, targets and loss cover the T tokens only;
          attention maps and the cache cover all P + T positions. None: the text-only path, unchanged.
        """
        B, T = idx.shape
        P = 0 if prefix_embeds is None else prefix_embeds.size(1)
        start = kv_cache.pos if kv_cache is not None else 0
        if start + P + T > self.config.block_size:
            raise ValueError(f"{start + P + T} tokens exceed the context length block_size={self.config.block_size}; "
                             "crop the input to the last block_size tokens")
        x = self.tok_emb(idx)
        if P:
            x = torch.cat((prefix_embeds.to(x.dtype), x), dim=1)
        x = self.drop(x)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, attention = block(x, kv_cache, i, return_attention)
            attentions.append(attention)
        if kv_cache is not None:
            kv_cache.advance(P + T)
        logits = self.lm_head(self.norm(x[:, P:] if P else x))
        loss = None if targets is None else cross_entropy_loss(logits, targets, loss_mask)
        if return_attention:
            return logits, loss, attentions
        return logits, loss

    @torch.no_grad()
    def decode_step(self, idx, kv_cache: KVCache):
        """Logits (B, V) for one new token per row, ``idx`` (B, 1), after the tokens in ``kv_cache``.

        The arithmetic of ``forward(idx, kv_cache=kv_cache)``, the same operations on the same
        tensors (the tests check that the logits are bitwise equal), for the one call generation
        repeats for every token. Written out because at this size the model does so little
        arithmetic per token that the Python around it weighs: the ~60 module calls, the dropout
        layers and the general shapes of ``forward`` were a good share of a step. It reads the
        layers' weights directly, so it only stands in for ``forward`` while
        :meth:`decode_step_applies` (the decoding loop checks).
        """
        B, T = idx.shape
        pos = kv_cache.pos
        if T != 1 or pos + 1 > self.config.block_size:
            raise ValueError(f"decode_step takes one token per row within the context (got {T} at position {pos})")
        C, H, D = self.config.n_embd, self.config.n_head, self.config.head_dim
        positions, mask = kv_cache.layout(1)
        rope = self.blocks[0].attn.rope  # every layer's holds the same angles
        if positions is None:
            cos, sin = rope.cos[pos], rope.sin[pos]  # (D,)
        else:
            cos, sin = rope.cos[positions[:, 0], None, None], rope.sin[positions[:, 0], None, None]  # (B, 1, 1, D)
        x = F.embedding(idx[:, 0], self.tok_emb.weight)  # (B, C): one position, so no time axis
        for i, block in enumerate(self.blocks):
            attn, mlp = block.attn, block.mlp
            h = F.rms_norm(x, (C,), block.attn_norm.weight, block.attn_norm.eps)
            qkv = F.linear(h, attn.qkv.weight).view(B, 3, H, D)
            qk = qkv[:, :2]
            qk = torch.addcmul(qk * cos, qk.roll(D // 2, dims=-1), sin)  # RoPE, as RotaryEmbedding.forward
            k, v = kv_cache.update(i, qk[:, 1, :, None], qkv[:, 2, :, None])  # (B, H, 1, D) in, all so far out
            y = F.scaled_dot_product_attention(qk[:, 0, :, None], k, v, attn_mask=mask)
            x = x + F.linear(y.view(B, C), attn.proj.weight)
            h = F.rms_norm(x, (C,), block.mlp_norm.weight, block.mlp_norm.eps)
            x = x + F.linear(F.silu(F.linear(h, mlp.gate.weight)) * F.linear(h, mlp.up.weight), mlp.down.weight)
        kv_cache.advance(1)
        return F.linear(F.rms_norm(x, (C,), self.norm.weight, self.norm.eps), self.lm_head.weight)

    def decode_step_applies(self) -> bool:
        """Does :meth:`decode_step` compute what ``forward`` computes for this model? Only while
        every layer is the plain one built here: a replaced or wrapped layer (e.g. LoRA or
        quantisation), a forward hook, or active dropout is seen by ``forward`` alone."""
        plain = (type(self), Block, CausalSelfAttention, SwiGLU, RMSNorm, RotaryEmbedding, nn.Linear, nn.Embedding,
                 nn.Dropout, nn.ModuleList)
        return (type(self).forward is GPT.forward and (self.config.dropout == 0 or not self.training)
                and all(type(m) in plain and not (m._forward_hooks or m._forward_pre_hooks) for m in self.modules()))

    def new_kv_cache(self) -> KVCache:
        """An empty cache as long as the context; pass it to :meth:`forward` as ``kv_cache``."""
        return KVCache(self.config.n_layer, self.config.block_size)

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Number of parameters, the tied embedding/output matrix counted once.

        ``exclude_embeddings`` leaves out that matrix (vocab_size * n_embd): what is left is the
        "transformer" proper, the figure scaling laws use.
        """
        n = sum(p.numel() for p in self.parameters())  # parameters() lists a shared tensor once
        if exclude_embeddings:
            n -= self.tok_emb.weight.numel()
        return n

    def param_breakdown(self) -> dict[str, int]:
        """Where the parameters sit, by role (sums to :meth:`num_params`)."""
        groups = {"token embedding (= output head)": 0, "attention (q, k, v, out)": 0,
                  "MLP (SwiGLU)": 0, "RMSNorm gains": 0}
        for name, p in self.named_parameters():  # the tied matrix appears once, as tok_emb
            if name.startswith("tok_emb"):
                key = "token embedding (= output head)"
            elif ".attn." in name:
                key = "attention (q, k, v, out)"
            elif ".mlp." in name:
                key = "MLP (SwiGLU)"
            else:
                key = "RMSNorm gains"
            groups[key] += p.numel()
        return groups


# ----------------------------------------------------------------------------- stages

def model_from_stage(stage, device=None) -> GPT:
    """Rebuild the model a stage was saved from and load its weights (shapes checked).

    The model is returned in eval mode on ``device`` (default: :func:`course_utils.config.device`);
    call ``.train()`` before training it further.
    """
    from .stages import StageMismatchError

    if not stage.model_config:
        raise StageMismatchError(f"Stage {stage.name!r} has no model_config in its stage.json: it does not hold a model.")
    model = GPT(GPTConfig.from_dict(stage.model_config))
    stage.load_weights(model)
    return model.to(device or course_config.device()).eval()


def save_model_files(model: GPT) -> dict:
    """The ``files`` entry for :func:`course_utils.stages.save_stage`: the weights as safetensors.

    ``save_model`` (not ``save_file``) because the output head shares its matrix with the
    embedding: save_model stores it once, and ``Stage.load_weights`` ties it back.
    Use with ``meta=model_meta(model)`` so the stage records the shape.
    """
    from safetensors.torch import save_model

    from .stages import WEIGHTS_FILE

    return {WEIGHTS_FILE: lambda path: save_model(model, str(path))}


def model_meta(model: GPT) -> dict:
    """The ``meta`` entries a model stage needs: its config (to rebuild it) and its size."""
    return {"model_config": model.config.to_dict(), "n_params": model.num_params()}
