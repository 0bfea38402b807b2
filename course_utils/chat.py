"""The chat template and assistant-only loss masks.

A chat model is still a next-token predictor; a conversation becomes one token sequence with
special tokens marking who speaks. The template (ChatML, the ``<|im_start|>`` format of the
seed articles), one message after another::

    <|endoftext|>                                   the start of a fresh document, as in pretraining
    <|im_start|>system\\n{content}<|im_end|>\\n       optional, first message only
    <|im_start|>user\\n{content}<|im_end|>\\n
    <|im_start|>assistant\\n{content}<|im_end|>\\n

An assistant message that calls the calculator ends with the call instead of ``<|im_end|>``;
the tool's answer comes back in a ``tool`` message, then the assistant continues in a new turn::

    <|im_start|>assistant\\n<|tool_call|>123*456<|/tool_call|>
    <|im_start|>tool\\n<|tool_result|>56088<|/tool_result|><|im_end|>\\n
    <|im_start|>assistant\\n123*456 = 56088.<|im_end|>\\n

(An assistant message may carry text before its call, and ``thinking``, rendered as
``<|think|>...<|/think|>`` right after the header, for the reasoning chapter.)

Conversations are lists of dicts, the format the world generator writes::

    [{"role": "system", "content": "..."},           # optional
     {"role": "user", "content": "What is 123*456?"},
     {"role": "assistant", "tool_call": "123*456"},   # optional "content" before the call
     {"role": "tool", "content": "56088"},
     {"role": "assistant", "content": "123*456 = 56088."}]

**Loss mask.** In supervised fine-tuning the model should learn to *write the assistant's
part*, not to predict the user. :func:`render_conversation` returns a mask that is 1 exactly on
the tokens the assistant produces: its thinking, content and tool-call span, and the closing
``<|im_end|>`` (so it learns to stop). It is 0 on system, user and tool tokens, on every
``<|im_start|>role\\n`` header (the runtime writes those) and on the ``\\n`` after ``<|im_end|>``.

**Prompt injection.** Message text is encoded with ``allowed_special="none"``: a user who types
``<|im_end|>`` gets the *bytes* of that string, never the control token. Only this module
inserts control tokens.

**Truncation** (one rule for training and generation, :func:`truncate_pieces`): when a
rendering is longer than ``max_tokens``,

1. drop whole turns, oldest first, keeping the system prompt and the last turn (a *turn*
   starts at a user message and runs up to the next one: the user's message, the assistant's
   replies, its tool calls and their results);
2. if it is still too long, keep only the last ``max_tokens`` tokens (hard truncation from
   the left, which may cut into the system prompt or the last turn).

Because both :func:`render_conversation` and :func:`render_for_completion` apply this rule to
the same pieces, a prompt built for generation with ``max_tokens = block_size - reply_length``
is exactly the context the model was trained on for that reply.
"""
from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Sequence, Union

from .tokenizer import (
    EOT,
    IM_END,
    IM_START,
    SPECIAL_TOKENS,
    THINK,
    THINK_END,
    TOOL_CALL,
    TOOL_CALL_END,
    TOOL_RESULT,
    TOOL_RESULT_END,
)

__all__ = [
    "ROLES",
    "MAX_MESSAGE_CHARS",
    "ChatFormatError",
    "validate_conversation",
    "render_text",
    "render_conversation",
    "render_for_completion",
    "render_tool_result",
    "assistant_stop_ids",
    "truncate_pieces",
    "Piece",
    "conversation_pieces",
    "parse_assistant_reply",
    "parse_conversation",
]

ROLES = ("system", "user", "assistant", "tool")
# Longest message text (content, tool call or thinking) accepted, in characters. The course's
# models see a few hundred tokens at most; a longer message is a mistake, or an attack on the
# chat widget, and gets a clear error instead of a silently truncated prompt.
MAX_MESSAGE_CHARS = 4000

_MESSAGE_KEYS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_call", "thinking"},
    "tool": {"role", "content"},
}


class ChatFormatError(ValueError):
    """A conversation that does not fit the template; the message says which one and why."""


# ----------------------------------------------------------------------------- validation

