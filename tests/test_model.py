"""The transformer: causality, shapes, loss masking, parameter counts, caching and checkpoints."""
import json
import math

import pytest
import torch

from course_utils import stages
from course_utils.model import (GPT, GPTConfig, KVCache, RotaryEmbedding, cross_entropy_loss, default_config,
                                model_from_stage, model_meta, save_model_files)

@pytest.fixture(autouse=True)
def one_thread():
    # These models are tiny: a second thread buys nothing, and on a busy 2-core machine the
    # threads' spin-waiting made these tests 10-50x slower. Restored afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = dict(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=32)


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides})).eval()


def tokens(B=2, T=12, V=61, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- config


def test_config_round_trips_through_json():
    cfg = GPTConfig(**TINY, dropout=0.1, rope_base=500.0)
    again = GPTConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert cfg.mlp_hidden == 128  # 8/3 * 32 rounded up to a multiple of 64


def test_config_rejects_unknown_fields_and_bad_shapes():
    with pytest.raises(ValueError, match="Unknown GPTConfig fields"):
        GPTConfig.from_dict({**TINY, "n_kv_head": 1})
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="even"):
        GPTConfig(n_embd=6, n_head=2)


def test_default_config_follows_the_profile(monkeypatch):
    sizes = {}
    for profile in ("ci", "cpu", "gpu"):
        monkeypatch.setenv("COURSE_PROFILE", profile)
        c = default_config(2048)
        sizes[profile] = (c.n_embd, c.n_layer, c.n_head, c.block_size)
    assert sizes == {"ci": (64, 2, 2, 64), "cpu": (128, 4, 4, 256), "gpu": (384, 6, 6, 512)}
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert 1_000_000 <= GPT(default_config(2048)).num_params() <= 3_000_000
    assert default_config(100, n_embd=256, n_head=4).mlp_hidden == 704  # recomputed for the new width


# ----------------------------------------------------------------------------- the forward pass


def test_logits_shape_and_initial_loss_is_near_uniform():
    model = tiny()
    x = tokens()
    logits, loss = model(x, tokens(seed=2))
    assert logits.shape == (2, 12, 61)
    # Small init: the first prediction is close to uniform over the vocabulary. (Not for the
    # input token itself: with tied embeddings the untrained model slightly favours repeating it.)
    assert abs(loss.item() - math.log(61)) < 0.1
    assert model(x)[1] is None


def test_changing_a_future_token_never_changes_earlier_logits():
    model = tiny()
    x = tokens(B=1, T=16)
    base, _ = model(x)
    for t in (3, 9, 15):
        y = x.clone()
        y[0, t] = (y[0, t] + 1) % 61
        changed, _ = model(y)
        assert torch.equal(changed[0, :t], base[0, :t]) or torch.allclose(changed[0, :t], base[0, :t], atol=1e-6)
        assert not torch.allclose(changed[0, t], base[0, t])  # the changed position itself does see it


def test_explicit_attention_path_matches_the_fast_path():
    model = tiny()
    x = tokens()
    fast, _ = model(x)
    slow, _, attentions = model(x, return_attention=True)
    torch.testing.assert_close(slow, fast, atol=1e-5, rtol=1e-5)
    assert len(attentions) == 2 and attentions[0].shape == (2, 2, 12, 12)
    a = attentions[1]
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 2, 12))  # each row is a distribution
    assert torch.all(a.triu(diagonal=1) == 0)  # nobody looks ahead


def test_context_longer_than_block_size_is_refused():
    with pytest.raises(ValueError, match="block_size"):
        tiny()(tokens(T=17))


def test_output_head_is_tied_to_the_embedding():
    model = tiny()
    assert model.lm_head.weight is model.tok_emb.weight


def test_residual_projections_start_smaller():
    model = GPT(GPTConfig(vocab_size=512, n_layer=8, n_embd=256, n_head=4))
    std = {n: p.std().item() for n, p in model.named_parameters()}
    assert std["blocks.0.attn.qkv.weight"] == pytest.approx(0.02, rel=0.05)
    assert std["blocks.0.mlp.down.weight"] == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert std["norm.weight"] == 0.0  # RMSNorm gains start at exactly 1


