"""Turning a model into text: pick the next token, append it, repeat.

Three layers, each usable on its own:

- :func:`sample_next` — one step: logits -> a token id (greedy, temperature, top-k, top-p).
  :func:`next_token_probs` shows the distribution it samples from.
- :class:`Decoder` — holds the growing context and returns the logits for the next token.
  With ``use_cache=True`` it keeps a KV cache, so each new token costs one position of work
  instead of the whole context. ``Decoder.feed`` also accepts several tokens at once: that is
  how a prompt is read, and how a tool's answer can be injected mid-generation.
- :func:`stream` / :func:`generate` / :func:`generate_batch` / :func:`text_generate` — the loop.

Conventions (the same everywhere in this module):

- Functions return the **new** tokens only, never the prompt.
- **Stop tokens are included** in the output: when a token from ``stop_ids`` is produced,
  generation stops and that token is the last one returned, so the caller can tell which stop
  fired (end of turn, or the end of a tool call). :func:`text_generate` drops it from the text.
- **Context length.** The model sees at most ``block_size`` tokens. A longer prompt, or a
  generation that runs past ``block_size``, keeps only the last ``block_size`` tokens. With the
  cache on, once the cache is full every further token re-reads that window from scratch (the
  cache then gives no speed-up), so ``use_cache=True`` and ``use_cache=False`` always produce
  the same tokens (up to floating-point rounding; identical greedy output in the tests).
- **Randomness.** Pass a seeded ``torch.Generator`` (on the model's device) for repeatable
  samples; ``temperature=0`` is greedy (argmax) and uses no randomness.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Sequence

import torch

# ----------------------------------------------------------------------------- one step


def filter_logits(logits, top_k: int | None = None, top_p: float | None = None):
    """Set the logits of excluded tokens to -inf.

    - ``top_k``: keep the k most likely tokens (ties with the k-th are kept too).
    - ``top_p`` (nucleus): keep the smallest set of most likely tokens whose probabilities add
      up to at least ``top_p``; the most likely token is always kept.
    top-k is applied first, then top-p on what is left. Works on (V,) or (B, V).
    """
    logits = logits.clone()
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        k = min(top_k, logits.size(-1))
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits[logits < kth] = float("-inf")
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_p < 1.0:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            mass_before = torch.cumsum(probs, dim=-1) - probs
            # A token is dropped when the more likely tokens already reach top_p.
            sorted_logits[mass_before >= top_p] = float("-inf")
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def next_token_probs(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
    """The distribution :func:`sample_next` draws from: temperature, then top-k/top-p, then softmax.

    ``temperature`` < 1 sharpens the distribution (safer, duller text), > 1 flattens it (more
    surprising, more mistakes). ``temperature=0`` puts all the mass on the argmax.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.size(-1)).float()
    return torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None):
    """Pick the next token from ``logits`` (V,) or (B, V): a 0-d or (B,) tensor of ids.

    ``temperature=0`` is greedy decoding: always the most likely token, no randomness.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = next_token_probs(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.size(-1))
    ids = torch.multinomial(flat, num_samples=1, generator=generator)
    return ids.reshape(probs.shape[:-1])


# ----------------------------------------------------------------------------- the context


class Decoder:
    """A batch of equal-length contexts that grow token by token.

    ``feed(ids)`` appends ``ids`` (B, n) to every row and returns the logits (B, V) for the
    token that comes next. With ``use_cache`` the model only processes the new tokens, reading
    the earlier ones from its KV cache; without it, the whole (cropped) context is re-read.
    Runs without gradients. Put the model in eval mode first (the loops below do).
    """

    def __init__(self, model, use_cache: bool = True):
        self.model = model
        self.block_size = model.config.block_size
        self.use_cache = use_cache
        self.cache = model.new_kv_cache() if use_cache else None
        self.tokens: torch.Tensor | None = None  # (B, L), everything fed so far

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def feed(self, ids) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        if ids.dim() == 1:
            ids = ids[None, :]
        if ids.size(1) == 0:
            raise ValueError("feed() needs at least one token")
        self.tokens = ids if self.tokens is None else torch.cat([self.tokens, ids], dim=1)
        if not self.use_cache:
            logits, _ = self.model(self.tokens[:, -self.block_size:])
        elif self.cache.pos + ids.size(1) <= self.block_size:
            logits, _ = self.model(ids, kv_cache=self.cache)
        else:
            # The cache is full: start it again from the last block_size tokens, exactly what
            # the uncached path reads, so both give the same answer.
            self.cache.reset()
            logits, _ = self.model(self.tokens[:, -self.block_size:], kv_cache=self.cache)
        return logits[:, -1, :]


@contextlib.contextmanager
def eval_mode(model):
    """Temporarily switch off dropout; restore the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


