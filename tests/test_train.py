"""The one training loop: schedule, decay groups, accumulation, NaN stop, exact resume, checkpoints."""
import json
import math

import pytest
import torch
from torch import nn

from course_utils.model import GPT, GPTConfig
from course_utils.train import (CKPT_MODEL, CKPT_OPTIM, CKPT_STATE, CheckpointMismatchError, TrainConfig,
                                TrainingDiverged, decay_groups, evaluate, lr_at, train)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine two threads
    spinning for each small op can be many times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(seed=0, dropout=0.0, n_embd=16, vocab=32, block=16):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=2, n_embd=n_embd, dropout=dropout))


def periodic_stream(n=4000, period=11, vocab=32):
    """A token stream whose next token is fully determined by the current one: easy to learn."""
    return torch.arange(n) % period % vocab


class WindowBatches:
    """Random windows of a token stream; each row is drawn separately, so 2 x B/2 rows = 1 x B rows."""

    def __init__(self, stream, block=16):
        self.stream, self.block = stream, block
        n_val = len(stream) // 10
        self.data = {"train": stream[n_val:], "val": stream[:n_val]}

    def __call__(self, split, batch_size, gen):
        data = self.data[split]
        starts = [int(torch.randint(len(data) - self.block - 1, (1,), generator=gen)) for _ in range(batch_size)]
        x = torch.stack([data[s:s + self.block] for s in starts])
        y = torch.stack([data[s + 1:s + self.block + 1] for s in starts])
        return x, y


def random_batches():
    gen_data = torch.Generator().manual_seed(5)
    return WindowBatches(torch.randint(0, 32, (4000,), generator=gen_data))


def quick_cfg(**kw):
    base = dict(max_steps=12, batch_size=4, lr=3e-3, warmup_steps=3, eval_every=4, eval_batches=2, seed=7)
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------------------- schedule and groups

def test_warmup_cosine_schedule_at_hand_checked_steps():
    cfg = TrainConfig(max_steps=110, warmup_steps=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, cfg) == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak
    assert lr_at(4, cfg) == pytest.approx(5e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)  # warmup ends at the peak
    assert lr_at(10, cfg) == pytest.approx(1e-3)  # cosine starts at the peak
    assert lr_at(60, cfg) == pytest.approx(5.5e-4)  # halfway: the mean of peak and floor
    assert lr_at(35, cfg) == pytest.approx(1e-4 + 0.5 * (1 + math.cos(math.pi / 4)) * 9e-4)
    assert lr_at(110, cfg) == pytest.approx(1e-4)
    assert lr_at(500, cfg) == pytest.approx(1e-4)
    assert TrainConfig(lr=2e-3).final_lr == pytest.approx(2e-4)  # default floor: lr / 10


def test_decay_groups_decay_matrices_only():
    model = tiny_model()
    decay, no_decay = decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    plain = {names[id(p)] for p in no_decay["params"]}
    assert decayed == {"blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight", "blocks.0.mlp.gate.weight",
                       "blocks.0.mlp.up.weight", "blocks.0.mlp.down.weight"}
    # norms and the (tied) embedding are not decayed; every parameter is in exactly one group
    assert plain == {"tok_emb.weight", "blocks.0.attn_norm.weight", "blocks.0.mlp_norm.weight", "norm.weight"}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_decay_groups_skip_frozen_and_biases():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    decay, no_decay = decay_groups(model, 0.5)
    assert [p.shape for p in decay["params"]] == [torch.Size([2, 4])]
    assert all(p.dim() == 1 for p in no_decay["params"]) and len(no_decay["params"]) == 4


# ----------------------------------------------------------------------------- the loop

def test_tiny_model_learns_a_tiny_task():
    model = tiny_model()
    batches = WindowBatches(periodic_stream())
    before = evaluate(model, batches, batches=2, batch_size=8)
    result = train(model, batches, TrainConfig(max_steps=80, batch_size=8, lr=1e-2, warmup_steps=5,
                                               eval_every=40, eval_batches=2), progress=False, verbose=False)
    assert before > 3.0  # about ln(32) = 3.47 at random
    assert result.final["val_loss"] < 0.3
    assert len(result.history) == 80 and [h["step"] for h in result.history] == list(range(1, 81))
    assert [h["step"] for h in result.evals] == [40, 80]
    assert result.history[-1]["tokens"] == 80 * 8 * 16
    assert result.final["stopped"] == "max_steps"


