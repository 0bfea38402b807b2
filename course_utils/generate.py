"""Turning a model into text: pick the next token, append it, repeat.

Four layers, each usable on its own:

- :func:`sample_next` — one step: logits -> a token id (greedy, temperature, top-k, top-p).
  :func:`next_token_probs` shows the distribution it samples from;
  :func:`next_token_probabilities` runs the model on a context and shows its likeliest tokens.
- :class:`Decoder` — holds the growing context and returns the logits for the next token.
  With ``use_cache=True`` it keeps a KV cache, so each new token costs one position of work
  instead of the whole context. ``Decoder.feed`` also accepts several tokens at once: that is
  how a prompt is read, and how a tool's answer can be injected mid-generation.
- :func:`stream` / :func:`generate` / :func:`generate_batch` / :func:`text_generate` — the loop.
- :func:`chat_reply` / :func:`chat_replies` — a chat model's reply to a conversation, with the
  tool-call loop: when the model writes ``<|tool_call|>expr<|/tool_call|>`` the calculator runs
  and its result is appended to the context as a tool message, then generation continues.

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
from dataclasses import dataclass, field
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
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None or top_p is not None:  # filtering copies the logits: only when asked
        logits = filter_logits(logits, top_k, top_p)
    return torch.softmax(logits, dim=-1)


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None):
    """Pick the next token from ``logits`` (V,) or (B, V): a 0-d or (B,) tensor of ids.

    ``temperature=0`` is greedy decoding: always the most likely token, no randomness.

    The draw is the textbook one: lay the probabilities end to end on [0, 1] (their running
    sum), throw one uniform number u per row, and take the token whose stretch u lands in.
    ``torch.multinomial`` draws one random number *per vocabulary entry* instead; on a CPU
    that was most of a batched decoding step's time. Same distribution, other random numbers.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = next_token_probs(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.size(-1))
    u = 1.0 - torch.rand(flat.size(0), 1, generator=generator, dtype=torch.float64, device=flat.device)  # in (0, 1]
    return _inverse_cdf(flat, u).reshape(probs.shape[:-1])


def _inverse_cdf(probs, u):
    """The token of each row of ``probs`` (B, V) whose stretch of [0, total] holds ``u * total``,
    for ``u`` (B, 1) in (0, 1]: the first token whose running sum reaches it.

    The running sum is in float64, exact enough for any vocabulary. As u > 0, a leading token of
    probability 0 (sum 0) is never reached first; as u <= 1, some token always is; and a
    filtered token in the middle adds nothing to the sum, so the token before it is reached first.
    """
    cdf = probs.cumsum(-1, dtype=torch.float64)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).squeeze(-1).clamp_(max=probs.size(-1) - 1)


# ----------------------------------------------------------------------------- the context