# ----------------------------------------------------------------------------- parameters


def hand_count(V, d, L, h):
    per_layer = 4 * d * d + 3 * d * h + 2 * d  # q,k,v,out + gate,up,down + two RMSNorm gains
    return V * d + L * per_layer + d  # tied embedding/head counted once, + final norm


@pytest.mark.parametrize("cfg", [TINY, dict(vocab_size=300, n_layer=3, n_head=4, n_embd=48, mlp_hidden=100)])
def test_parameter_count_matches_the_hand_formula(cfg):
    model = GPT(GPTConfig(**cfg))
    c = model.config
    assert model.num_params() == hand_count(c.vocab_size, c.n_embd, c.n_layer, c.mlp_hidden)
    assert model.num_params(exclude_embeddings=True) == model.num_params() - c.vocab_size * c.n_embd
    breakdown = model.param_breakdown()
    assert sum(breakdown.values()) == model.num_params()
    assert breakdown["attention (q, k, v, out)"] == c.n_layer * 4 * c.n_embd ** 2
    assert breakdown["MLP (SwiGLU)"] == c.n_layer * 3 * c.n_embd * c.mlp_hidden


# ----------------------------------------------------------------------------- loss masking


def test_loss_mask_averages_over_masked_positions_only():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 0, 0, 0]])
    per_token = torch.nn.functional.cross_entropy(logits.view(-1, 7), targets.view(-1), reduction="none").view(2, 5)
    expected = per_token[mask.bool()].mean()
    torch.testing.assert_close(cross_entropy_loss(logits, targets, mask), expected)
    # The same as marking the unmasked targets -100, and as passing a bool mask.
    ignored = targets.masked_fill(mask == 0, -100)
    torch.testing.assert_close(cross_entropy_loss(logits, ignored), expected)
    torch.testing.assert_close(cross_entropy_loss(logits, targets, mask.bool()), expected)
    # An all-ones mask is no mask; -100 targets are ignored even where the mask is 1.
    torch.testing.assert_close(cross_entropy_loss(logits, targets, torch.ones_like(mask)), per_token.mean())
    torch.testing.assert_close(cross_entropy_loss(logits, ignored, torch.ones_like(mask)), expected)
    # Nothing to train on: loss 0, not NaN.
    assert cross_entropy_loss(logits, targets, torch.zeros_like(mask)).item() == 0.0
    with pytest.raises(ValueError, match="shape"):
        cross_entropy_loss(logits, targets, mask[:, :3])


def test_masked_tokens_get_no_gradient_signal():
    model = tiny()
    x = tokens(B=1, T=8)
    y = tokens(B=1, T=8, seed=2)
    mask = torch.zeros_like(y)
    mask[0, -1] = 1
    _, loss = model(x, y, loss_mask=mask)
    # Changing targets outside the mask changes nothing.
    y2 = y.clone()
    y2[0, :-1] = (y2[0, :-1] + 1) % 61
    _, loss2 = model(x, y2, loss_mask=mask)
    assert loss.item() == loss2.item()


def test_a_tiny_model_overfits_a_tiny_batch():
    model = tiny(seed=3).train()
    x = tokens(B=4, T=16, seed=4)
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        _, loss = model(x, y)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 3.5 and loss.item() < 0.5


# ----------------------------------------------------------------------------- RoPE and the KV cache


def test_rope_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(head_dim=8, max_len=64)
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(m, n):
        return (rope(q, start=m) * rope(k, start=n)).sum().item()
    assert score(10, 7) == pytest.approx(score(40, 37), abs=1e-4)
    assert score(5, 5) == pytest.approx((q * k).sum().item(), abs=1e-5)  # same position: no net rotation
    assert score(10, 7) != pytest.approx(score(10, 2), abs=1e-3)
    torch.testing.assert_close(rope(q, 13).norm(), q.norm())  # a rotation keeps lengths


