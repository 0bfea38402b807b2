"""The course tokenizer: exact on small hand-worked examples, lossless on any text, and its fast
trainer agrees merge for merge with the textbook one."""
import json
import random
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import stages
from course_utils import tokenizer as T
from course_utils.tokenizer import EOT, IM_END, IM_START, SPECIAL_TOKENS, Tokenizer

N_SPECIAL = len(SPECIAL_TOKENS)
FIRST = 256 + N_SPECIAL  # the id of the first merge

SMALL_TEXT = (
    "今天天气真不错，今天我们一起去公园。你好，你好！\n"
    "The capital of France is Paris. The capital of Japan is Tokyo. "
    "Once upon a time, there was a little cat. The cat didn't like the rain. "
    "Question: What is 123 + 4567? Answer: 4690.\n\n"
) * 3 + "Orson Kovacs was born in 1901. <|im_start|>user\nhi<|im_end|>"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(SMALL_TEXT, FIRST + 120)


# ----------------------------------------------------------------------------- hand-worked examples

def test_vocabulary_layout_and_special_ids():
    tok = Tokenizer([])
    assert tok.vocab_size == 256 + N_SPECIAL == FIRST
    assert tok.eot_id == 256 and tok.special_id(EOT) == 256
    assert tok.special_id(IM_START) == 257 and tok.special_id(IM_END) == 258
    assert [tok.special_id(s) for s in SPECIAL_TOKENS] == list(range(256, FIRST))
    with pytest.raises(ValueError, match="not a special token"):
        tok.special_id("<|nope|>")


def test_known_merges_english():
    # The Wikipedia BPE example. Counts: aa 4, ab 2, ... -> merge (a, a). Then (a, b) and (aa, a)
    # both occur twice; the tie goes to the smaller pair (97, 98). Then "aa"+"ab" occurs twice.
    a, b, c, d = 97, 98, 99, 100
    tok = Tokenizer.train("aaabdaaabac", FIRST + 3)
    assert tok.merges == [(a, a), (a, b), (FIRST, FIRST + 1)]
    assert tok.encode("aaabdaaabac") == [FIRST + 2, d, FIRST + 2, a, c]
    assert tok.token_text(FIRST + 2) == "aaab"


def test_known_merges_chinese():
    # 你 = e4 bd a0, 好 = e5 a5 bd. In "你好你好你": (e4 bd) and (bd a0) occur 3 times, tie -> (bd a0);
    # then e4 + [bd a0] = 你; then (a5 bd) wins a four-way tie at 2; e5 + [a5 bd] = 好; then 你好.
    tok = Tokenizer.train("你好你好你", FIRST + 5)
    assert tok.merges == [(0xBD, 0xA0), (0xE4, FIRST), (0xA5, 0xBD), (0xE5, FIRST + 2), (FIRST + 1, FIRST + 3)]
    assert tok.encode("你好你好你") == [FIRST + 4, FIRST + 4, FIRST + 1]
    assert tok.tokens("你好你好你") == ["你好", "你好", "你"]
    assert tok.token_text(FIRST) == "<0xBD><0xA0>"  # half a character is shown as its bytes


def test_get_stats_and_merge():
    assert T.get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert T.get_stats([1, 2], {(1, 2): 1}, weight=5) == {(1, 2): 6}
    assert T.merge([1, 2, 3, 1, 2], (1, 2), 99) == [99, 3, 99]
    assert T.merge([7, 7, 7], (7, 7), 9) == [9, 7]  # left to right, never overlapping


def test_split_keeps_chinese_apart_from_latin_digits_and_punctuation():
    assert T.split_words("今天天气真不错，我用Python写了123456行。") == [
        "今天天气真不错", "，", "我用", "Python", "写了", "123", "456", "行", "。"]
    assert T.split_words("I'm here, aren't you?") == ["I", "'m", " here", ",", " aren", "'t", " you", "?"]


# ----------------------------------------------------------------------------- lossless on any text