# Generation runs on one thread. Each decoding step moves tiny tensors (a few rows of one token),
# so a second thread buys nothing; on a busy 2-core machine the threads' spin-waiting made decoding
# 10x slower and the chat evaluations 60x slower (known-fact QA, ci profile: 92 s on 2 threads, 1.4 s on 1).
GENERATION_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch threads (None: unchanged), then restore the previous number."""
    before = torch.get_num_threads()
    if not n or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Decoder:
    """A batch of contexts that grow token by token.

    ``feed(ids)`` appends ``ids`` (B, n) to every row and returns the logits (B, V) for the
    token that comes next. With ``use_cache`` the model only processes the new tokens, reading
    the earlier ones from its KV cache; without it, the whole (cropped) context is re-read.
    Runs without gradients, on :data:`GENERATION_THREADS` threads. Put the model in eval mode
    first (the loops below do).

    The first ``feed`` may hold prompts of different lengths (a list of lists): the shorter ones
    are padded on the left, so every row's last token sits in the last column and the batch
    moves in lockstep; the model never attends to the padding (see :class:`course_utils.model.KVCache`).
    :meth:`keep` drops rows that are done.
    """

    PAD_ID = 0  # any id will do: padding is never attended to

    def __init__(self, model, use_cache: bool = True):
        self.model = model
        self.block_size = model.config.block_size
        self.use_cache = use_cache
        self.cache = model.new_kv_cache() if use_cache else None
        self.tokens: torch.Tensor | None = None  # (B, L): the last block_size columns fed, padding included
        self.pad: torch.Tensor | None = None  # (B,) padding columns at the left of each row; None: none
        self.device = next(model.parameters()).device
        # GPT's fast path for one new token, when it computes what forward does (checked once).
        applies = getattr(model, "decode_step_applies", None)
        self._decode_step = model.decode_step if applies is not None and applies() else None

    def _as_ids(self, ids) -> torch.Tensor:
        if isinstance(ids, torch.Tensor):
            ids = ids.to(self.device, torch.long)
            return ids[None, :] if ids.dim() == 1 else ids
        rows = list(ids)
        if rows and not isinstance(rows[0], (list, tuple)):
            rows = [rows]  # one prompt given as a flat list of ids
        lengths = [len(r) for r in rows]
        if min(lengths, default=0) == 0:
            raise ValueError("feed() needs at least one token per row")
        if len(set(lengths)) > 1:
            if self.tokens is not None:
                raise ValueError("only the first feed() may hold rows of different lengths")
            width = max(lengths)
            self.pad = torch.tensor([width - n for n in lengths], device=self.device)
            rows = [[self.PAD_ID] * (width - len(r)) + list(r) for r in rows]
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    @torch.no_grad()
    def feed(self, ids) -> torch.Tensor:
        ids = self._as_ids(ids)
        if ids.size(1) == 0:
            raise ValueError("feed() needs at least one token")
        with torch_threads(GENERATION_THREADS):
            self.tokens = ids if self.tokens is None else torch.cat([self.tokens, ids], dim=1)
            over = self.tokens.size(1) - self.block_size
            cached = self.cache is not None and self.cache.pos > 0
            if cached and over > 0 and self.pad is not None and int(self.pad.min()) >= over:
                self._drop_front(over, in_cache=True)  # only padding overflows: forget it
                over = 0
            if cached and over <= 0:  # continue from the cache: only the new tokens are read
                if ids.size(1) == 1 and self._decode_step is not None:
                    return self._decode_step(ids, self.cache)
                logits, _ = self.model(ids, kv_cache=self.cache)
            else:
                # Read the last block_size tokens from scratch: a prompt, every step without the
                # cache, and every step once the context is full (what the uncached path reads,
                # so both agree). The padding mask rides on a cache, a fresh one if need be.
                self._drop_front(max(over, 0), in_cache=False)
                cache = self.cache
                if cache is None and self.pad is not None:
                    cache = self.model.new_kv_cache()
                if cache is not None:
                    cache.reset()
                    cache.set_padding(self.pad)
                logits, _ = self.model(self.tokens, kv_cache=cache)
        return logits[:, -1, :]

    def _drop_front(self, n: int, in_cache: bool) -> None:
        """Forget the first ``n`` columns of the context (and of the cache: padding columns only)."""
        if n <= 0:
            return
        self.tokens = self.tokens[:, n:]
        if self.pad is not None:
            self.pad = (self.pad - n).clamp(min=0)
        if in_cache:
            self.cache.drop_front(n)
        if self.pad is not None and not bool(self.pad.any()):
            self.pad = None

    def keep(self, rows) -> None:
        """Keep only the rows ``rows`` (indices into the current batch), e.g. those still writing."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        with torch_threads(GENERATION_THREADS):
            self.tokens = self.tokens[rows]
            if self.pad is not None:
                self.pad = self.pad[rows]
            if self.cache is not None:
                self.cache.keep_rows(rows)  # also forgets the padding columns all remaining rows share
            if self.pad is not None:
                self._drop_front(int(self.pad.min()), in_cache=False)


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


