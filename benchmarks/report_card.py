"""How long `make report` takes: ≤ 5 min the first time from existing stages, ≤ 30 s cached
(COURSE_PLAN.md, on 2 cores); prints JSON.

The report card runs twice, each time in a fresh process as `make report` runs it: first with
its cache cleared (every figure evaluated), then again (every figure read back from the cache
beside its stage). Stages that are not built are left out (`--no-build`, so nothing is trained
here) and listed under "not_built".

    COURSE_PROFILE=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/report_card.py
"""
import json
import os
import subprocess
import sys
import time

from course_utils import config, report_card


def timed_run(*flags: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "course_utils.report_card", "--no-build", "--quiet", *flags], check=True,
                   stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 2)


def main() -> dict:
    first = timed_run("--fresh")
    first_card = report_card.load_card()
    cached = timed_run()
    card = report_card.load_card()
    built = report_card.built_stages(card)
    report = {"profile": config.profile(), "cpu_count": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "stages": built, "not_built": [s for s in card["stages"] if s not in built],
              "first_seconds": first, "first_figures_evaluated": first_card["evaluated"],
              "cached_seconds": cached, "cached_figures_evaluated": card["evaluated"],
              "cached_figures_read": card["from_cache"],
              "targets": {"first_seconds": "<= 300", "cached_seconds": "<= 30"},
              "met": {"first": first <= 300, "cached": cached <= 30}}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
