"""Chapter 01's cleaning pipeline: quality against the crawl's hidden labels, and speed.

    COURSE_PROFILE=cpu .venv/bin/python benchmarks/cleaning.py [--seed N]

Prints JSON: pages in, documents out, and for each filter its precision, recall and seconds in
the active profile. Thresholds are fixed in course_utils/cleaning.py; nothing here is tuned.
Targets (cpu profile): near-duplicate and spam precision and recall ≥ 0.95, PII recall ≥ 0.99.
Another --seed gives a fresh world the thresholds were never looked at with.

Every figure is measured against the labels alone: for the dedup filters, a removed page is right
when it is a labelled copy of a page that reached that filter (see cleaning.score_against_labels).
"""
from __future__ import annotations

import argparse
import json
import time

from course_utils import cleaning, config, world

TARGETS = {"near_dup": {"precision": 0.95, "recall": 0.95},
           "spam": {"precision": 0.95, "recall": 0.95},
           "pii": {"recall": 0.99}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    args = parser.parse_args()

    start = time.perf_counter()
    w = world.build_world(args.seed)
    pages = world.crawl(w)
    generate_s = time.perf_counter() - start
    crawl_bytes = sum(len(p.html.encode("utf-8")) if isinstance(p.html, str) else len(p.html) for p in pages)

    start = time.perf_counter()
    report = cleaning.clean_crawl(pages)
    clean_s = time.perf_counter() - start
    scores = cleaning.score_against_labels(report, pages)

    keys = ("precision", "recall", "seconds", "flagged", "actual", "pages_in")
    filters = {row["filter"]: {k: row[k] for k in keys if k in row} for row in scores}
    met = {name: all(filters[name][k] >= v for k, v in want.items()) for name, want in TARGETS.items()}
    print(json.dumps({
        "benchmark": "cleaning",
        "profile": config.profile(),
        "seed": args.seed,
        "pages_in": len(pages),
        "crawl_megabytes": round(crawl_bytes / 1e6, 2),
        "documents_out": len(report.kept),
        "seconds": {"generate_crawl": round(generate_s, 2), "clean_total": round(clean_s, 2),
                    "extract": round(report.seconds.get("extract", 0.0), 3)},
        "filters": filters,
        "targets": TARGETS,
        "targets_met": met,
    }, indent=2))


if __name__ == "__main__":
    main()