def _check_text(i: int, key: str, value) -> None:
    if not isinstance(value, str):
        raise ChatFormatError(f"message {i}: {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ChatFormatError(f"message {i}: empty {key} (write something, or leave the message out)")
    if len(value) > MAX_MESSAGE_CHARS:
        raise ChatFormatError(
            f"message {i}: {key} is too long: {len(value)} characters (max {MAX_MESSAGE_CHARS})")


def validate_conversation(conversation, *, for_completion: bool = False) -> None:
    """Raise :class:`ChatFormatError` (a ValueError) unless ``conversation`` fits the template.

    Checks: a non-empty list of dicts; known roles; no unknown keys; non-empty text of at most
    ``MAX_MESSAGE_CHARS`` characters; a system message only first; a ``tool_call`` only on an
    assistant message and always answered by the next message, a ``tool`` message, which
    answers nothing else. With ``for_completion`` the last message must be ``user`` or ``tool``
    (the model is about to write the assistant's reply).
    """
    if not isinstance(conversation, (list, tuple)) or not conversation:
        raise ChatFormatError("a conversation is a non-empty list of messages like "
                              "{'role': 'user', 'content': 'Hi'}")
    for i, msg in enumerate(conversation):
        if not isinstance(msg, dict):
            raise ChatFormatError(f"message {i}: expected a dict with 'role' and 'content', got {type(msg).__name__}")
        role = msg.get("role")
        if role not in ROLES:
            raise ChatFormatError(f"message {i}: unknown role {role!r} (roles: {', '.join(ROLES)})")
        extra = set(msg) - _MESSAGE_KEYS[role]
        if extra:
            raise ChatFormatError(f"message {i}: unexpected key(s) {sorted(extra)} for a {role} message "
                                  f"(allowed: {sorted(_MESSAGE_KEYS[role])})")
        if role == "system" and i != 0:
            raise ChatFormatError(f"message {i}: a system message can only be the first message")
        previous_call = i > 0 and "tool_call" in conversation[i - 1]
        if role == "tool" and not previous_call:
            raise ChatFormatError(f"message {i}: a tool message must follow an assistant message with a tool_call")
        if previous_call and role != "tool":
            raise ChatFormatError(f"message {i}: an assistant tool_call must be answered by a tool message, "
                                  f"got {role!r}")
        if role == "assistant":
            if "content" not in msg and "tool_call" not in msg:
                raise ChatFormatError(f"message {i}: an assistant message needs 'content' or a 'tool_call'")
            for key in ("thinking", "content", "tool_call"):
                if key in msg:
                    _check_text(i, key, msg[key])
        else:
            if "content" not in msg:
                raise ChatFormatError(f"message {i}: a {role} message needs 'content'")
            _check_text(i, "content", msg["content"])
    if for_completion and conversation[-1]["role"] not in ("user", "tool"):
        raise ChatFormatError(
            f"to generate a reply the last message must be from the user or a tool, not {conversation[-1]['role']!r}"
            + (" (run the tool call first)" if "tool_call" in conversation[-1] else ""))


# ----------------------------------------------------------------------------- the template as text

def _message_text(msg: dict) -> str:
    role = msg["role"]
    text = f"{IM_START}{role}\n"
    if role == "tool":
        return text + f"{TOOL_RESULT}{msg['content']}{TOOL_RESULT_END}{IM_END}\n"
    if "thinking" in msg:
        text += f"{THINK}{msg['thinking']}{THINK_END}"
    text += msg.get("content", "")
    if "tool_call" in msg:
        return text + f"{TOOL_CALL}{msg['tool_call']}{TOOL_CALL_END}"
    return text + f"{IM_END}\n"


def render_text(conversation, *, for_completion: bool = False) -> str:
    """The template as a string, for reading (a notebook prints this to show the format).

    ``tokenizer.decode(render_conversation(c, tok)[0]) == render_text(c)``. Do not encode this
    string with specials allowed to train on: a user's "<|im_end|>" would become a real one.
    """
    validate_conversation(conversation, for_completion=for_completion)
    text = EOT + "".join(_message_text(m) for m in conversation)
    return text + (f"{IM_START}assistant\n" if for_completion else "")


# ----------------------------------------------------------------------------- rendering to ids

@dataclass
class Piece:
    """A stretch of the rendering that truncation keeps or drops as a whole.

    ``turn`` is None for pieces that are always kept (the leading ``<|endoftext|>`` and the
    system prompt), else the index of the turn: each user message starts a new turn.
    """

    ids: list[int]
    mask: list[int]
    turn: int | None


class _Specials:
    def __init__(self, tokenizer):
        get = tokenizer.special_id
        self.eot, self.im_start, self.im_end = get(EOT), get(IM_START), get(IM_END)
        self.call, self.call_end = get(TOOL_CALL), get(TOOL_CALL_END)
        self.result, self.result_end = get(TOOL_RESULT), get(TOOL_RESULT_END)
        self.think, self.think_end = get(THINK), get(THINK_END)


def _encode(tokenizer, text: str) -> list[int]:
    # Message text never becomes a control token, whatever it contains.
    return list(tokenizer.encode(text, allowed_special="none"))


def _header(tokenizer, sp: _Specials, role: str) -> list[int]:
    return [sp.im_start] + _encode(tokenizer, f"{role}\n")


def _render_message(msg: dict, tokenizer, sp: _Specials) -> tuple[list[int], list[int]]:
    role = msg["role"]
    ids = _header(tokenizer, sp, role)
    mask = [0] * len(ids)
    newline = _encode(tokenizer, "\n")

    def add(new_ids, value):
        ids.extend(new_ids)
        mask.extend([value] * len(new_ids))

    if role == "tool":
        add([sp.result] + _encode(tokenizer, msg["content"]) + [sp.result_end, sp.im_end] + newline, 0)
    elif role == "assistant":
        if "thinking" in msg:
            add([sp.think] + _encode(tokenizer, msg["thinking"]) + [sp.think_end], 1)
        if "content" in msg:
            add(_encode(tokenizer, msg["content"]), 1)
        if "tool_call" in msg:  # the call closes the message: the runtime answers it
            add([sp.call] + _encode(tokenizer, msg["tool_call"]) + [sp.call_end], 1)
        else:
            add([sp.im_end], 1)
            add(newline, 0)
    else:
        add(_encode(tokenizer, msg["content"]) + [sp.im_end] + newline, 0)
    return ids, mask


def conversation_pieces(conversation, tokenizer, *, for_completion: bool = False) -> list[Piece]:
    """The rendering cut into pieces for :func:`truncate_pieces` (validates first)."""
    validate_conversation(conversation, for_completion=for_completion)
    sp = _Specials(tokenizer)
    pieces = [Piece([sp.eot], [0], None)]
    turn = 0
    seen_user = False
    for msg in conversation:
        if msg["role"] == "user":
            turn += seen_user  # the first user message opens turn 0; each later one a new turn
            seen_user = True
        ids, mask = _render_message(msg, tokenizer, sp)
        pieces.append(Piece(ids, mask, None if msg["role"] == "system" else turn))
    if for_completion:
        header = _header(tokenizer, sp, "assistant")
        pieces.append(Piece(header, [0] * len(header), turn))
    return pieces


def truncate_pieces(pieces: Sequence[Piece], max_tokens: int | None) -> tuple[list[int], list[int]]:
    """The one truncation rule (see the module docstring) -> ``(ids, mask)`` of at most ``max_tokens``.

    1. While too long and more than one turn is left, drop the oldest turn (all its pieces);
       pieces with ``turn=None`` (start token, system prompt) are never dropped here.
    2. If still too long, keep the last ``max_tokens`` tokens.
    """
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Integral) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer or None, got {max_tokens!r}")
        max_tokens = int(max_tokens)
    pieces = list(pieces)
    if max_tokens is not None:
        total = sum(len(p.ids) for p in pieces)
        turns = sorted({p.turn for p in pieces if p.turn is not None})
        for oldest in turns[:-1]:
            if total <= max_tokens:
                break
            total -= sum(len(p.ids) for p in pieces if p.turn == oldest)
            pieces = [p for p in pieces if p.turn != oldest]
    ids = [i for p in pieces for i in p.ids]
    mask = [m for p in pieces for m in p.mask]
    if max_tokens is not None and len(ids) > max_tokens:
        ids, mask = ids[-max_tokens:], mask[-max_tokens:]
    return ids, mask


