"""Scaling arithmetic: parameter and FLOP counts by hand, the power-law fitter, costs, memory, the sweep."""
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_utils import scaling
from course_utils.model import GPT, GPTConfig

# vocab 32, d 16, 1 layer, 2 heads, context 16; SwiGLU hidden = 64 * ceil(8 * 16 / 3 / 64) = 64.
TINY = GPTConfig(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=16)


def test_parameter_count_by_hand_and_against_the_model():
    p = scaling.count_params(TINY)
    assert TINY.mlp_hidden == 64
    assert p.embedding == 32 * 16 == 512  # tied: the output head adds nothing
    assert p.attention == 4 * 16 * 16 == 1024
    assert p.mlp == 3 * 16 * 64 == 3072
    assert p.norms == 3 * 16 == 48  # two per layer and the final one
    assert p.total == 4656 and p.non_embedding == 4144
    model = GPT(TINY)
    assert p.total == model.num_params()
    assert p.non_embedding == model.num_params(exclude_embeddings=True)


def test_flops_per_token_by_hand():
    f = scaling.flops_per_token(TINY)
    # Per token, 2 FLOPs per multiply-add: qkv 16x48 and out 16x16 = 1024 weights -> 2048;
    # q.k over 16 keys of 16 dims plus the weighted sum of 16 values of 16 dims = 512 -> 1024;
    # SwiGLU 3 x 16 x 64 = 3072 -> 6144; output head 16 x 32 = 512 -> 1024.
    assert (f.attention_proj, f.attention_scores, f.mlp, f.head) == (2048, 1024, 6144, 1024)
    assert f.forward == 10240 and f.training == 30720
    assert scaling.flops_per_token(TINY, context=4).attention_scores == 256
    assert scaling.training_flops(TINY, 1000) == 30720 * 1000


def test_flop_counter_agrees_with_pytorch_counting_the_same_products():
    """PyTorch's FlopCounterMode counts the matrix products it runs. The explicit attention path
    (return_attention=True) computes the scores with plain matmuls, so every product is counted."""
    torch.manual_seed(0)
    model = GPT(TINY)
    x = torch.randint(0, 32, (3, 16))
    with FlopCounterMode(display=False) as counter:
        model(x, return_attention=True)
    assert counter.get_total_flops() == scaling.flops_per_token(TINY).forward * x.numel()
    with FlopCounterMode(display=False) as counter:
        _, loss, _ = model(x, targets=x, return_attention=True)
        loss.backward()
    assert counter.get_total_flops() == scaling.flops_per_token(TINY).training * x.numel()


def test_six_nd_misses_the_attention_and_counts_the_head_only_through_the_tied_table():
    f = scaling.flops_per_token(TINY)
    p = scaling.count_params(TINY)
    # 6 N with N = every parameter except the norms is exactly the matrix work; attention is extra.
    assert 6 * (p.total - p.norms) == f.training - 3 * f.attention_scores
    assert scaling.six_nd(p.total, 10) == 6 * p.total * 10


@pytest.mark.parametrize("alpha,c", [(0.35, 1.7), (0.08, 0.0), (0.6, 3.0)])
def test_fitter_recovers_a_known_law(alpha, c):
    n = np.geomspace(1e4, 1e7, 6)
    true = scaling.PowerLaw(a=40.0, alpha=alpha, c=c)
    law = scaling.fit_power_law(n, true(n))
    assert law.alpha == pytest.approx(alpha, rel=2e-2)
    assert law.c == pytest.approx(c, abs=2e-2)
    assert law(1e8) == pytest.approx(true(1e8), rel=1e-2)  # and so extrapolates


def test_fitter_with_noise_still_finds_the_exponent():
    rng = np.random.default_rng(0)
    n = np.geomspace(3e4, 3e5, 5)
    true = scaling.PowerLaw(a=60.0, alpha=0.3, c=2.0)
    noisy = true(n) * (1 + 0.002 * rng.standard_normal(n.shape))
    law = scaling.fit_power_law(n, noisy)
    assert law.alpha == pytest.approx(0.3, abs=0.1)
    assert scaling.prediction_error(law, 6e5, float(true(6e5))) == pytest.approx(0.0, abs=0.01)


def test_fitter_fixed_floor_is_a_straight_line_in_log_log():
    n = np.array([1e3, 1e4, 1e5])
    law = scaling.fit_power_law(n, 5.0 * n ** -0.2, c=0.0)
    assert (law.a, law.alpha, law.c) == pytest.approx((5.0, 0.2, 0.0))
    with pytest.raises(ValueError):
        scaling.fit_power_law([1, 2], [3, 2])