# Finished rows are dropped from the batch once this share of it is done: dropping copies the
# KV cache, so it pays to wait for several rows; until then they are fed and their tokens ignored.
# (Sampling 600 chat answers: 1.8x faster than feeding finished rows to the end; 0.1 to 0.5 alike.)
DROP_FINISHED_SHARE = 0.25
# The most rows decoded together. A step's cost per row stops falling at about 128 rows, while
# the KV cache grows with the rows (256 rows x 100 tokens: ~100 MB for the cpu model).
MAX_BATCH_ROWS = 256


def _stream_rows(model, prompts: list[list[int]], max_new_tokens, temperature, top_k, top_p, stop_ids,
                 use_cache, generator) -> Iterator[list[tuple[int, int]]]:
    """Prompts of any lengths, decoded together (left-padded). ``max_new_tokens``: one budget, or
    one per prompt. Yields, per step, ``(prompt index, new id)`` for each row still writing."""
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(budgets) != len(prompts):
        raise ValueError(f"{len(budgets)} budgets for {len(prompts)} prompts")
    stops = set(stop_ids)
    with eval_mode(model):
        if max(budgets, default=0) < 1:
            return
        decoder = Decoder(model, use_cache)
        with torch_threads(GENERATION_THREADS):  # one switch per step (feed's own is then a no-op)
            nxt = sample_next(decoder.feed(prompts), temperature, top_k, top_p, generator)
        rows = list(range(len(prompts)))  # the prompt each batch row answers
        alive = [b > 0 for b in budgets]
        for step in range(max(budgets)):
            ids = nxt.tolist()
            yield [(r, t) for r, t, a in zip(rows, ids, alive) if a]
            # A row is done after its stop token or its last allowed token (both already yielded).
            alive = [a and t not in stops and step + 1 < budgets[r] for r, t, a in zip(rows, ids, alive)]
            n_alive = sum(alive)
            if n_alive == 0:
                break
            if len(rows) - n_alive >= DROP_FINISHED_SHARE * len(rows):
                keep = [i for i, a in enumerate(alive) if a]
                decoder.keep(keep)
                nxt = nxt[keep]
                rows = [rows[i] for i in keep]
                alive = [True] * len(rows)
            with torch_threads(GENERATION_THREADS):
                nxt = sample_next(decoder.feed(nxt[:, None]), temperature, top_k, top_p, generator)