def render_conversation(conversation, tokenizer, max_tokens: int | None = None) -> tuple[list[int], list[int]]:
    """Conversation -> ``(ids, loss_mask)`` for supervised fine-tuning.

    ``loss_mask[i] == 1`` exactly where token ``ids[i]`` is written by the assistant (see the
    module docstring). With ``max_tokens`` the shared truncation rule applies.
    Raises :class:`ChatFormatError` for an invalid conversation.
    """
    return truncate_pieces(conversation_pieces(conversation, tokenizer), max_tokens)


def render_for_completion(conversation, tokenizer, max_tokens: int | None = None) -> list[int]:
    """The prompt for generating the assistant's next reply: the rendering of ``conversation``
    followed by ``<|im_start|>assistant\\n``. The last message must be from the user or a tool.

    For generation, pass ``max_tokens = block_size - max_new_tokens`` so the reply fits.
    """
    ids, _ = truncate_pieces(conversation_pieces(conversation, tokenizer, for_completion=True), max_tokens)
    return ids


def render_tool_result(result: str, tokenizer) -> list[int]:
    """The ids to append after the model wrote ``<|/tool_call|>``: the tool message with the
    result, then a fresh ``<|im_start|>assistant\\n`` header so the model continues.

    ``prompt + call_ids + render_tool_result(r)`` equals :func:`render_for_completion` of the
    conversation with the call and its result appended (without truncation).
    """
    sp = _Specials(tokenizer)
    if not isinstance(result, str) or not result.strip():
        raise ChatFormatError(f"a tool result must be a non-empty string, got {result!r}")
    if len(result) > MAX_MESSAGE_CHARS:
        raise ChatFormatError(f"tool result is too long: {len(result)} characters (max {MAX_MESSAGE_CHARS})")
    ids, _ = _render_message({"role": "tool", "content": result}, tokenizer, sp)
    return ids + _header(tokenizer, sp, "assistant")