text_with_specials = st.lists(st.one_of(st.text(), st.sampled_from(SPECIAL_TOKENS)), max_size=6).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=text_with_specials)
def test_round_trip_any_unicode(tok, text):
    ordinary = tok.encode(text)
    assert tok.decode(ordinary) == text
    assert not set(ordinary) & set(range(256, FIRST)), "ordinary text must never become a special token"
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


def test_encode_batch_matches_encode(tok):
    texts = ["hello world", "你好，今天", "", IM_END]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts, allowed_special="all")[3] == [258]


def test_learned_chinese_and_english_words(tok):
    assert tok.tokens("今天") == ["今天"]
    assert tok.tokens(" capital") == [" capital"]


# ----------------------------------------------------------------------------- special tokens

def test_special_strings_are_plain_text_by_default(tok):
    ids = tok.encode("<|im_end|>")
    assert tok.special_id(IM_END) not in ids and len(ids) > 1
    assert tok.decode(ids) == "<|im_end|>"


def test_allowed_special(tok):
    text = "<|im_start|>user\nhi<|im_end|>"
    both = tok.encode(text, allowed_special={IM_START, IM_END})
    assert both[0] == 257 and both[-1] == 258 and tok.decode(both) == text
    assert both == tok.encode(text, allowed_special="all")
    only_end = tok.encode(text, allowed_special={IM_END})
    assert 257 not in only_end and only_end[-1] == 258
    assert tok.encode(text, allowed_special=IM_END) == only_end
    assert tok.encode(text, allowed_special="none") == tok.encode(text) == tok.encode(text, allowed_special=set())
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode(text, allowed_special={"<|user|>"})


# ----------------------------------------------------------------------------- errors

def test_invalid_ids_are_a_clear_error(tok):
    for bad in ([tok.vocab_size], [-1], [1, 2, 10**9]):
        with pytest.raises(ValueError, match="out of range"):
            tok.decode(bad)
    with pytest.raises(ValueError, match="integers"):
        tok.decode([1.5])


def test_invalid_utf8_decodes_to_replacement_character(tok):
    assert tok.decode([0xE4]) == "\ufffd"
    assert tok.decode(tok.encode("你")[:1] + [104, 105]).endswith("hi")


def test_decode_accepts_tensors(tok):
    torch = pytest.importorskip("torch")
    assert tok.decode(torch.tensor(tok.encode("hi there"))) == "hi there"


def test_empty_text_and_small_vocab_are_clear_errors():
    for empty in ("", [], ["", ""]):
        with pytest.raises(ValueError, match="empty"):
            Tokenizer.train(empty, 300)
    with pytest.raises(ValueError, match=r"at least 256.*= 265"):
        Tokenizer.train("hello", 264)
    with pytest.raises(ValueError, match="at least 256"):
        Tokenizer.train("hello", 257, special_tokens=["<|a|>", "<|b|>"])
    assert Tokenizer.train("hello", FIRST).merges == []  # just bytes and specials is allowed


# ----------------------------------------------------------------------------- save / load

def test_save_load_gives_identical_encodings(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    again = Tokenizer.load(path)
    assert again.merges == tok.merges and again.special_tokens == tok.special_tokens and again.pattern == tok.pattern
    for text in (SMALL_TEXT, "<|im_end|> 你好 12345", "emoji 🙂 and tabs\t"):
        assert again.encode(text) == tok.encode(text)
        assert again.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    data = json.loads(path.read_text(encoding="utf-8"))  # the file is plain, readable JSON
    assert data["version"] == T.FILE_VERSION and data["special_tokens"][EOT] == 256
    assert {"id": FIRST, "pair": list(tok.merges[0]), "text": tok.token_text(FIRST)} == data["merges"][0]
    path.write_text(path.read_text(encoding="utf-8").replace('"version": 1', '"version": 99'), encoding="utf-8")
    with pytest.raises(ValueError, match="version"):
        Tokenizer.load(path)


# ----------------------------------------------------------------------------- the fast trainer vs the textbook

def naive_train(text, vocab_size):
    """The textbook loop: recount every pair in the whole corpus after each merge."""
    chunks = [list(w.encode("utf-8")) for w in T.split_words(text)]
    merges = []
    for new_id in range(FIRST, vocab_size):
        counts = {}
        for chunk in chunks:
            for pair in zip(chunk, chunk[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))  # most frequent, then smallest pair
        merges.append(best)
        new_chunks = []
        for chunk in chunks:
            out, i = [], 0
            while i < len(chunk):
                if chunk[i:i + 2] == list(best):
                    out.append(new_id)
                    i += 2
                else:
                    out.append(chunk[i])
                    i += 1
            new_chunks.append(out)
        chunks = new_chunks
    return merges


def test_incremental_trainer_matches_naive_trainer():
    fast = Tokenizer.train(SMALL_TEXT, FIRST + 150).merges
    assert len(fast) == 150
    assert fast == naive_train(SMALL_TEXT, FIRST + 150)


@pytest.mark.filterwarnings("ignore:BPE training stopped early")  # short random texts run out of pairs
@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet="ab 你好,.1\n", min_size=1, max_size=80))
def test_incremental_trainer_matches_naive_on_random_text(text):
    assert Tokenizer.train(text, FIRST + 25).merges == naive_train(text, FIRST + 25)


