"""Byte-level BPE from scratch: the tokenizer every later chapter uses.

A model reads integers, not text. We turn text into UTF-8 bytes (so nothing is ever
"unknown": every string is some bytes), then *train* a list of merges: again and again,
take the most frequent pair of neighbouring tokens in the corpus and give that pair a new
id. Frequent words ("the", "今天") end up as one token; rare ones stay split into pieces.

The vocabulary is laid out the same way in every profile, so special ids never move:

    0 .. 255      the 256 single bytes
    256 .. 264    the special tokens of the whole course (SPECIAL_TOKENS, below)
    265 ..        the merges, in the order training learned them (a lower id = merged earlier)

The file is built like minbpe: two small free functions, :func:`get_stats` and
:func:`merge`, and a :class:`Tokenizer` class with train / encode / decode / save / load.
"""
from __future__ import annotations

import codecs
import heapq
import json
import operator
import time
import warnings
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence, Union

import regex

from . import config

# ----------------------------------------------------------------------------- special tokens

# Reserved now for the whole course, so no later chapter has to grow the vocabulary
# (growing it would mean resizing the model's embedding table).
EOT = "<|endoftext|>"            # between documents in pretraining; the end of a generated text
IM_START = "<|im_start|>"        # opens a chat turn:  <|im_start|>user\n...<|im_end|>
IM_END = "<|im_end|>"            # closes a chat turn; the chat model stops generating here
TOOL_CALL = "<|tool_call|>"      # the model asks for a tool:  <|tool_call|>12*7<|/tool_call|>
TOOL_CALL_END = "<|/tool_call|>"
TOOL_RESULT = "<|tool_result|>"  # the tool's answer is pasted back: <|tool_result|>84<|/tool_result|>
TOOL_RESULT_END = "<|/tool_result|>"
THINK = "<|think|>"              # a reasoning model thinks between these before answering
THINK_END = "<|/think|>"

SPECIAL_TOKENS = (EOT, IM_START, IM_END, TOOL_CALL, TOOL_CALL_END, TOOL_RESULT, TOOL_RESULT_END, THINK, THINK_END)

# ----------------------------------------------------------------------------- pre-tokenisation

# Before BPE, text is cut into "words" with a regular expression, and merges never cross
# a word boundary. This keeps tokens meaningful: " dog" and "dog." do not fuse into
# "g." pieces, and numbers do not glue onto letters. The pattern is GPT-4's, with one change
# for Chinese: Chinese has no spaces, so GPT-4's "run of letters" would swallow a whole clause
# *and* any Latin word touching it ("AI发展"). Here a run of Han characters is its own word, and
# other letters exclude Han, so merges form inside Chinese text but never cross into Latin
# letters, digits or punctuation ("，" "。" stay separate). (In the regex, \p{L} is any letter,
# \p{N} any digit, \p{Han} a Chinese character, and [^\P{L}\p{Han}] "a letter that is not Han".)
SPLIT_PATTERN = "|".join([
    r"'(?i:[sdmt]|ll|ve|re)",              # English contractions: 's 'd 'm 't 'll 've 're
    r"\p{Han}+",                           # a run of Chinese characters
    r"[^\r\n\p{L}\p{N}]?+[^\P{L}\p{Han}]+",  # a word in any other script, with one leading space or mark
    r"\p{N}{1,3}",                         # numbers, at most three digits per word
    r" ?[^\s\p{L}\p{N}]++[\r\n]*",         # punctuation and symbols
    r"\s*[\r\n]",                          # line breaks (with the spaces before them)
    r"\s+(?!\S)",                          # spaces, leaving the last one to the next word
    r"\s+",
])


@lru_cache(maxsize=8)
def _compiled(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)


def split_words(text: str, pattern: str = SPLIT_PATTERN) -> list[str]:
    """Cut text into the pre-tokens ("words") that BPE merges inside of."""
    return _compiled(pattern).findall(text)


# ----------------------------------------------------------------------------- the two BPE primitives