def assistant_stop_ids(tokenizer) -> tuple[int, int, int]:
    """Token ids that end an assistant reply during generation:
    ``<|im_end|>`` (turn over), ``<|/tool_call|>`` (run the tool), ``<|endoftext|>``."""
    sp = _Specials(tokenizer)
    return (sp.im_end, sp.call_end, sp.eot)


# ----------------------------------------------------------------------------- parsing

# A parsed stream: special-token strings (e.g. "<|im_end|>") and text runs, in order. Special
# tokens are told apart from text by a marker, since text may spell the same characters.
@dataclass(frozen=True)
class _Special:
    name: str


_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(s) for s in sorted(SPECIAL_TOKENS, key=len, reverse=True)) + ")")


def _items(rendered, tokenizer) -> list:
    """Ids or text -> a list of ``_Special`` and ``str`` items.

    From ids this is exact: a special id is a control token, text bytes are text, even if they
    spell "<|im_end|>". From text it cannot be: every special-token *string* is read as the
    control token, so parse text only when it came from trusted code (e.g. :func:`render_text`).
    """
    if isinstance(rendered, str):
        parts = _SPECIAL_SPLIT.split(rendered)
        return [(_Special(p) if k % 2 else p) for k, p in enumerate(parts) if p]
    if tokenizer is None:
        raise ValueError("parsing token ids needs the tokenizer (pass tokenizer=...)")
    ids = rendered.tolist() if hasattr(rendered, "tolist") else list(rendered)
    specials = {tokenizer.special_id(s): s for s in SPECIAL_TOKENS}
    items, run = [], []
    for i in ids:
        if i in specials:
            if run:
                items.append(tokenizer.decode(run))
                run = []
            items.append(_Special(specials[i]))
        else:
            run.append(i)
    if run:
        items.append(tokenizer.decode(run))
    return items


def _strip_header(items: list, role: str = "assistant") -> list:
    """Drop a leading ``<|im_start|>assistant\\n`` if present."""
    if len(items) >= 2 and items[0] == _Special(IM_START) and isinstance(items[1], str) \
            and items[1].startswith(f"{role}\n"):
        rest = items[1][len(role) + 1:]
        return ([rest] if rest else []) + items[2:]
    return items