def test_compiled_training_matches_plain_training():
    results = []
    for compile_ in (False, True):
        model = tiny_model()
        res = train(model, random_batches(), quick_cfg(max_steps=4, eval_batches=0, compile=compile_),
                    progress=False, verbose=False)
        results.append((res.train_losses, [p.detach().clone() for p in model.parameters()]))
    (loss1, params1), (loss2, params2) = results
    assert loss1 == pytest.approx(loss2, rel=1e-4)
    for a, b in zip(params1, params2):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_a_failed_compile_falls_back_to_plain_training(monkeypatch):
    import course_utils.train as train_module

    class BrokenCompile(nn.Module):
        def forward(self, *args, **kwargs):
            raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(train_module, "_compiled", lambda model: BrokenCompile())
    plain = train(tiny_model(), random_batches(), quick_cfg(max_steps=3, eval_batches=0), progress=False, verbose=False)
    with pytest.warns(UserWarning, match="torch.compile failed.*no C\\+\\+ compiler"):
        res = train(tiny_model(), random_batches(), quick_cfg(max_steps=3, eval_batches=0, compile=True),
                    progress=False, verbose=False)
    assert res.train_losses == plain.train_losses


def test_grad_accumulation_matches_one_big_batch():
    # Sequences in the big batch and in the two half batches are the same (drawn row by row),
    # and the model has no dropout, so the only difference is float rounding.
    results = []
    for batch_size, accum in ((8, 1), (4, 2)):
        model = tiny_model()
        res = train(model, random_batches(), quick_cfg(max_steps=5, batch_size=batch_size, grad_accum=accum,
                                                       eval_batches=0), progress=False, verbose=False)
        results.append((res.train_losses, [p.detach().clone() for p in model.parameters()]))
    (loss1, params1), (loss2, params2) = results
    assert loss1 == pytest.approx(loss2, rel=1e-5)
    for a, b in zip(params1, params2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_nan_loss_stops_with_a_clear_message():
    model = tiny_model()
    calls = {"n": 0}

    def poisoned_loss(model, batch):
        calls["n"] += 1
        x, y = batch
        _, loss = model(x, targets=y)
        return loss * float("nan") if calls["n"] == 4 else loss

    with pytest.raises(TrainingDiverged) as err:
        train(model, random_batches(), quick_cfg(), loss_fn=poisoned_loss, progress=False, verbose=False)
    msg = str(err.value)
    assert "step 4" in msg and "nan" in msg and "last good loss" in msg and "at step 3" in msg
    assert "lower the learning rate" in msg


def test_huge_learning_rate_is_caught():
    model = tiny_model()
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train(model, random_batches(), quick_cfg(lr=1e12, warmup_steps=1, grad_clip=None, max_steps=30),
              progress=False, verbose=False)


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    # Dropout makes the run depend on the global RNG too, which the checkpoint must restore.
    cfg = quick_cfg(max_steps=12, checkpoint_dir=str(tmp_path / "ckpt"))
    full = train(tiny_model(dropout=0.1), random_batches(), cfg, progress=False, verbose=False)

    torch.manual_seed(123)  # an unrelated RNG state between the runs: resume must not depend on it
    first = train(tiny_model(dropout=0.1), random_batches(), cfg, stop_at_step=5, progress=False, verbose=False)
    assert first.final["stopped"] == "stop_at_step" and len(first.history) == 5
    torch.manual_seed(999)
    model = tiny_model(seed=42, dropout=0.1)  # different initial weights: all must come from the checkpoint
    resumed = train(model, random_batches(), cfg, resume=True, progress=False, verbose=False)

    assert resumed.train_losses == full.train_losses  # bitwise equal, every step
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    assert resumed.history[-1]["tokens"] == full.history[-1]["tokens"]


def test_keyboard_interrupt_mid_step_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    cfg = quick_cfg(max_steps=8, grad_accum=2, checkpoint_dir=str(tmp_path / "ckpt"))
    full = train(tiny_model(dropout=0.1), random_batches(), cfg, progress=False, verbose=False)
    source, calls = random_batches(), {"n": 0}

    def interrupted(split, batch_size, gen):
        if split == "train":
            calls["n"] += 1
            if calls["n"] == 10:  # the second micro-batch of step 5: steps 1-4 are done
                raise KeyboardInterrupt
        return source(split, batch_size, gen)

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(dropout=0.1), interrupted, cfg, progress=False, verbose=False)
    assert json.loads((tmp_path / "ckpt" / CKPT_STATE).read_text())["step"] == 4
    resumed = train(tiny_model(seed=3, dropout=0.1), random_batches(), cfg, resume=True, progress=False,
                    verbose=False)
    assert resumed.train_losses == full.train_losses


