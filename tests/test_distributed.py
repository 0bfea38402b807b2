"""Data parallelism through the one training loop: 2 processes x B/2 rows train exactly like
1 process x B rows, gradient accumulation is the single-process equivalent, and a dying worker
is reported (which rank, why) instead of hanging."""
import json
import time
from dataclasses import asdict

import pytest
import torch
import torch.multiprocessing as mp

from course_utils import distributed
from course_utils.distributed import Job, WorkerFailed, launch, run_job, weight_difference, spawn_entry

# A small model on a seeded random token stream: no stages needed.
SHAPE = dict(vocab_size=64, block_size=32, n_layer=2, n_head=2, n_embd=32)


def job(tmp_path, name, **kw):
    base = dict(model=SHAPE, out_dir=str(tmp_path / name), steps=10, batch_size=8, lr=3e-3, warmup_steps=2,
                data="random")
    return Job(**{**base, **kw})


def losses(out_dir):
    result = json.loads((out_dir / distributed.RESULT_FILE).read_text())
    return [h["train_loss"] for h in result["history"]], result


def test_two_processes_with_half_the_batch_match_one_process(tmp_path):
    torch.set_num_threads(1)
    start = time.perf_counter()
    run_job(job(tmp_path, "one"))  # 1 process x 8 rows
    two = job(tmp_path, "two", batch_size=4)  # 2 processes x 4 rows: the same global batch of 8
    mp.spawn(spawn_entry, args=(2, str(tmp_path / "rendezvous"), asdict(two)), nprocs=2, join=True)
    assert time.perf_counter() - start < 60
    one_losses, one = losses(tmp_path / "one")
    two_losses, two_result = losses(tmp_path / "two")
    assert two_result["world_size"] == 2 and two_result["threads"] == 1
    assert len(two_losses) == 10
    assert two_losses == pytest.approx(one_losses, abs=1e-5)
    assert [h["tokens"] for h in two_result["history"]] == [h["tokens"] for h in one["history"]]
    assert weight_difference(tmp_path / "one", tmp_path / "two")["max"] <= 1e-5
    assert two_result["allreduce_bytes"] == 4 * sum(p.numel() for p in _model().parameters())
    assert two_result["allreduce_seconds"] > 0


def test_gradient_accumulation_is_the_single_process_equivalent(tmp_path):
    run_job(job(tmp_path, "whole", steps=4))
    run_job(job(tmp_path, "halves", steps=4, batch_size=4, grad_accum=2))
    assert losses(tmp_path / "halves")[0] == pytest.approx(losses(tmp_path / "whole")[0], abs=1e-5)
    assert weight_difference(tmp_path / "whole", tmp_path / "halves")["max"] <= 1e-5
    run_job(job(tmp_path, "other_seed", steps=4, seed=1))  # the comparison can fail
    assert weight_difference(tmp_path / "whole", tmp_path / "other_seed")["max"] > 1e-3
    # In float64 the two orders of summation agree to float64 rounding: nothing else differs.
    run_job(job(tmp_path, "whole64", steps=4, dtype="float64"))
    run_job(job(tmp_path, "halves64", steps=4, batch_size=4, grad_accum=2, dtype="float64"))
    assert weight_difference(tmp_path / "whole64", tmp_path / "halves64")["max"] <= 1e-10


def test_a_job_leaves_the_thread_setting_as_it_found_it(tmp_path):
    before = torch.get_num_threads()
    result = run_job(job(tmp_path, "threads", steps=2, threads=2))
    assert result["threads"] == 2 and torch.get_num_threads() == before
    assert result["tokens_per_s"] > 0


def test_helpers_do_nothing_without_a_process_group():
    assert not distributed.active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    batch = (torch.arange(6).view(3, 2), torch.ones(3, 2))
    assert distributed.my_rows(batch) is batch
    assert distributed.mean(2.5) == 2.5 and distributed.any_of(False) is False


def test_a_dying_worker_is_reported_by_rank_and_reason(tmp_path, capsys):
    bad = job(tmp_path, "dies", steps=6, batch_size=4, fail_rank=1, fail_step=2)
    start = time.perf_counter()
    with pytest.raises(WorkerFailed) as failure:
        launch(bad, nproc=2, timeout_s=120, echo=False)
    assert time.perf_counter() - start < 120  # reported, not hung until the timeout
    message = str(failure.value)
    assert message.startswith("rank 1 failed")
    assert "on purpose" in message and "RuntimeError" in message


def test_a_hanging_run_is_stopped_at_the_timeout(tmp_path):
    with pytest.raises(WorkerFailed, match="did not finish within"):
        launch(job(tmp_path, "slow", steps=10_000, batch_size=4), nproc=2, timeout_s=3, echo=False)


def _model():
    from course_utils.model import GPT, GPTConfig

    return GPT(GPTConfig(**SHAPE))


def test_sharding_splits_every_tensor_of_a_batch(monkeypatch):
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    x, y = torch.arange(8).view(4, 2), torch.arange(8, 16).view(4, 2)
    mine_x, mine_y = distributed.my_rows((x, y))
    assert mine_x.tolist() == [[4, 5], [6, 7]] and mine_y.tolist() == [[12, 13], [14, 15]]
    assert distributed.my_rows({"x": x})["x"].tolist() == [[4, 5], [6, 7]]
    with pytest.raises(ValueError, match="evenly"):
        distributed.my_rows(torch.zeros(3, 2))