def test_cached_forward_matches_the_full_forward():
    model = tiny()
    x = tokens(B=2, T=16)
    full, _ = model(x)
    cache = model.new_kv_cache()
    parts = [model(x[:, :5], kv_cache=cache)[0], model(x[:, 5:6], kv_cache=cache)[0],
             model(x[:, 6:13], kv_cache=cache)[0], model(x[:, 13:], kv_cache=cache)[0]]
    assert cache.pos == 16
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    # The explicit attention path uses the cache the same way.
    cache = KVCache(model.config.n_layer, model.config.block_size)
    model(x[:, :10], kv_cache=cache)
    tail, _, att = model(x[:, 10:], kv_cache=cache, return_attention=True)
    torch.testing.assert_close(tail, full[:, 10:], atol=1e-5, rtol=1e-5)
    assert att[0].shape == (2, 2, 6, 16)
    with pytest.raises(ValueError, match="block_size"):
        model(x[:, :1], kv_cache=cache)


@torch.no_grad()  # as generation runs (with gradients on, RMSNorm takes its training path)
def test_decode_step_is_bitwise_the_cached_forward():
    model = tiny(seed=3)
    for B, pad in ((1, None), (3, None), (3, torch.tensor([0, 4, 2]))):
        x, nxt = tokens(B=B, T=9), tokens(B=B, T=1, seed=2)
        a, b = model.new_kv_cache(), model.new_kv_cache()
        a.set_padding(pad)
        b.set_padding(pad)
        model(x, kv_cache=a)
        model(x, kv_cache=b)
        for _ in range(3):  # a few steps, so the positions and the cache move on
            slow = model(nxt, kv_cache=a)[0][:, -1]
            fast = model.decode_step(nxt, b)
            assert torch.equal(fast, slow) and a.pos == b.pos
            nxt = slow.argmax(-1, keepdim=True)
    with pytest.raises(ValueError, match="one token"):
        model.decode_step(tokens(B=1, T=2), model.new_kv_cache())


def test_decode_step_stands_in_for_forward_only_on_the_plain_model():
    model = tiny()
    assert model.decode_step_applies()

    class Wrapped(torch.nn.Linear):  # e.g. a LoRA layer: forward sees it, decode_step would not
        def forward(self, x):
            return super().forward(x) * 2

    wrapped = Wrapped(TINY["n_embd"], 3 * TINY["n_embd"], bias=False)
    model.blocks[1].attn.qkv = wrapped
    assert not model.decode_step_applies()
    hooked = tiny()
    handle = hooked.norm.register_forward_hook(lambda *args: None)
    assert not hooked.decode_step_applies()
    handle.remove()
    assert hooked.decode_step_applies()
    assert not tiny(dropout=0.1).train().decode_step_applies() and tiny(dropout=0.1).eval().decode_step_applies()


