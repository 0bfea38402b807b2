"""Sampling and generation: greedy, temperature, top-k/top-p, stops, streaming, batching, the KV cache."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.generate import (Decoder, _inverse_cdf, filter_logits, generate, generate_batch,
                                   next_token_probabilities, next_token_probs, sample_next, stream, text_generate)
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


def test_sampled_distribution_is_the_softmax_of_the_scaled_logits():
    # The distribution: temperature, then softmax; a draw follows it (seeded, 40k draws).
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 3.0, 0.5]] * 40_000)
    for temperature in (1.0, 0.7):
        probs = torch.softmax(logits[0] / temperature, -1)
        torch.testing.assert_close(next_token_probs(logits[0], temperature), probs)
        draws = sample_next(logits, temperature, generator=torch.Generator().manual_seed(0))
        freq = torch.bincount(draws, minlength=6).float() / len(draws)
        # 5 standard errors of a frequency: a wrong distribution fails, chance does not.
        assert ((freq - probs).abs() <= 5 * (probs * (1 - probs) / len(draws)).sqrt() + 1e-9).all(), (freq, probs)
    # top-k: excluded tokens never come, the kept ones in proportion.
    draws = sample_next(logits, 1.0, top_k=2, generator=torch.Generator().manual_seed(1))
    assert set(draws.tolist()) == {0, 4}
    share = (draws == 4).float().mean().item()
    assert share == pytest.approx(torch.softmax(torch.tensor([3.0, 2.0]), -1)[0].item(), abs=0.02)


def test_the_draw_never_picks_a_token_of_probability_zero():
    # u in (0, 1]: the extremes land on the first and last tokens with probability, never beside them.
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.0, 0.75, 0.0]] * 4)
    u = torch.tensor([[1e-300], [0.25], [0.2500001], [1.0]], dtype=torch.float64)
    assert _inverse_cdf(probs, u).tolist() == [1, 1, 4, 4]


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


def plain_forward_only(model):
    """The same model, but generation must use forward for every token (a hook does that)."""
    model.blocks[0].register_forward_hook(lambda *args: None)
    assert not model.decode_step_applies()
    return model


def test_cached_uncached_and_fast_step_decoding_give_identical_greedy_tokens():
    model, slow = tiny(seed=4), plain_forward_only(tiny(seed=4))
    assert model.decode_step_applies()
    for prompt in ([5, 6, 7, 8], list(range(1, 15))):  # 30 new tokens: the 16-token context fills up
        fast = generate(model, prompt, 30, temperature=0)
        assert fast == generate(slow, prompt, 30, temperature=0) == generate(model, prompt, 30, temperature=0,
                                                                               use_cache=False)
        assert len(fast) == 30


def test_left_padded_batches_give_the_tokens_of_single_prompts():
    model = tiny(seed=1)
    # Lengths 1 to 15 in a 16-token context: padded rows, rows that fill the context and get
    # cut, and rows whose padding is forgotten once the longest row overflows.
    prompts = [list(range(1, n + 1))[::-1] for n in (3, 1, 15, 7, 12, 2)]
    singles = [generate(model, p, 12, temperature=0) for p in prompts]
    assert generate_batch(model, prompts, 12, temperature=0) == singles
    assert generate_batch(model, prompts, 12, temperature=0, use_cache=False) == singles
    assert generate_batch(plain_forward_only(tiny(seed=1)), prompts, 12, temperature=0) == singles
    # The next-token logits themselves: the padded batch against each prompt alone.
    together = Decoder(model).feed(prompts)
    for row, p in zip(together, prompts):
        torch.testing.assert_close(row, Decoder(model).feed(p)[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="first feed"):
        d = Decoder(model)
        d.feed([[1, 2], [3, 4]])
        d.feed([[1], [2, 3]])


def test_large_batches_are_split_and_answers_keep_their_order(monkeypatch):
    import course_utils.generate as G

    model = tiny(seed=2)
    prompts = [[1 + i % 5] * (1 + i % 4) for i in range(7)]
    whole = generate_batch(model, prompts, 5, temperature=0)
    monkeypatch.setattr(G, "MAX_BATCH_ROWS", 2)
    assert generate_batch(model, prompts, 5, temperature=0) == whole == [generate(model, p, 5, temperature=0)
                                                                         for p in prompts]


def test_stop_logic_never_drops_a_finished_rows_last_token():
    model = tiny(seed=1)
    prompts = [[5, 6, 7, 8], [1, 2], [9, 9, 9, 9], [4, 3], [7], [2, 2, 2, 2, 2, 2]]
    singles = [generate(model, p, 10, temperature=0) for p in prompts]
    # Stop tokens that end rows at different steps, so finished rows leave the batch mid-way.
    stops = {single[k] for single, k in zip(singles, (1, 3, 5)) if single[k] not in single[:k]}
    cut = [s[:min(s.index(t) for t in stops if t in s) + 1] if stops & set(s) else s for s in singles]
    assert any(len(c) < 10 for c in cut) and len({len(c) for c in cut}) > 2
    assert generate_batch(model, prompts, 10, temperature=0, stop_ids=stops) == cut
    for c, p in zip(cut, prompts):
        assert generate(model, p, 10, temperature=0, stop_ids=stops) == c
    # A budget per prompt: each row writes exactly its own number of tokens (or stops before).
    budgets = [1, 10, 3, 0, 7, 2]
    outs = generate_batch(model, prompts, budgets, temperature=0)
    assert outs == [s[:b] for s, b in zip(singles, budgets)]


def test_rows_kept_after_others_finish_continue_unchanged():
    model = tiny(seed=2)
    prompts = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]
    d = Decoder(model)
    d.feed(prompts)
    d.feed([[11], [12], [13], [14]])
    d.keep([3, 1])  # rows 0 and 2 are done; the shortest prompt's padding is forgotten with them
    assert d.pad is not None and d.pad.tolist() == [0, 2] and d.tokens.size(1) == 5
    after = d.feed([[15], [16]])
    torch.testing.assert_close(after[0], Decoder(model).feed([7, 8, 9, 10, 14, 15])[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after[1], Decoder(model).feed([4, 5, 12, 16])[0], atol=1e-5, rtol=1e-5)


def test_generation_runs_on_one_thread_and_restores_the_callers():
    model = plain_forward_only(tiny())
    seen = []
    model.blocks[0].register_forward_hook(lambda *args: seen.append(torch.get_num_threads()))
    torch.set_num_threads(2)
    generate_batch(model, [[1, 2], [3]], 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_feeding_tokens_mid_generation_equals_one_long_prompt():
    # What a tool-call loop does: generate, inject the tool's answer, continue.
    model = tiny(seed=3).eval()
    d = Decoder(model, use_cache=True)
    d.feed([1, 2, 3])
    d.feed([4])
    injected = d.feed([5, 6, 7])
    whole = Decoder(model, use_cache=False).feed([1, 2, 3, 4, 5, 6, 7])
    torch.testing.assert_close(injected, whole, atol=1e-5, rtol=1e-5)


def test_the_cache_holds_only_the_tokens_a_generation_needs():
    # A batch of short prompts must not reserve the whole context per row (the gpu model's
    # reward stage decodes ~1,500 rows at once: 14 GB for a full-length cache).
    model = tiny(seed=4, block_size=256).eval()
    d = Decoder(model, use_cache=True)
    d.feed([1, 2, 3])
    assert d.cache.k[0].size(2) < 256  # room for the prompt and some new tokens, not the context
    tokens = [1, 2, 3] + [t % V for t in range(4, 80)]
    for t in tokens[3:]:
        grown = d.feed([t])  # past the first allocation: the cache grows, the logits stay exact
    assert 79 <= d.cache.k[0].size(2) <= 256
    whole = Decoder(model, use_cache=False).feed(tokens)
    torch.testing.assert_close(grown, whole, atol=1e-5, rtol=1e-5)


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


def test_prompts_longer_than_the_context_are_cut_in_a_padded_batch():
    model = tiny(seed=3)
    prompts = [list(range(1, 21)), [4, 5, 6], list(range(30, 48))]  # 20 and 18 tokens > block_size 16
    singles = [generate(model, p, 6, temperature=0) for p in prompts]
    assert singles[0] == generate(model, prompts[0][-16:], 6, temperature=0)
    assert generate_batch(model, prompts, 6, temperature=0) == singles
    assert generate_batch(model, prompts, 6, temperature=0, use_cache=False) == singles
