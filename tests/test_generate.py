"""Sampling and generation: greedy, temperature, top-k/top-p, stops, streaming, batching, the KV cache."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.generate import (Decoder, filter_logits, generate, generate_batch, next_token_probabilities,
                                   next_token_probs, sample_next, stream, text_generate)
from course_utils.model import GPT, GPTConfig


@pytest.fixture(autouse=True)
def one_thread():
    # These models are tiny: a second thread buys nothing, and on a busy 2-core machine the
    # threads' spin-waiting made these tests 10-50x slower. Restored afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


V = 50


def tiny(seed=0, block_size=16):
    torch.manual_seed(seed)
    # Larger-than-default init spreads the logits, so greedy decoding has no near-ties.
    model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8)
    return model


# ----------------------------------------------------------------------------- one step


def test_top_k_never_picks_an_excluded_token():
    logits = torch.tensor([2.0, 1.0, 3.0, 0.5, 2.5])
    g = torch.Generator().manual_seed(0)
    picks = {sample_next(logits, temperature=5.0, top_k=2, generator=g).item() for _ in range(300)}
    assert picks == {2, 4}  # the two largest logits; with temperature 5 both come up
    assert filter_logits(logits, top_k=2).isinf().tolist() == [True, True, False, True, False]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = probs.log()
    kept = lambda p: (~filter_logits(logits, top_p=p).isinf()).nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.5) == [1]
    assert kept(0.79) == [1, 3]  # 0.5 + 0.3 reaches 0.79
    assert kept(0.81) == [1, 2, 3]
    assert kept(1.0) == [0, 1, 2, 3]
    assert kept(0.01) == [1]  # the most likely token always survives
    g = torch.Generator().manual_seed(0)
    picks = {sample_next(logits, top_p=0.79, generator=g).item() for _ in range(300)}
    assert picks == {1, 3}
    torch.testing.assert_close(next_token_probs(logits, top_p=0.79), torch.tensor([0, 0.625, 0, 0.375]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=30), st.floats(0.05, 1.0), st.integers(1, 30))
def test_filtered_tokens_are_always_the_least_likely(values, top_p, top_k):
    logits = torch.tensor(values)
    out = filter_logits(logits, top_k=top_k, top_p=top_p)
    kept = ~out.isinf()
    assert kept.any()
    assert torch.equal(out[kept], logits[kept])
    if (~kept).any():
        assert logits[~kept].max() <= logits[kept].min()
    probs = torch.softmax(filter_logits(logits, top_k=top_k), -1)
    assert probs[kept].sum() >= min(top_p, probs.sum()) - 1e-5


def test_near_zero_temperature_is_greedy():
    torch.manual_seed(0)
    logits = torch.randn(8, V) * 3
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_next(logits, temperature=1e-4, generator=g), logits.argmax(-1))
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))
    model = tiny()
    greedy = generate(model, [1, 2, 3], 10, temperature=0)
    assert generate(model, [1, 2, 3], 10, temperature=1e-4, generator=g) == greedy


def test_bad_sampling_arguments_are_refused():
    with pytest.raises(ValueError):
        sample_next(torch.zeros(3), temperature=-1)
    with pytest.raises(ValueError):
        filter_logits(torch.zeros(3), top_k=0)
    with pytest.raises(ValueError):
        filter_logits(torch.zeros(3), top_p=0)


# ----------------------------------------------------------------------------- the loop


def test_cached_greedy_generation_equals_uncached():
    model = tiny(seed=1)
    prompt = [5, 6, 7, 8]
    # 30 new tokens with block_size 16: also covers cropping once the context is full.
    cached = generate(model, prompt, 30, temperature=0, use_cache=True)
    uncached = generate(model, prompt, 30, temperature=0, use_cache=False)
    assert len(cached) == 30 and cached == uncached
    # A prompt longer than the context is cropped to its last block_size tokens.
    long_prompt = list(range(40))
    assert generate(model, long_prompt, 5, temperature=0) == generate(model, long_prompt[-16:], 5, temperature=0)
    assert generate(model, long_prompt, 5, temperature=0, use_cache=False) == generate(model, long_prompt, 5,
                                                                                        temperature=0)


def test_seeded_sampling_is_repeatable_and_cache_independent():
    model = tiny(seed=2)
    run = lambda cache: generate(model, [1], 20, temperature=1.0, top_k=10, use_cache=cache,  # noqa: E731
                                 generator=torch.Generator().manual_seed(7))
    assert run(True) == run(True) == run(False)


def test_stop_token_ends_generation_and_is_included():
    model = tiny(seed=1)
    free = generate(model, [5, 6, 7, 8], 12, temperature=0)
    stop = free[4]
    first = free.index(stop)
    out = generate(model, [5, 6, 7, 8], 12, temperature=0, stop_ids=[stop, V + 10])
    assert out == free[:first + 1]
    seen = []
    assert generate(model, [5, 6, 7, 8], 12, temperature=0, on_token=seen.append) == seen == free
    assert list(stream(model, [5, 6, 7, 8], 12, temperature=0, stop_ids=[stop])) == out


def test_stream_yields_one_token_at_a_time():
    model = tiny()
    it = stream(model, [3], 5, temperature=0)
    first = next(it)
    assert isinstance(first, int)
    assert [first, *it] == generate(model, [3], 5, temperature=0)


def test_batch_matches_one_prompt_at_a_time():
    model = tiny(seed=1)
    prompts = [[5, 6, 7, 8], [1, 2], [9, 9, 9, 9], [4, 3]]
    singles = [generate(model, p, 8, temperature=0) for p in prompts]
    stop = singles[0][2]
    assert generate_batch(model, prompts, 8, temperature=0) == singles
    with_stop = generate_batch(model, prompts, 8, temperature=0, stop_ids=[stop])
    for out, single in zip(with_stop, singles):
        assert out == (single[:single.index(stop) + 1] if stop in single else single)
    assert generate_batch(model, prompts, 8, temperature=0, use_cache=False) == singles


def test_feeding_tokens_mid_generation_equals_one_long_prompt():
    # What a tool-call loop does: generate, inject the tool's answer, continue.
    model = tiny(seed=3).eval()
    d = Decoder(model, use_cache=True)
    d.feed([1, 2, 3])
    d.feed([4])
    injected = d.feed([5, 6, 7])
    whole = Decoder(model, use_cache=False).feed([1, 2, 3, 4, 5, 6, 7])
    torch.testing.assert_close(injected, whole, atol=1e-5, rtol=1e-5)


def test_the_cache_holds_only_the_tokens_a_generation_needs(monkeypatch):
    # A batch of short prompts must not reserve the whole context per row (the gpu model's
    # reward stage decodes ~1,500 rows at once: 14 GB for a full-length cache).
    model = tiny(seed=4, block_size=32).eval()
    d = Decoder(model, use_cache=True, max_tokens=5)
    d.feed([1, 2, 3])
    assert d.cache.k[0].size(2) == 5
    d.feed([4])
    d.feed([5])
    grown = d.feed([6, 7])  # more than max_tokens: a cache as long as the context takes over
    assert d.cache.k[0].size(2) == 32
    whole = Decoder(model, use_cache=False).feed([1, 2, 3, 4, 5, 6, 7])
    torch.testing.assert_close(grown, whole, atol=1e-5, rtol=1e-5)

    sizes = []
    make = model.new_kv_cache
    monkeypatch.setattr(model, "new_kv_cache", lambda max_len=None: sizes.append(max_len) or make(max_len))
    prompts = [[1, 2, 3], [4, 5, 6], [7, 8]]
    out = generate_batch(model, prompts, 6, temperature=0)
    assert sizes == [3 + 6, 2 + 6]  # one cache per prompt length
    assert out == generate_batch(model, prompts, 6, temperature=0, use_cache=False)


def test_generation_restores_training_mode_and_refuses_empty_prompts():
    model = tiny().train()
    generate(model, [1], 3)
    assert model.training
    with pytest.raises(ValueError, match="empty"):
        generate(model, [], 3)


class ByteTokenizer:
    """Stand-in for course_utils.tokenizer.Tokenizer: one id per character, id 0 = end of text."""
    eot_id = 0

    def encode(self, text, allowed_special=()):
        return [ord(c) % (V - 1) + 1 for c in text]

    def decode(self, ids):
        return "".join(chr(96 + i % 26) for i in ids)


def test_text_generate_decodes_new_tokens_without_the_stop_token():
    model = tiny(seed=1)
    tok = ByteTokenizer()
    ids = generate(model, tok.encode("hi"), 6, temperature=0)
    assert text_generate(model, tok, "hi", 6, temperature=0) == tok.decode(ids)
    stop = ids[2]
    cut = ids[:ids.index(stop)]
    assert text_generate(model, tok, "hi", 6, temperature=0, stop_ids=[stop]) == tok.decode(cut)


def test_next_token_probabilities_are_the_models_last_position():
    model = tiny(seed=2).train()
    tok = ByteTokenizer()
    top = next_token_probabilities(model, tok, "hello", k=5)
    assert model.training  # back in the mode it was in
    with torch.no_grad():
        probs = torch.softmax(model.eval()(torch.tensor([tok.encode("hello")]))[0][0, -1], -1)
    p, i = probs.topk(5)
    assert top.tokens == [tok.decode([t]) for t in i.tolist()]
    assert top.probs == pytest.approx(p.tolist(), abs=1e-6) and top.probs == sorted(top.probs, reverse=True)
    assert top.entropy_bits == pytest.approx(float(-(probs * probs.log2()).sum()), abs=1e-4)
    # Token ids give the same answer as the text; a hotter temperature spreads the mass.
    assert next_token_probabilities(model, tok, tok.encode("hello"), k=5).probs == pytest.approx(top.probs)
    hot = next_token_probabilities(model, tok, "hello", k=5, temperature=2.0)
    assert hot.entropy_bits > top.entropy_bits and hot.probs[0] < top.probs[0]
    # A context longer than the model's window: only the last block_size tokens are read.
    long = "x" * 40 + "hello"
    assert next_token_probabilities(model, tok, long).probs == \
        pytest.approx(next_token_probabilities(model, tok, long[-16:]).probs, abs=1e-6)