def test_training_cost_arithmetic():
    h100 = scaling.GPUS["H100"]
    cost = scaling.training_cost(1e9, 2e10, peak_flops=h100.peak_flops, mfu=0.5, gpus=8, usd_per_gpu_hour=2.0,
                                 watts_per_gpu=h100.watts)
    assert cost["flops"] == 1.2e20
    assert cost["gpu_hours"] == pytest.approx(1.2e20 / (989e12 * 0.5) / 3600)
    assert cost["days"] == pytest.approx(cost["gpu_hours"] / 8 / 24)
    assert cost["usd"] == pytest.approx(2 * cost["gpu_hours"])
    assert cost["mwh"] == pytest.approx(cost["gpu_hours"] * 700 / 1e6)


def test_public_figures_agree_with_six_nd_where_both_are_reported():
    for name in ("GPT-3 175B", "Llama 3.1 405B"):
        m = scaling.PUBLIC_MODELS[name]
        assert scaling.six_nd(m.params, m.tokens) == pytest.approx(m.reported_flops, rel=0.05), name
        assert m.source
    assert all(m.gpu is None or m.gpu in scaling.GPUS for m in scaling.PUBLIC_MODELS.values())


def test_memory_of_a_7b_model():
    parts = scaling.training_memory(scaling.LLAMA2_7B, seq_len=4096, micro_batch=1)
    assert parts["weights"] + parts["gradients"] + parts["optimizer"] == 16 * scaling.LLAMA2_7B.params
    assert parts["activations"] == 32 * 4096 * 4096 * 34
    no_flash = scaling.training_memory(scaling.LLAMA2_7B, flash_attention=False)
    assert no_flash["activations"] == 32 * 4096 * 4096 * (34 + 5 * 32)
    assert scaling.training_memory(scaling.LLAMA2_7B, recompute=True)["activations"] == 32 * 2 * 4096 * 4096
    z3 = scaling.sharded_memory(parts, gpus=8, zero_stage=3)
    assert z3["weights"] == parts["weights"] / 8 and z3["activations"] == parts["activations"]
    z1 = scaling.sharded_memory(parts, gpus=8, zero_stage=1)
    assert z1["optimizer"] == parts["optimizer"] / 8 and z1["gradients"] == parts["gradients"]
    tp = scaling.sharded_memory(parts, tensor=4, pipeline=2)
    assert tp["weights"] == parts["weights"] / 8


def test_compute_optimal_follows_the_20_tokens_rule():
    params, tokens = scaling.compute_optimal(6 * 20 * 1e9 ** 2)
    assert params == pytest.approx(1e9) and tokens == pytest.approx(2e10)


def test_sweep_shapes_grow_in_width_only():
    from course_utils.model import default_config

    base = default_config(512)
    shapes = scaling.sweep_shapes(base)
    assert len(shapes) == 5
    widths = [s.n_embd for s in shapes]
    assert widths == sorted(set(widths))
    big = scaling.check_shape(base)
    assert big.n_embd > widths[-1]
    for s in shapes + [big]:
        assert (s.n_layer, s.vocab_size, s.block_size) == (base.n_layer, base.vocab_size, base.block_size // 2)
        assert s.n_embd % s.n_head == 0 and s.head_dim % 2 == 0
    sizes = [scaling.count_params(s).non_embedding for s in shapes + [big]]
    assert sizes == sorted(sizes)


def test_train_size_reports_what_it_trained():
    from course_utils.pretrain import TokenWindows

    ids = torch.arange(3000) % 7
    data = TokenWindows(ids[300:], ids[:300], 8)
    shape = GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=1, n_embd=8)
    cfg = scaling.sweep_config(max_steps=30, batch_size=4, lr=1e-2, warmup_steps=2, eval_batches=2, num_threads=2)
    threads = torch.get_num_threads()
    run = scaling.train_size(shape, data, cfg, progress=False)
    assert torch.get_num_threads() == threads  # the run's thread setting does not outlive it
    assert run.tokens == 30 * 4 * 8
    assert run.flops == scaling.training_flops(shape, run.tokens)
    assert run.params == GPT(shape).num_params()
    assert run.val_loss < math.log(16) - 0.5  # a periodic stream is learnt
