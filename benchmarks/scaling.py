"""Chapter 14's figures, printed as JSON: data-parallel parity and cost, and the scaling law's prediction.

- ``ddp``: chapter 04's model shape (the active profile's, default ``cpu``) trained for 10 steps three
  ways with the same global batch: one process with the whole batch, one process accumulating two
  half batches, two processes under torchrun with half each (gloo, one thread each). Reported: the
  largest absolute difference between the final float32 weights (target <= 1e-5) and how many
  numbers differ by more than 1e-5; the same comparison in float64 (float32 rounding gone); tokens
  per second of one process with every thread, of one thread (the accumulating run), and of two
  processes of one thread each; the time of one all-reduce of every gradient, and its share of a step.
- ``scaling_law``: the sweep of chapter 14 (five widths, the same tokens each), ``L(N) = a N^-alpha + c``
  fitted with N = every parameter and N = without the token table, and the error of each law's
  prediction of the larger check model's held-out loss (target: within 5 %).

    .venv/bin/python benchmarks/scaling.py [--skip-sweep] [--skip-ddp] [--steps 10]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import replace

import torch

from course_utils import config, distributed, scaling, stages
from course_utils.model import default_config
from course_utils.pretrain import prepare_data


def ddp_figures(base, steps: int) -> dict:
    half = config.pick(ci=4, cpu=8, gpu=4)
    out = {"steps": steps, "global_batch": 2 * half, "model_params": scaling.count_params(base).total}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "float64"):
            # One process with every thread and the whole batch; one thread accumulating two halves
            # (one core doing all the work); two processes of one thread with half each.
            job = distributed.Job(model=base.to_dict(), out_dir=f"{tmp}/one-{dtype}", steps=steps, batch_size=2 * half,
                                  dtype=dtype)
            one = distributed.run_job(job)
            accum = distributed.run_job(replace(job, out_dir=f"{tmp}/accum-{dtype}", batch_size=half, grad_accum=2,
                                                threads=1))
            two = distributed.launch(replace(job, out_dir=f"{tmp}/two-{dtype}", batch_size=half), nproc=2, echo=False)
            ddp = distributed.weight_difference(f"{tmp}/one-{dtype}", f"{tmp}/two-{dtype}")
            acc = distributed.weight_difference(f"{tmp}/one-{dtype}", f"{tmp}/accum-{dtype}")
            out[dtype] = {"ddp_max_abs_diff": ddp["max"], "ddp_numbers_above_1e-5": ddp["above"],
                          "accum_max_abs_diff": acc["max"], "accum_numbers_above_1e-5": acc["above"],
                          "numbers": ddp["numbers"]}
            if dtype == "float32":
                out[dtype]["loss_max_abs_diff"] = max(abs(a["train_loss"] - b["train_loss"])
                                                      for a, b in zip(one["history"], two["history"]))
                step_s = out["global_batch"] * base.block_size / two["tokens_per_s"]
                one_core = accum["tokens_per_s"]
                out["speed"] = {
                    "one_process_one_thread_tokens_per_s": one_core,
                    f"one_process_{one['threads']}_threads_tokens_per_s": one["tokens_per_s"],
                    "two_processes_one_thread_tokens_per_s": two["tokens_per_s"],
                    "threads_speedup_over_one_core": round(one["tokens_per_s"] / one_core, 3),
                    "ddp_speedup_over_one_core": round(two["tokens_per_s"] / one_core, 3),
                    "ddp_speedup_over_threads": round(two["tokens_per_s"] / one["tokens_per_s"], 3),
                    "allreduce_bytes": two["allreduce_bytes"],
                    "allreduce_ms": round(two["allreduce_seconds"] * 1e3, 3),
                    "allreduce_share_of_step": round(two["allreduce_seconds"] / step_s, 4)}
    out["target_ddp_max_abs_diff"] = 1e-5
    out["met"] = out["float32"]["ddp_max_abs_diff"] <= 1e-5
    return out


def sweep_figures(base, tokenizer) -> dict:
    shapes, bigger = scaling.sweep_shapes(base), scaling.check_shape(base)
    cfg = scaling.sweep_config()
    data, _ = prepare_data(tokenizer, bigger.block_size)
    start = time.perf_counter()
    runs = [scaling.train_size(s, data, cfg, progress=False) for s in shapes]
    check = scaling.train_size(bigger, data, cfg, progress=False)
    losses = [r.val_loss for r in runs]
    out = {"widths": [r.n_embd for r in runs], "check_width": check.n_embd, "tokens_per_model": check.tokens,
           "losses": [round(v, 4) for v in losses], "check_loss": round(check.val_loss, 4),
           "seconds": round(time.perf_counter() - start, 1)}
    for name, n, n_check in (("every_parameter", [r.params for r in runs], check.params),
                             ("non_embedding", [r.non_embedding_params for r in runs], check.non_embedding_params)):
        law = scaling.fit_power_law(n, losses)
        out[name] = {"a": law.a, "alpha": round(law.alpha, 4), "c": round(law.c, 4),
                     "predicted": round(float(law(n_check)), 4),
                     "error_pct": round(100 * scaling.prediction_error(law, n_check, check.val_loss), 2)}
    out["target_error_pct"] = 5.0
    out["met"] = abs(out["every_parameter"]["error_pct"]) <= 5.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    config.seed_everything()
    tokenizer = stages.ensure_stage("tokenizer").tokenizer()
    base = default_config(tokenizer.vocab_size)
    # Other programs on the machine move every speed figure: the load average says how busy it was.
    report = {"profile": config.profile(), "torch_threads": torch.get_num_threads(), "cores": os.cpu_count(),
              "load_average_at_start": round(os.getloadavg()[0], 2),
              "matmul_gflops": round(scaling.measure_matmul_flops() / 1e9, 1)}
    with contextlib.redirect_stdout(sys.stderr):  # the runs' logs; stdout is for the JSON alone
        if not args.skip_ddp:
            report["ddp"] = ddp_figures(base, args.steps)
        if not args.skip_sweep:
            report["scaling_law"] = sweep_figures(base, tokenizer)
    report["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