def test_running_out_of_pairs_stops_early_with_a_warning():
    with pytest.warns(UserWarning, match="stopped early"):
        tok = Tokenizer.train("abab", FIRST + 10)
    assert tok.vocab_size == FIRST + 2  # "ab", then "abab"


def test_truncated_equals_training_smaller(tok):
    assert tok.truncated(FIRST + 40).merges == Tokenizer.train(SMALL_TEXT, FIRST + 40).merges
    with pytest.raises(ValueError):
        tok.truncated(tok.vocab_size + 1)


def test_compression_grows_with_vocabulary(tok):
    curve = T.compression_curve(tok, [SMALL_TEXT], [FIRST, FIRST + 40, tok.vocab_size])
    assert curve[FIRST] == 1.0  # bytes only: one byte per token
    assert curve[FIRST] < curve[FIRST + 40] < curve[tok.vocab_size]


def test_split_by_language():
    split = T.split_by_language(["The cat sat.", "今天天气真不错。", "AI 发展前景很好", "   "])
    assert split == {"en": ["The cat sat.", "   "], "zh": ["今天天气真不错。", "AI 发展前景很好"]}


def test_compare_with_huggingface_runs():
    pytest.importorskip("tokenizers")
    report = T.compare_with_huggingface([SMALL_TEXT], ["The cat likes Paris.", "今天你好。"], FIRST + 60)
    for name in ("ours", "hf", "hf_same_split"):
        assert report[name]["bytes_per_token_en"] > 1 and report[name]["bytes_per_token_zh"] > 1


# ----------------------------------------------------------------------------- the stage

def test_build_and_load_stage(monkeypatch):
    rng = random.Random(0)  # enough distinct words for 512 tokens
    words = " ".join("".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 7))) for _ in range(3000))
    docs = {"train": [SMALL_TEXT, words], "val": ["The capital of Japan is Tokyo.", "你好，今天。"]}
    fake = types.ModuleType("course_utils.cleaning")
    fake.load_clean_corpus = lambda split="train": docs[split]
    monkeypatch.setitem(sys.modules, "course_utils.cleaning", fake)
    built = T.build_tokenizer_stage()
    assert built.vocab_size == 512  # the ci profile's size
    stage = stages.load_stage("tokenizer")
    assert stage.meta["tokenizer"]["vocab_size"] == 512 and stage.metrics["val_bytes_per_token_zh"] > 1
    loaded = T.load_tokenizer()
    assert loaded.merges == built.merges and loaded.encode(SMALL_TEXT) == built.encode(SMALL_TEXT)


def test_token_explorer_renders_without_a_live_front_end(tok):
    pytest.importorskip("ipywidgets")
    from course_utils.widgets import token_explorer

    explorer = token_explorer(tok, "你好 hi")
    box, output = explorer.children
    assert "你好" in output.value and "tokens" in output.value
    assert explorer._repr_mimebundle_()["text/html"] == output.value  # the static copy for exported pages
    box.value = "<|im_end|>"  # what a keystroke does in a live notebook
    assert "&lt;" in output.value and ">258<" not in output.value  # typed text, not the special token