def test_left_padding_in_the_cache_gives_each_row_its_own_logits():
    model = tiny(seed=4)
    rows = [[5, 6, 7, 8, 9], [3, 4], [1, 2, 3]]
    cache = model.new_kv_cache()
    cache.set_padding(torch.tensor([0, 3, 2]))
    padded = torch.tensor([[0] * (5 - len(r)) + r for r in rows])
    logits, _ = model(padded, kv_cache=cache)
    nxt, _ = model(torch.tensor([[10], [11], [12]]), kv_cache=cache)
    for i, r in enumerate(rows):
        alone, _ = model(torch.tensor([r + [10 + i]]))
        torch.testing.assert_close(logits[i, -1], alone[0, -2], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(nxt[i, -1], alone[0, -1], atol=1e-5, rtol=1e-5)
    # The explicit attention path applies the same mask: no weight on a padding column.
    fresh = model.new_kv_cache()
    fresh.set_padding(torch.tensor([0, 3, 2]))
    _, _, att = model(padded, kv_cache=fresh, return_attention=True)
    assert att[0][1, :, 3:, :3].abs().max() == 0 and att[0][2, :, 2:, :2].abs().max() == 0


def test_cache_keeps_rows_forgets_shared_padding_and_grows():
    model = tiny(seed=5)
    x = tokens(B=3, T=6)
    cache = model.new_kv_cache()
    cache.set_padding(torch.tensor([1, 3, 2]))
    model(x, kv_cache=cache)
    assert cache.k[0].size(2) < model.config.block_size + 64  # allocated as needed, not block_size at once
    cache.keep_rows(torch.tensor([2, 1]))  # both remaining rows start with >= 2 padding columns: dropped
    assert cache.pos == 4 and cache.pad.tolist() == [0, 1] and cache.k[0].size(0) == 2
    step, _ = model(tokens(B=2, T=1, seed=3), kv_cache=cache)
    full = model.new_kv_cache()
    full.set_padding(torch.tensor([1, 3, 2]))
    model(x, kv_cache=full)
    expect, _ = model(tokens(B=2, T=1, seed=3)[[0, 1, 0]], kv_cache=full)  # kept rows 2, 1 got tokens 0, 1
    torch.testing.assert_close(step[:, -1], expect[[2, 1], -1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="padding"):
        cache.drop_front(1)  # row 0 has no padding left
    for n in range(model.config.block_size - cache.pos):  # fill it up: it grows to block_size, then refuses
        model(tokens(B=2, T=1, seed=n), kv_cache=cache)
    assert cache.pos == model.config.block_size == cache.k[0].size(2)
    with pytest.raises(ValueError, match="block_size"):
        model(tokens(B=2, T=1), kv_cache=cache)


# ----------------------------------------------------------------------------- checkpoints


def test_save_and_load_a_stage_gives_identical_logits():
    model = tiny(seed=5)
    stages.save_stage("base", save_model_files(model), meta=model_meta(model))
    stage = stages.load_stage("base")
    assert stage.model_config == model.config.to_dict()
    again = model_from_stage(stage, device="cpu")
    assert again.lm_head.weight is again.tok_emb.weight  # still tied after loading
    x = tokens()
    assert torch.equal(again(x)[0], model(x)[0])


def test_weight_names_and_shapes_are_those_of_saved_stages():
    # Saved stages hold these tensors; a renamed or reshaped weight would orphan every checkpoint.
    model = tiny()
    C, F, V = TINY["n_embd"], model.config.mlp_hidden, TINY["vocab_size"]
    expected = {"tok_emb.weight": (V, C), "lm_head.weight": (V, C), "norm.weight": (C,)}
    for i in range(TINY["n_layer"]):
        expected.update({f"blocks.{i}.attn_norm.weight": (C,), f"blocks.{i}.attn.qkv.weight": (3 * C, C),
                         f"blocks.{i}.attn.proj.weight": (C, C), f"blocks.{i}.mlp_norm.weight": (C,),
                         f"blocks.{i}.mlp.gate.weight": (F, C), f"blocks.{i}.mlp.up.weight": (F, C),
                         f"blocks.{i}.mlp.down.weight": (C, F)})
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


def test_loading_into_a_different_shape_raises_a_clear_error():
    model = tiny(seed=5)
    stages.save_stage("base", save_model_files(model), meta=model_meta(model))
    stage = stages.load_stage("base")
    wider = GPT(GPTConfig(**{**TINY, "n_embd": 64}))
    with pytest.raises(stages.StageMismatchError, match="shape"):
        stage.load_weights(wider)
    deeper = GPT(GPTConfig(**{**TINY, "n_layer": 3}))
    with pytest.raises(stages.StageMismatchError, match="lacks tensors"):
        stage.load_weights(deeper)
    stages.save_stage("base", save_model_files(model), meta={})
    with pytest.raises(stages.StageMismatchError, match="model_config"):
        model_from_stage(stages.load_stage("base"))


def test_plot_attention_draws_one_panel_per_head():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_utils.plots import plot_attention

    _, _, attentions = tiny()(tokens(B=1, T=5), return_attention=True)
    fig = plot_attention(attentions[0], tokens=list("abcde"), title="layer 0")
    assert len(fig.axes) == 2 + 1  # two heads and a colour bar
    fig2, ax = plt.subplots()
    assert plot_attention(attentions[0][0, 1], ax=ax) is fig2
    with pytest.raises(ValueError, match="shape"):
        plot_attention(torch.ones(5))
    plt.close("all")


def test_hand_written_rmsnorm_gradient_matches_autograd():
    from course_utils.model import _RMSNormFunction

    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: _RMSNormFunction.apply(x, w, 1e-5), (x, weight))