# ----------------------------------------------------------------------------- the loop


def _as_prompt(prompt_ids) -> list[int]:
    ids = prompt_ids.tolist() if isinstance(prompt_ids, torch.Tensor) else list(prompt_ids)
    if not ids:
        raise ValueError("The prompt is empty: start it with at least one token (e.g. tokenizer.eot_id).")
    return [int(i) for i in ids]


def _stream_rows(model, prompts: list[list[int]], max_new_tokens, temperature, top_k, top_p, stop_ids,
                 use_cache, generator) -> Iterator[tuple[list[int], list[bool]]]:
    """Equal-length prompts, decoded together. Yields (next id per row, row still active per row)."""
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
    with eval_mode(model):
        decoder = Decoder(model, use_cache)
        logits = decoder.feed(prompts)
        stops = stops.to(logits.device)
        active = torch.ones(len(prompts), dtype=torch.bool, device=logits.device)
        for step in range(max_new_tokens):
            nxt = sample_next(logits, temperature, top_k, top_p, generator)
            yield nxt.tolist(), active.tolist()
            active &= ~torch.isin(nxt, stops)
            if not active.any() or step == max_new_tokens - 1:
                break
            # Finished rows keep being fed (a batch moves in lockstep); their tokens are discarded.
            logits = decoder.feed(nxt[:, None])


def stream(model, prompt_ids: Sequence[int], max_new_tokens: int, *, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, stop_ids: Iterable[int] = (),
           use_cache: bool = True, generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield new token ids one at a time, as soon as each is chosen (for live printing)."""
    prompt = _as_prompt(prompt_ids)
    for ids, _ in _stream_rows(model, [prompt], max_new_tokens, temperature, top_k, top_p, stop_ids,
                               use_cache, generator):
        yield ids[0]


def generate(model, prompt_ids: Sequence[int], max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, stop_ids: Iterable[int] = (),
             use_cache: bool = True, generator: torch.Generator | None = None,
             on_token: Callable[[int], None] | None = None) -> list[int]:
    """Continue ``prompt_ids``; return the new ids (a final stop token included).

    ``on_token(id)`` is called for each new token as it is produced.
    """
    out = []
    for token in stream(model, prompt_ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        stop_ids=stop_ids, use_cache=use_cache, generator=generator):
        out.append(token)
        if on_token is not None:
            on_token(token)
    return out


def generate_batch(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, temperature: float = 1.0,
                   top_k: int | None = None, top_p: float | None = None, stop_ids: Iterable[int] = (),
                   use_cache: bool = True, generator: torch.Generator | None = None) -> list[list[int]]:
    """Continue several prompts; return the new ids of each, in the order given.

    No padding: prompts of the same length run together as one batch, one batch per length.
    (Equal-length prompts, e.g. several samples of one prompt for RL, are a single batch.)
    Each row stops at its own stop token. With a generator the draws are repeatable, but
    differ from calling :func:`generate` prompt by prompt (rows share the random stream).
    """
    prompts = [_as_prompt(p) for p in prompts]
    stop_ids = tuple(stop_ids)
    results: list[list[int]] = [[] for _ in prompts]
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    for rows in by_length.values():
        for ids, active in _stream_rows(model, [prompts[i] for i in rows], max_new_tokens, temperature, top_k,
                                        top_p, stop_ids, use_cache, generator):
            for i, token, alive in zip(rows, ids, active):
                if alive:
                    results[i].append(token)
    return results


def text_generate(model, tokenizer, prompt: str, max_new_tokens: int = 100, *, stop_ids: Iterable[int] | None = None,
                  **sampling) -> str:
    """Text in, text out: encode ``prompt``, generate, decode the new tokens.

    ``stop_ids`` defaults to the tokenizer's end-of-text token; the stop token is not part of
    the returned text. Special tokens written in the prompt (e.g. ``<|im_start|>``) are encoded
    as special tokens. Other keyword arguments go to :func:`generate`.
    """
    ids = tokenizer.encode(prompt, allowed_special="all")
    stops = tuple(stop_ids) if stop_ids is not None else (tokenizer.eot_id,)
    new = generate(model, ids, max_new_tokens, stop_ids=stops, **sampling)
    if new and new[-1] in stops:
        new = new[:-1]
    return tokenizer.decode(new)