def get_stats(ids: Sequence[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Count each pair of neighbours in ``ids``: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}.

    Pass ``counts`` to add into an existing dict, and ``weight`` when ``ids`` stands for a word
    that occurs ``weight`` times in the corpus.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: Sequence[int], pair: tuple[int, int], idx: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, left to right, with the new token ``idx``."""
    out = []
    i, n = 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ----------------------------------------------------------------------------- training

def count_words(texts: Union[str, Iterable[str]], pattern: str = SPLIT_PATTERN) -> Counter:
    """How often each pre-token occurs. A corpus of millions of words has only tens of
    thousands of *different* ones, so training works on this table, not on the text."""
    if isinstance(texts, str):
        texts = [texts]
    compiled = _compiled(pattern)
    counts: Counter = Counter()
    for text in texts:
        counts.update(compiled.findall(text))
    return counts


def train_merges(word_counts: dict[str, int], num_merges: int, first_id: int) -> list[tuple[int, int]]:
    """Learn up to ``num_merges`` merges from a word -> count table; merge k gets id ``first_id + k``.

    The textbook loop recounts every pair in the corpus after each merge. We keep the counts
    instead and fix them up: a merge only changes the words that contain the merged pair, and
    an index pair -> {words containing it} finds those words directly. The best pair comes
    from a heap; entries whose count has changed since they were pushed are skipped ("lazy
    deletion"). Ties go to the smallest pair (a, b), so training is deterministic.
    Stops early if no pair is left (every word is already a single token).
    """
    words = [list(w.encode("utf-8")) for w in word_counts]
    freqs = list(word_counts.values())
    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, (w, f) in enumerate(zip(words, freqs)):
        get_stats(w, pair_counts, f)
        for pair in zip(w, w[1:]):
            where[pair].add(i)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges:
        # Pop stale entries until the top one holds the pair's current count.
        while heap and pair_counts.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)
        if not heap:
            break
        _, pair = heapq.heappop(heap)
        new_id = first_id + len(merges)
        merges.append(pair)
        changed = set()
        for i in where.pop(pair):
            old, f = words[i], freqs[i]
            new = merge(old, pair, new_id)
            old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
            for p in old_pairs:
                pair_counts[p] -= f
            for p in new_pairs:
                pair_counts[p] = pair_counts.get(p, 0) + f
            for p in set(old_pairs) - set(new_pairs):
                if p != pair:
                    where[p].discard(i)
            for p in set(new_pairs) - set(old_pairs):
                where[p].add(i)
            changed.update(old_pairs)
            changed.update(new_pairs)
            words[i] = new
        for p in changed:
            c = pair_counts[p]
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                del pair_counts[p]
                where.pop(p, None)
    return merges


# ----------------------------------------------------------------------------- the tokenizer

FILE_FORMAT = "course_utils.tokenizer/byte-bpe"
FILE_VERSION = 1


def _show_bytes(err: UnicodeDecodeError):
    return "".join(f"<0x{b:02X}>" for b in err.object[err.start:err.end]), err.end


codecs.register_error("course_show_bytes", _show_bytes)


def readable(b: bytes) -> str:
    """Bytes as text for people: ``readable("你".encode()[:2]) == "<0xE4><0xBD>"``.

    A token can end in the middle of a multi-byte character (a Chinese character is 3 bytes);
    those bytes are shown as ``<0xNN>`` instead of being hidden behind a replacement character.
    """
    return b.decode("utf-8", errors="course_show_bytes")


class Tokenizer:
    """A trained byte-level BPE tokenizer. Make one with :meth:`train` or :meth:`load`."""

    def __init__(self, merges: Sequence[tuple[int, int]], special_tokens: Sequence[str] = SPECIAL_TOKENS,
                 pattern: str = SPLIT_PATTERN):
        if len(set(special_tokens)) != len(special_tokens) or not all(special_tokens):
            raise ValueError(f"Special tokens must be distinct, non-empty strings: {list(special_tokens)}")
        self.pattern = pattern
        self._split = _compiled(pattern)
        self.special_tokens: dict[str, int] = {s: 256 + i for i, s in enumerate(special_tokens)}
        self.first_merge_id = 256 + len(special_tokens)
        self.merges: list[tuple[int, int]] = [tuple(p) for p in merges]
        # id -> bytes for every token; a merged token is the bytes of its two halves.
        self._bytes: list[bytes] = [bytes([b]) for b in range(256)] + [s.encode("utf-8") for s in special_tokens]
        # pair -> new id. Ids grow in training order, so the id *is* the merge's priority.
        self._ranks: dict[tuple[int, int], int] = {}
        for k, (a, b) in enumerate(self.merges):
            new_id = self.first_merge_id + k
            if not (0 <= a < new_id and 0 <= b < new_id) or self._is_special(a) or self._is_special(b):
                raise ValueError(f"Merge {k} = ({a}, {b}) refers to a token that does not exist before it")
            self._ranks[(a, b)] = new_id
            self._bytes.append(self._bytes[a] + self._bytes[b])
        self._special_ids = {i: s for s, i in self.special_tokens.items()}
        self._cache: dict[str, list[int]] = {}

    def _is_special(self, i: int) -> bool:
        return 256 <= i < self.first_merge_id

    # ------------------------------------------------------------------ training

    @classmethod
    def train(cls, text: Union[str, Iterable[str]], vocab_size: int,
              special_tokens: Sequence[str] = SPECIAL_TOKENS, pattern: str = SPLIT_PATTERN) -> "Tokenizer":
        """Learn merges until the vocabulary has ``vocab_size`` tokens (256 bytes + specials + merges).

        ``text`` is one string or an iterable of documents (counted separately; no merge can
        span two documents). Raises ValueError for an empty text or a ``vocab_size`` too small
        to hold the 256 bytes and the special tokens.
        """
        special_tokens = list(special_tokens)
        minimum = 256 + len(special_tokens)
        if vocab_size < minimum:
            raise ValueError(
                f"vocab_size={vocab_size} is too small: it must be at least 256 (one token per byte) "
                f"+ {len(special_tokens)} special tokens = {minimum}.")
        word_counts = count_words(text, pattern)
        if not word_counts:
            raise ValueError("The training text is empty: BPE needs some text to count pairs in.")
        merges = train_merges(word_counts, vocab_size - minimum, first_id=minimum)
        if len(merges) < vocab_size - minimum:
            warnings.warn(f"BPE training stopped early at {minimum + len(merges)} tokens (asked for {vocab_size}): "
                          "every word of the text is already a single token. Train on more text.", stacklevel=2)
        return cls(merges, special_tokens, pattern)

    # ------------------------------------------------------------------ sizes and ids

    @property
    def vocab_size(self) -> int:
        """Number of token ids (the model's embedding table needs this many rows)."""
        return len(self._bytes)

    def special_id(self, token: str) -> int:
        """The id of a special token, e.g. ``tok.special_id("<|im_end|>")``."""
        if token not in self.special_tokens:
            raise ValueError(f"{token!r} is not a special token of this tokenizer. "
                             f"Special tokens: {', '.join(self.special_tokens)}")
        return self.special_tokens[token]

    @property
    def eot_id(self) -> int:
        """The id of ``<|endoftext|>``."""
        return self.special_id(EOT)

    def token_bytes(self, i: int) -> bytes:
        """The bytes token ``i`` stands for."""
        return self._bytes[self._check_ids([i])[0]]

    def token_text(self, i: int) -> str:
        """Token ``i`` as readable text; bytes that are not whole UTF-8 characters appear as ``<0xNN>``."""
        return readable(self.token_bytes(i))

    def tokens(self, text: str, allowed_special=None) -> list[str]:
        """The pieces ``text`` is cut into, as readable strings: ``['Hello', ',', ' world']``."""
        return [self.token_text(i) for i in self.encode(text, allowed_special)]

    # ------------------------------------------------------------------ encoding

    def _encode_word(self, word: str) -> list[int]:
        # Apply the learned merges by priority: always merge the pair that was learned first
        # (the lowest id). That reproduces exactly what training did to this word.
        ids = list(word.encode("utf-8"))
        ranks = self._ranks
        while len(ids) >= 2:
            best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
            if best not in ranks:
                break  # no pair in this word was ever merged
            ids = merge(ids, best, ranks[best])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token strings as ordinary text."""
        out: list[int] = []
        cache = self._cache
        for word in self._split.findall(text):
            ids = cache.get(word)
            if ids is None:
                ids = self._encode_word(word)
                if len(cache) < 500_000:  # a bound, so an endless stream cannot eat the memory
                    cache[word] = ids
            out.extend(ids)
        return out

    def _allowed(self, allowed_special) -> set[str]:
        if allowed_special is None or allowed_special == "none":
            return set()
        if allowed_special == "all":
            return set(self.special_tokens)
        if isinstance(allowed_special, str):
            allowed_special = {allowed_special}
        allowed = set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special names tokens that are not special tokens: {sorted(unknown)}. "
                             f"Special tokens: {', '.join(self.special_tokens)}")
        return allowed

    def encode(self, text: str, allowed_special=None) -> list[int]:
        """Text -> token ids.

        By default a special-token string in the text, e.g. a user typing "<|im_end|>", is
        encoded as ordinary bytes: only your own code can insert a real end-of-turn token.
        ``allowed_special`` lets named specials through: ``"all"``, or a set such as
        ``{"<|im_start|>", "<|im_end|>"}`` (``None`` / ``"none"``: no specials).
        """
        allowed = self._allowed(allowed_special)
        if not allowed:
            return self.encode_ordinary(text)
        # Longest first, so a special that contains another is matched whole.
        splitter = "(" + "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
        out: list[int] = []
        for k, part in enumerate(regex.split(splitter, text)):
            if k % 2:  # the odd parts are the specials the split kept
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self.encode_ordinary(part))
        return out

    def encode_batch(self, texts: Iterable[str], allowed_special=None) -> list[list[int]]:
        """Encode many texts; they share the word cache, so repeated words cost nothing."""
        return [self.encode(t, allowed_special) for t in texts]

    # ------------------------------------------------------------------ decoding

    def _check_ids(self, ids) -> list[int]:
        if hasattr(ids, "tolist"):  # a torch tensor or NumPy array
            ids = ids.tolist()
        out = []
        for i in ids:
            try:
                i = operator.index(i)
            except TypeError:
                raise ValueError(f"Token ids must be integers, got {i!r}") from None
            if not 0 <= i < len(self._bytes):
                raise ValueError(f"Token id {i} is out of range: this tokenizer has ids 0..{len(self._bytes) - 1}")
            out.append(i)
        return out

    def decode_bytes(self, ids) -> bytes:
        """Token ids -> the raw bytes they stand for."""
        table = self._bytes
        return b"".join(table[i] for i in self._check_ids(ids))

    def decode(self, ids) -> str:
        """Token ids -> text. Never fails on a valid id sequence.

        A model can emit ids whose bytes are not valid UTF-8 (half of a Chinese character, say);
        those bytes become U+FFFD, the replacement character '�', instead of raising. An id
        outside ``0 .. vocab_size - 1`` (or a non-integer) raises a ValueError.
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ smaller versions

    def truncated(self, vocab_size: int) -> "Tokenizer":
        """The tokenizer training would have given with a smaller ``vocab_size``.

        Training is greedy, so a smaller run learns exactly the first merges of a larger one.
        """
        keep = vocab_size - self.first_merge_id
        if not 0 <= keep <= len(self.merges):
            raise ValueError(f"vocab_size must be between {self.first_merge_id} and {self.vocab_size}, got {vocab_size}")
        return Tokenizer(self.merges[:keep], list(self.special_tokens), self.pattern)

    # ------------------------------------------------------------------ save / load

    def save(self, path) -> None:
        """Write a JSON file a person can read: the pattern, the specials, one merge per line.

        Each merge is ``{"id": new id, "pair": [left id, right id], "text": what it spells}``;
        the ids are what :meth:`load` reads, ``text`` is only for people.
        """
        merges = [json.dumps({"id": self.first_merge_id + k, "pair": list(p), "text": self.token_text(self.first_merge_id + k)},
                             ensure_ascii=False)
                  for k, p in enumerate(self.merges)]
        head = {"format": FILE_FORMAT, "version": FILE_VERSION, "vocab_size": self.vocab_size,
                "pattern": self.pattern, "special_tokens": self.special_tokens}
        text = json.dumps(head, indent=2, ensure_ascii=False)[:-2]  # drop the closing "\n}"
        text += ',\n  "merges": [\n    ' + ",\n    ".join(merges) + "\n  ]\n}\n"
        Path(path).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path) -> "Tokenizer":
        """Read a file written by :meth:`save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != FILE_FORMAT or data.get("version") != FILE_VERSION:
            raise ValueError(f"{path} is not a course tokenizer file of version {FILE_VERSION} "
                             f"(format {data.get('format')!r}, version {data.get('version')!r}).")
        specials = sorted(data["special_tokens"], key=data["special_tokens"].get)
        if [data["special_tokens"][s] for s in specials] != list(range(256, 256 + len(specials))):
            raise ValueError(f"{path}: special token ids must be 256, 257, ... in order")
        first = 256 + len(specials)
        for k, m in enumerate(data["merges"]):
            if m["id"] != first + k:
                raise ValueError(f"{path}: merge {k} has id {m['id']}, expected {first + k}")
        tok = cls([tuple(m["pair"]) for m in data["merges"]], specials, data["pattern"])
        if tok.vocab_size != data.get("vocab_size", tok.vocab_size):
            raise ValueError(f"{path}: vocab_size {data['vocab_size']} does not match its {tok.vocab_size} tokens")
        return tok

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}: 256 bytes + {len(self.special_tokens)} specials "
                f"+ {len(self.merges)} merges)")


# ----------------------------------------------------------------------------- measuring

def bytes_per_token(encode, texts: Iterable[str]) -> float:
    """UTF-8 bytes per token over ``texts``: how much text one token carries (higher = better compression).

    ``encode`` is any function text -> list of ids, so our tokenizer and others are measured alike.
    """
    n_bytes = n_tokens = 0
    for t in texts:
        n_bytes += len(t.encode("utf-8"))
        n_tokens += len(encode(t))
    if n_tokens == 0:
        raise ValueError("No tokens: the texts are empty")
    return n_bytes / n_tokens


def compression_curve(tok: Tokenizer, texts: Sequence[str], vocab_sizes: Iterable[int]) -> dict[int, float]:
    """Bytes per token on ``texts`` at several vocabulary sizes (from one trained tokenizer)."""
    return {v: bytes_per_token(tok.truncated(v).encode_ordinary, texts) for v in vocab_sizes}


def is_chinese(text: str, threshold: float = 0.3) -> bool:
    """True when at least ``threshold`` of the non-space characters are Chinese (Han)."""
    visible = len(text) - len(_compiled(r"\s").findall(text))
    if visible == 0:
        return False
    return len(_compiled(r"\p{Han}").findall(text)) / visible >= threshold


def split_by_language(docs: Iterable[str]) -> dict[str, list[str]]:
    """``{"en": [...], "zh": [...]}``: documents sorted by whether they are mostly Chinese."""
    out = {"en": [], "zh": []}
    for d in docs:
        out["zh" if is_chinese(d) else "en"].append(d)
    return out


# ----------------------------------------------------------------------------- Hugging Face, as a yardstick

def train_hf_tokenizer(texts: Sequence[str], vocab_size: int, special_tokens: Sequence[str] = SPECIAL_TOKENS,
                       pattern: str | None = None):
    """A Hugging Face ``tokenizers`` byte-level BPE trained on the same texts and vocabulary size.

    ``vocab_size`` counts the 256 bytes and the specials, as ours does. With ``pattern=None``
    the pre-tokeniser is Hugging Face's ByteLevel default (GPT-2's regex); pass
    ``SPLIT_PATTERN`` to give it exactly our word splitting, so only the BPE code differs.
    """
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer(models.BPE())
    if pattern is None:
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    hf.train_from_iterator(texts, trainer)
    return hf


def compare_with_huggingface(train_texts: Sequence[str], heldout_texts: Sequence[str], vocab_size: int,
                             ours: Tokenizer | None = None) -> dict:
    """Ours vs Hugging Face on the same training texts and vocabulary size.

    For our tokenizer ("ours"), Hugging Face with its default ByteLevel pre-tokeniser ("hf") and
    Hugging Face with our split pattern ("hf_same_split"), it reports the training seconds, the
    vocabulary size reached, bytes per token on the held-out texts (English and Chinese apart) and
    encoding speed in MB/s (timed on the training texts, which are bigger, so the timing is
    steadier; our word cache starts empty). ``ours_vs_hf_en_percent`` and the like are how many
    percent more bytes each of our tokens carries (positive = ours compresses better).
    Pass ``ours`` to reuse an already trained tokenizer (its training time is then not measured).
    """
    held = split_by_language(heldout_texts)
    train_bytes = sum(len(t.encode("utf-8")) for t in train_texts)
    report = {"vocab_size": vocab_size,
              "train_mb": round(train_bytes / 1e6, 2),
              "heldout_mb": {lang: round(sum(len(t.encode("utf-8")) for t in docs) / 1e6, 3) for lang, docs in held.items()}}

    def measure(name, train, encode, encode_all):
        start = time.perf_counter()
        tok = train()
        seconds = time.perf_counter() - start
        enc = lambda t: encode(tok, t)  # noqa: E731
        row = {"train_seconds": round(seconds, 2) if (name != "ours" or ours is None) else None,
               "vocab_size": tok.vocab_size if isinstance(tok, Tokenizer) else tok.get_vocab_size()}
        for lang, docs in held.items():
            row[f"bytes_per_token_{lang}"] = round(bytes_per_token(enc, docs), 3) if docs else None
        start = time.perf_counter()
        encode_all(tok, train_texts)
        row["encode_mb_per_s"] = round(train_bytes / 1e6 / (time.perf_counter() - start), 2)
        report[name] = row
        return tok

    def train_ours():
        return ours if ours is not None else Tokenizer.train(train_texts, vocab_size)

    def fresh_cache_encode_all(tok, texts):
        tok._cache.clear()  # time a cold start, as a fair comparison with a fresh Hugging Face run
        tok.encode_batch(texts)

    measure("ours", train_ours, lambda t, s: t.encode_ordinary(s), fresh_cache_encode_all)
    hf_encode = lambda t, s: t.encode(s, add_special_tokens=False).ids  # noqa: E731
    hf_encode_all = lambda t, texts: t.encode_batch(list(texts), add_special_tokens=False)  # noqa: E731
    measure("hf", lambda: train_hf_tokenizer(train_texts, vocab_size), hf_encode, hf_encode_all)
    measure("hf_same_split", lambda: train_hf_tokenizer(train_texts, vocab_size, pattern=SPLIT_PATTERN),
            hf_encode, hf_encode_all)
    for lang in held:
        key = f"bytes_per_token_{lang}"
        if report["ours"][key]:
            for other in ("hf", "hf_same_split"):
                report[f"ours_vs_{other}_{lang}_percent"] = round(100 * (report["ours"][key] / report[other][key] - 1), 2)
    if report["ours"]["train_seconds"]:
        report["train_time_ratio_ours_over_hf"] = round(report["ours"]["train_seconds"] / report["hf"]["train_seconds"], 2)
    return report


# ----------------------------------------------------------------------------- the stage

def course_vocab_size() -> int:
    """The vocabulary size of the course tokenizer in the active profile (bytes + specials + merges)."""
    # 2048 on CPU keeps the pretraining model's embedding table small; the bigger vocabulary
    # of the gpu profile compresses better, which pays off with more data and a bigger model.
    return config.pick(ci=512, cpu=2048, gpu=8192)


def build_tokenizer_stage() -> Tokenizer:
    """Train the course tokenizer on the clean corpus and save stage 'tokenizer'.

    Training is deterministic: the same corpus gives a byte-identical tokenizer.json, so
    rebuilding this stage does not make the later stages stale.
    """
    from . import stages
    from .cleaning import load_clean_corpus

    vocab_size = course_vocab_size()
    train_docs = load_clean_corpus("train")
    start = time.perf_counter()
    tok = Tokenizer.train(train_docs, vocab_size)
    seconds = time.perf_counter() - start
    metrics = {"train_seconds": round(seconds, 2),
               "train_mb": round(sum(len(d.encode("utf-8")) for d in train_docs) / 1e6, 3)}
    for lang, docs in split_by_language(load_clean_corpus("val")).items():
        if docs:
            metrics[f"val_bytes_per_token_{lang}"] = round(bytes_per_token(tok.encode_ordinary, docs), 3)
    stages.save_stage("tokenizer", {stages.TOKENIZER_FILE: lambda p: tok.save(p)},
                      meta={"metrics": metrics,
                            "tokenizer": {"vocab_size": tok.vocab_size, "special_tokens": tok.special_tokens}})
    return tok


def load_tokenizer() -> Tokenizer:
    """The course tokenizer, trained first if it is not on disk yet."""
    from . import stages

    return stages.ensure_stage("tokenizer").tokenizer()