def stream(model, prompt_ids: Sequence[int], max_new_tokens: int, *, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, stop_ids: Iterable[int] = (),
           use_cache: bool = True, generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield new token ids one at a time, as soon as each is chosen (for live printing)."""
    prompt = _as_prompt(prompt_ids)
    for step in _stream_rows(model, [prompt], max_new_tokens, temperature, top_k, top_p, stop_ids,
                             use_cache, generator):
        yield step[0][1]


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


def generate_batch(model, prompts: Sequence[Sequence[int]], max_new_tokens: int | Sequence[int], *,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   stop_ids: Iterable[int] = (), use_cache: bool = True,
                   generator: torch.Generator | None = None) -> list[list[int]]:
    """Continue several prompts; return the new ids of each, in the order given.

    Prompts of different lengths share a batch (up to :data:`MAX_BATCH_ROWS` rows, similar
    lengths together): the shorter ones are padded on the left, and the model never attends to
    the padding, so each row gets the tokens it would get alone (greedy decoding gives the same
    tokens; the tests check it). Each row stops at its own stop token, or after its own budget
    when ``max_new_tokens`` is a list (one per prompt); finished rows leave the batch. With a
    generator the draws are repeatable, but differ from calling :func:`generate` prompt by
    prompt (rows share the random stream).
    """
    prompts = [_as_prompt(p) for p in prompts]
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(budgets) != len(prompts):
        raise ValueError(f"{len(budgets)} budgets for {len(prompts)} prompts")
    results: list[list[int]] = [[] for _ in prompts]
    # Batches of similar lengths (little padding), at most MAX_BATCH_ROWS rows each.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for start in range(0, len(order), MAX_BATCH_ROWS):
        batch = order[start:start + MAX_BATCH_ROWS]
        for step in _stream_rows(model, [prompts[i] for i in batch], [budgets[i] for i in batch], temperature,
                                 top_k, top_p, tuple(stop_ids), use_cache, generator):
            for j, token in step:
                results[batch[j]].append(token)
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


@dataclass
class NextTokens:
    """The most likely next tokens after a context (see :func:`next_token_probabilities`)."""

    tokens: list[str]    # the k most likely next tokens, decoded, most likely first
    probs: list[float]   # their probabilities
    entropy_bits: float  # of the whole distribution: 0 when one token is certain, more when it is spread out


@torch.no_grad()
def next_token_probabilities(model, tokenizer, context: str | Sequence[int], k: int = 10, *,
                             temperature: float = 1.0) -> NextTokens:
    """What the model would write next after ``context`` (text, or token ids): its ``k`` most
    likely tokens with their probabilities at ``temperature`` (see :func:`next_token_probs`),
    and the entropy of the whole distribution in bits. Text is encoded like :func:`text_generate`
    encodes a prompt; only the last ``block_size`` tokens are read."""
    ids = tokenizer.encode(context, allowed_special="all") if isinstance(context, str) else list(context)
    ids = ids[-model.config.block_size:]
    device = next(model.parameters()).device
    with eval_mode(model):
        logits, _ = model(torch.tensor([ids], device=device))
    probs = next_token_probs(logits[0, -1], temperature)
    entropy = -(probs * probs.clamp_min(1e-12).log2()).sum().item()
    p, i = probs.topk(min(k, probs.numel()))
    return NextTokens([tokenizer.decode([t]) for t in i.tolist()], p.tolist(), entropy)


# ----------------------------------------------------------------------------- chat and the tool loop

# Why a chat reply ended (ChatTrace.stop).
STOP_END_OF_TURN = "end_of_turn"        # the model wrote <|im_end|>: a properly closed turn
STOP_END_OF_TEXT = "end_of_text"        # it wrote <|endoftext|> (a base model's "page over")
STOP_MAX_NEW_TOKENS = "max_new_tokens"  # it ran out of budget before closing the turn
STOP_MAX_TOOL_CALLS = "max_tool_calls"  # it asked for one tool call more than allowed
STOP_TOOL_CALL = "tool_call"            # it asked for a tool, but tools are switched off
MAX_TOOL_CALLS = 3                      # tool calls allowed in one reply, by default


@dataclass
class ChatTrace:
    """Everything that happened while one chat reply was generated.

    - ``segments``: the context in order, as ``(source, ids)`` with ``source`` one of
      ``"prompt"`` (the rendered conversation), ``"model"`` (what the model wrote) and
      ``"tool"`` (a tool result the loop injected); :attr:`ids` joins them.
    - ``tool_calls``: one ``{"expression", "result", "ok"}`` per calculator call that was run.
    - ``stop``: why the reply ended (``end_of_turn`` when the model closed its turn with
      ``<|im_end|>``; see the ``STOP_*`` constants).
    - ``new_tokens``: tokens the model wrote (injected results not counted).
    - ``truncated``: the prompt (or the context after a tool result) was cut to fit the
      context window, by the same rule as in training (:func:`course_utils.chat.truncate_pieces`).
    """

    segments: list = field(default_factory=list)
    tool_calls: list = field(default_factory=list)
    stop: str = ""
    new_tokens: int = 0
    truncated: bool = False

    @property
    def ids(self) -> list[int]:
        return [i for _, seg in self.segments for i in seg]

    @property
    def written(self) -> list[int]:
        """The tokens the model itself wrote (tool results and the prompt left out)."""
        return [i for source, seg in self.segments if source == "model" for i in seg]

    @property
    def closed(self) -> bool:
        """Did the reply end with ``<|im_end|>``, the way a chat turn should?"""
        return self.stop == STOP_END_OF_TURN


@dataclass
class _Row:
    """One conversation being answered by :func:`chat_replies`."""

    base: list  # chat.Piece list of the conversation plus the assistant header (for re-truncation)
    ids: list[int]  # the current context
    remaining: int  # tokens the model may still write
    trace: ChatTrace
    turn: list[int] = field(default_factory=list)  # model and tool ids since the assistant header
    done: bool = False


def chat_replies(model, tokenizer, conversations: Sequence[list], max_new_tokens: int = 64, *,
                 tools: bool = True, max_tool_calls: int = MAX_TOOL_CALLS, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None) -> list[tuple[list[dict], ChatTrace]]:
    """Answer several conversations at once; see :func:`chat_reply` for one. Returns a list of
    ``(messages, trace)`` in the order given.

    The loop, per conversation:

    1. render the conversation for completion (``<|im_start|>assistant\\n`` at the end), cut to
       ``block_size - max_new_tokens`` tokens by the chat template's truncation rule, so the
       reply always fits;
    2. generate until ``<|im_end|>``, ``<|endoftext|>`` or ``<|/tool_call|>``;
    3. on ``<|/tool_call|>``: read the expression written after ``<|tool_call|>``, run
       :func:`course_utils.tools.calculate` on it (it never raises: a refused expression gives
       an ``"error: ..."`` text), append the result as a tool message
       (:func:`course_utils.chat.render_tool_result`, which also opens the next assistant
       turn) and go back to 2. If the context would overflow, it is re-cut by the same rule.

    At most ``max_tool_calls`` calls are run per reply; one more ends the reply
    (``stop="max_tool_calls"``). With ``tools=False`` a call ends the reply unanswered
    (``stop="tool_call"``). ``max_new_tokens`` bounds the tokens the model writes in the whole
    reply, tool results not counted. Greedy by default (``temperature=0``).

    ``messages`` are the new messages, in the course's conversation format: for a reply with one
    calculator call ``[{"role": "assistant", "tool_call": "123*456"}, {"role": "tool", "content":
    "56088"}, {"role": "assistant", "content": "123 × 456 = 56088."}]``. They are what the model
    wrote, parsed: the last content may be empty (the model wrote nothing), and a reply that
    stopped at an unanswered call ends with that call.
    """
    from . import chat

    block = model.config.block_size
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if max_new_tokens >= block:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for the conversation in a context of "
                         f"{block} tokens; use fewer than {block}")
    rows = []
    for conv in conversations:
        base = chat.conversation_pieces(conv, tokenizer, for_completion=True)  # validates
        ids, _ = chat.truncate_pieces(base, block - max_new_tokens)
        trace = ChatTrace(segments=[("prompt", ids)], truncated=len(ids) < sum(len(p.ids) for p in base))
        rows.append(_Row(base, list(ids), max_new_tokens, trace))
    with torch_threads(GENERATION_THREADS):
        _tool_loop(model, tokenizer, rows, tools=tools, max_tool_calls=max_tool_calls, temperature=temperature,
                   top_k=top_k, top_p=top_p, use_cache=use_cache, generator=generator)
    return [(_reply_messages(r.trace, tokenizer), r.trace) for r in rows]


def _tool_loop(model, tokenizer, rows: list[_Row], *, tools, max_tool_calls, temperature, top_k, top_p, use_cache,
               generator) -> None:
    """Generate for every row until each is done: rounds of generate_batch, a tool call between rounds."""
    from . import chat
    from .tools import calculate

    block = model.config.block_size
    im_end, call_end, eot = stops = chat.assistant_stop_ids(tokenizer)
    while True:
        active = [r for r in rows if not r.done]
        if not active:
            break
        # One batch per round, each row with its own budget.
        outs = generate_batch(model, [r.ids for r in active], [r.remaining for r in active], temperature=temperature,
                              top_k=top_k, top_p=top_p, stop_ids=stops, use_cache=use_cache, generator=generator)
        for r, new in zip(active, outs):
            r.ids += new
            r.turn += new
            r.remaining -= len(new)
            r.trace.new_tokens += len(new)
            r.trace.segments.append(("model", new))
            last = new[-1] if new else None
            if last == im_end:
                r.done, r.trace.stop = True, STOP_END_OF_TURN
            elif last == eot:
                r.done, r.trace.stop = True, STOP_END_OF_TEXT
            elif last != call_end:
                r.done, r.trace.stop = True, STOP_MAX_NEW_TOKENS
            elif not tools:
                r.done, r.trace.stop = True, STOP_TOOL_CALL
            elif len(r.trace.tool_calls) >= max_tool_calls:
                r.done, r.trace.stop = True, STOP_MAX_TOOL_CALLS
            elif r.remaining <= 0:
                r.done, r.trace.stop = True, STOP_MAX_NEW_TOKENS
            else:
                expression = chat.parse_assistant_reply(new, tokenizer).get("tool_call", "")
                result = calculate(expression)
                r.trace.tool_calls.append({"expression": expression, "result": result.text, "ok": result.ok})
                injected = chat.render_tool_result(result.text, tokenizer)
                r.trace.segments.append(("tool", injected))
                r.turn += injected
                if len(r.ids) + len(injected) + r.remaining <= block:
                    r.ids += injected  # the usual case: the result is simply appended
                else:  # it would overflow: cut the whole context again by the one rule
                    turn_piece = chat.Piece(r.turn, [0] * len(r.turn), r.base[-1].turn)
                    r.ids, _ = chat.truncate_pieces(r.base + [turn_piece], block - r.remaining)
                    r.trace.truncated = True


def _reply_messages(trace: ChatTrace, tokenizer) -> list[dict]:
    """The trace's model and tool segments as conversation messages."""
    from . import chat

    messages: list[dict] = []
    calls = iter(trace.tool_calls)
    segments = trace.segments[1:]
    for k, (source, ids) in enumerate(segments):
        if source == "tool":
            continue
        msg = chat.parse_assistant_reply(ids, tokenizer)
        messages.append(msg)
        if k + 1 < len(segments) and segments[k + 1][0] == "tool":  # the loop ran this call
            msg.setdefault("tool_call", "")  # a stray <|/tool_call|> with no opening tag
            messages.append({"role": "tool", "content": next(calls)["result"]})
    return messages


def chat_reply(model, tokenizer, conversation: list, max_new_tokens: int = 64, *, tools: bool = True,
               max_tool_calls: int = MAX_TOOL_CALLS, temperature: float = 0.0, top_k: int | None = None,
               top_p: float | None = None, use_cache: bool = True,
               generator: torch.Generator | None = None) -> tuple[list[dict], ChatTrace]:
    """The assistant's reply to ``conversation`` (a list of ``{"role", "content"}`` messages whose
    last one is from the user): ``(messages, trace)``, running the calculator when the model
    calls it. ``conversation + messages`` is the conversation with the reply added; the answer
    to show is ``messages[-1]["content"]``. See :func:`chat_replies` for the details.

    >>> messages, trace = chat_reply(model, tok, [{"role": "user", "content": "What is 123*456?"}])
    >>> trace.tool_calls
    [{'expression': '123*456', 'result': '56088', 'ok': True}]
    """
    return chat_replies(model, tokenizer, [conversation], max_new_tokens, tools=tools, max_tool_calls=max_tool_calls,
                        temperature=temperature, top_k=top_k, top_p=top_p, use_cache=use_cache,
                        generator=generator)[0]