def parse_assistant_reply(reply: Union[str, Sequence[int]], tokenizer=None) -> dict:
    """Split what the model generated after ``<|im_start|>assistant\\n`` into a message dict:
    ``{"role": "assistant", "content": ...}``, plus ``"tool_call"`` / ``"thinking"`` when present.

    ``reply`` is token ids (give ``tokenizer``; exact) or text (special-token strings are read
    as control tokens). A leading ``<|im_start|>assistant\\n`` header is skipped. The reply ends
    at the first ``<|im_end|>``, ``<|endoftext|>``, ``<|im_start|>`` or ``<|/tool_call|>``
    (anything after it is ignored), or where the ids run out. ``<|tool_call|>`` starts the call:
    its expression is the text up to ``<|/tool_call|>`` (or the end, if generation was cut
    off). ``content`` is the text before the call ("" if the model wrote none; keys other than
    ``role`` and ``content`` appear only when present).
    """
    items = _strip_header(_items(reply, tokenizer))
    message = {"role": "assistant", "content": ""}
    content: list[str] = []
    k = 0
    if items and items[0] == _Special(THINK):
        end = next((j for j, it in enumerate(items) if it == _Special(THINK_END)), len(items))
        message["thinking"] = "".join(it for it in items[1:end] if isinstance(it, str))
        k = end + 1
    while k < len(items):
        item = items[k]
        if isinstance(item, str):
            content.append(item)
        elif item == _Special(TOOL_CALL):
            call = []
            for it in items[k + 1:]:
                if not isinstance(it, str):
                    break
                call.append(it)
            message["tool_call"] = "".join(call)
            break
        else:  # <|im_end|>, <|endoftext|>, <|im_start|>, or a token out of place: the reply is over
            break
        k += 1
    message["content"] = "".join(content)
    if "tool_call" in message and not message["content"]:
        del message["content"]
    return message


def parse_conversation(rendered: Union[str, Sequence[int]], tokenizer=None) -> list[dict]:
    """Read a full rendering back into the list of messages (the inverse of rendering).

    From ids (pass ``tokenizer``) this is exact for any conversation. From text (e.g. the
    decoded ids) it is exact unless a message itself contains a special-token string.
    Raises ``ValueError`` for a sequence that does not follow the template.
    """
    items = _items(rendered, tokenizer)
    if items and items[0] == _Special(EOT):
        items = items[1:]
    messages = []
    k = 0

    def fail(why):
        raise ChatFormatError(f"not a rendered conversation: {why} (at item {k}: {items[k] if k < len(items) else 'end'!r})")

    def expect(special):
        nonlocal k
        if k >= len(items) or items[k] != _Special(special):
            fail(f"expected {special}")
        k += 1

    def text():
        nonlocal k
        if k < len(items) and isinstance(items[k], str):
            k += 1
            return items[k - 1]
        return ""

    while k < len(items):
        expect(IM_START)
        head = text()
        role, newline, rest = head.partition("\n")
        if role not in ROLES or not newline:
            fail(f"expected a role header like 'user\\n', got {head!r}")
        msg = {"role": role}
        if role == "tool":
            if rest:
                fail("unexpected text before the tool result")
            expect(TOOL_RESULT)
            msg["content"] = text()
            expect(TOOL_RESULT_END)
            expect(IM_END)
            if text() != "\n":
                fail("expected a newline after <|im_end|>")
        else:
            if role == "assistant" and not rest and k < len(items) and items[k] == _Special(THINK):
                k += 1
                msg["thinking"] = text()
                expect(THINK_END)
                rest = text()
            if rest:
                msg["content"] = rest
            if role == "assistant" and k < len(items) and items[k] == _Special(TOOL_CALL):
                k += 1
                msg["tool_call"] = text()
                expect(TOOL_CALL_END)
            else:
                expect(IM_END)
                if text() != "\n":
                    fail("expected a newline after <|im_end|>")
        messages.append(msg)
    validate_conversation(messages)
    return messages