def test_time_budget_stops_cleanly_and_saves(tmp_path):
    cfg = quick_cfg(max_steps=10_000, time_budget_s=0.0, checkpoint_dir=str(tmp_path / "ckpt"))
    res = train(tiny_model(), random_batches(), cfg, progress=False, verbose=False)
    assert res.final["stopped"] == "time_budget" and res.final["steps"] == 1
    assert res.final["val_loss"] is not None  # evaluated on the way out
    state = json.loads((tmp_path / "ckpt" / CKPT_STATE).read_text())
    assert state["step"] == 1


def test_checkpoint_round_trip(tmp_path):
    cfg = quick_cfg(max_steps=4, checkpoint_dir=str(tmp_path / "ckpt"))
    model = tiny_model()
    res = train(model, random_batches(), cfg, progress=False, verbose=False)
    folder = tmp_path / "ckpt"
    assert res.checkpoint == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([CKPT_MODEL, CKPT_OPTIM, CKPT_STATE])
    # resuming a finished run restores everything and trains no further
    other = tiny_model(seed=9)
    again = train(other, random_batches(), cfg, resume=True, progress=False, verbose=False)
    assert again.train_losses == res.train_losses and again.final["steps"] == 4
    for (n, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), n
    # nothing in a checkpoint needs pickle
    from safetensors.torch import load_file

    tensors = load_file(str(folder / CKPT_OPTIM))
    assert any(k.startswith("optim.") and k.endswith("exp_avg") for k in tensors)
    assert "rng.torch" in tensors and "rng.batches" in tensors


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    cfg = quick_cfg(max_steps=2, checkpoint_dir=str(tmp_path / "ckpt"))
    train(tiny_model(n_embd=16), random_batches(), cfg, progress=False, verbose=False)
    with pytest.raises(CheckpointMismatchError, match=r"different model.*shape \(16, 16\) in the checkpoint, \(32, 32\) in the model"):
        train(tiny_model(n_embd=32), random_batches(), cfg, resume=True, progress=False, verbose=False)
    with pytest.raises(CheckpointMismatchError, match="lr"):
        train(tiny_model(), random_batches(), quick_cfg(max_steps=2, lr=1.0, checkpoint_dir=cfg.checkpoint_dir),
              resume=True, progress=False, verbose=False)
    with pytest.raises(FileNotFoundError, match="No training checkpoint"):
        train(tiny_model(), random_batches(), quick_cfg(checkpoint_dir=str(tmp_path / "none")), resume=True,
              progress=False, verbose=False)


def test_samples_and_extra_evals_do_not_change_the_run():
    def on_sample(model, step):
        torch.rand(100)  # uses the global RNG: must not leak into training
        return f"sample {step}"

    plain = train(tiny_model(dropout=0.1), random_batches(), quick_cfg(), progress=False, verbose=False)
    busy = train(tiny_model(dropout=0.1), random_batches(), quick_cfg(sample_every=3), on_sample=on_sample,
                 on_eval=lambda m, s: {"extra": 1.0}, progress=False, verbose=False)
    assert busy.train_losses == plain.train_losses
    assert [s["step"] for s in busy.samples] == [3, 6, 9, 12]
    assert all(h.get("extra") == 1.0 for h in busy.evals)


def test_masked_batches_use_the_loss_mask():
    base = random_batches()

    def masked(split, batch_size, gen):
        x, y = base(split, batch_size, gen)
        mask = torch.zeros_like(y)
        mask[:, -4:] = 1
        return x, y, mask

    res = train(tiny_model(), masked, quick_cfg(max_steps=3), progress=False, verbose=False)
    assert all(math.isfinite(v) for v in res.train_losses)


def test_live_plot_is_harmless_outside_a_notebook():
    res = train(tiny_model(), random_batches(), quick_cfg(max_steps=2), live_plot=True, progress=False,
                verbose=False)
    assert len(res.history) == 2
