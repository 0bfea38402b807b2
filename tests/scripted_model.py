"""A stand-in for a trained chat model: its logits force the reply a script asks for.

``ScriptedChatModel(tokenizer, respond)`` reads the context it is fed (with or without the KV
cache), finds the last user message and the tool results injected since, and asks
``respond(question, results)`` for the text of the current assistant segment, special tokens
written out (e.g. ``"<|tool_call|>123*456<|/tool_call|>"`` or ``"It is 4.<|im_end|>"``). It
then puts all the probability on the next token of that text, so greedy decoding writes it
exactly. Past the end of the text it writes ``<|endoftext|>``.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import torch
from torch import nn

from course_utils.tokenizer import IM_END, IM_START, TOOL_RESULT, TOOL_RESULT_END

_RESULT = re.compile(re.escape(TOOL_RESULT) + "(.*?)" + re.escape(TOOL_RESULT_END), re.S)


class _Cache:
    """The KV cache's bookkeeping (course_utils.model.KVCache), with token ids instead of keys."""

    def __init__(self):
        self.pos, self.rows, self.pad = 0, None, None

    def reset(self):
        self.pos, self.rows, self.pad = 0, None, None

    def set_padding(self, pad):
        self.pad = pad if pad is not None and bool(pad.any()) else None

    def keep_rows(self, rows):
        self.rows = [self.rows[i] for i in rows.tolist()]
        if self.pad is not None:
            self.pad = self.pad[rows]
        self.drop_front(0 if self.pad is None else int(self.pad.min()))

    def drop_front(self, n):
        if n > 0:
            self.rows = [r[n:] for r in self.rows]
            self.pos -= n
            self.pad = self.pad - n
        if self.pad is not None and not bool(self.pad.any()):
            self.pad = None


class ScriptedChatModel(nn.Module):
    def __init__(self, tokenizer, respond, block_size: int = 256):
        super().__init__()
        self.tok = tokenizer
        self.respond = respond
        self.config = SimpleNamespace(block_size=block_size, vocab_size=tokenizer.vocab_size)
        self.dummy = nn.Parameter(torch.zeros(1))  # so the model has a device
        self.header = [tokenizer.special_id(IM_START)] + tokenizer.encode("assistant\n")
        self.contexts = []  # every context the model answered from, for the tests to inspect

    def new_kv_cache(self, max_len=None):
        return _Cache()

    def next_id(self, context: list[int]) -> int:
        text = self.tok.decode(context)
        user = text.rfind(IM_START + "user\n")
        question = text[user + len(IM_START + "user\n"):].split(IM_END)[0] if user >= 0 else ""
        results = _RESULT.findall(text[user:]) if user >= 0 else []
        target = self.tok.encode(self.respond(question, results), allowed_special="all")
        # the part of this segment already written: the ids after the last assistant header
        h = len(self.header)
        starts = [i + h for i in range(len(context) - h + 1) if context[i:i + h] == self.header]
        start = starts[-1] if starts else len(context)
        written = context[start:start + len(target)]  # (a finished row of a batch keeps being fed)
        if written != target[:len(written)]:
            raise AssertionError(f"the loop fed {self.tok.decode(written)!r}, "
                                 f"not a prefix of {self.tok.decode(target)!r}")
        return target[len(written)] if len(written) < len(target) else self.tok.eot_id

    def forward(self, idx, targets=None, loss_mask=None, kv_cache=None):
        B, T = idx.shape
        rows = idx.tolist()
        if kv_cache is not None:
            kv_cache.rows = rows if kv_cache.pos == 0 else [a + b for a, b in zip(kv_cache.rows, rows)]
            kv_cache.pos += T
            rows = kv_cache.rows
            if kv_cache.pad is not None:  # a left-padded batch: the padding is not part of the context
                rows = [r[p:] for r, p in zip(rows, kv_cache.pad.tolist())]
        logits = torch.zeros(B, T, self.config.vocab_size)
        for b, ctx in enumerate(rows):
            self.contexts.append(list(ctx))
            logits[b, -1, self.next_id(ctx)] = 100.0
        return logits, None
