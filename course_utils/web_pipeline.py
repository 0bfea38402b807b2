"""Chapter 01's cleaning pipeline on datatrove, the library Hugging Face built FineWeb with.

``cleaning.clean_crawl`` holds every page in one process's memory. Real crawls are billions of
pages, so real pipelines are cut into *stages*, each run as many independent *tasks* that each
read a share of the files and write their results to disk for the next stage. datatrove does
exactly that: a pipeline is a list of steps (reader, extractor, filters, formatters, writer);
an executor runs it as N tasks on this machine (``LocalPipelineExecutor``) or as N jobs on a
Slurm cluster (``SlurmPipelineExecutor``) with the same steps, unchanged.

The course's filters become datatrove steps here, with no logic of their own: each calls the
function in ``cleaning`` that ``clean_crawl`` calls. The stages:

1. ``filter``      (N tasks)  WARC pages -> extract -> language -> spam -> quality -> disk
2. ``exact dedup`` signatures (N) -> find duplicates (1) -> drop them (N)       [datatrove's steps]
3. ``near dedup``  MinHash signatures (N) -> LSH buckets (one task per band) -> clusters (1)
                   -> drop all but one of each cluster, redact PII, write the corpus (N)

Deduplication is global (a copy can be in any task's share), which is why it takes several
stages: every task writes hashes, one pass compares them all, every task then drops its own
copies. Which copy survives is decided by a priority: the earlier page in the crawl, as in
``clean_crawl``.

Needs the course's web extra (``pip install -e '.[web]'``): datatrove, warcio, orjson, xxhash.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import cleaning

try:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.base import PipelineStep
    from datatrove.pipeline.dedup import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                          MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.dedup.exact_dedup import (ExactDedupConfig, ExactDedupFilter, ExactDedupSignature,
                                                      ExactFindDedups)
    from datatrove.pipeline.extractors.base import BaseExtractor
    from datatrove.pipeline.filters.base_filter import BaseFilter
    from datatrove.pipeline.formatters.base import BaseFormatter
    from datatrove.pipeline.readers.base import BaseDiskReader
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig
    from datatrove.utils.word_tokenizers import WordTokenizer
except ImportError as error:  # the course runs without the web extra; only this module needs it
    raise ImportError("course_utils.web_pipeline needs datatrove (and warcio, orjson, xxhash): "
                      "pip install -e '.[web]'  (in Colab: %pip install datatrove warcio orjson xxhash)") from error

TASKS = 2  # two tasks, as two workers on a 2-core laptop; a cluster would use thousands
# MinHash as datatrove runs it: 5-word shingles like the course's, BANDS bands of ROWS rows.
# datatrove has no second check of a candidate pair: sharing one band makes two pages
# near-duplicates. Its S-curve must therefore do the work of the course's threshold on its own:
# 40 bands of 8 rows give 1 - (1 - 0.7**8)**40 = 0.91 at Jaccard 0.7, 0.99 at 0.75, and 0.15 at
# 0.5 (FineWeb's 14 x 8 gives 0.56 at 0.7: fewer hashes, more near-copies kept).
MINHASH_BANDS, MINHASH_ROWS = 40, 8


# ============================================================================ the steps
class ReadWarc(BaseDiskReader):
    """Reads the HTML pages of WARC files with ``cleaning.read_warc``, one file per task.

    Each page keeps its place in the crawl (which file, which position), so deduplication can
    keep the earliest copy, as ``clean_crawl`` does.
    """

    name = "🕷 WARC pages (cleaning.read_warc)"

    def read_file(self, filepath: str):
        shard = int(Path(filepath).name.split(".")[0])  # files are named 00000.warc.gz, 00001.warc.gz, ...
        source = cleaning.read_warc(self.data_folder.resolve_paths(filepath))
        for i, page in enumerate(source):
            html, notes = cleaning.decode_page(page.html, page.charset)
            with self.track_time():
                doc = self.get_document_from_dict({"text": html, "id": page.url, "metadata": {
                    "shard": shard, "position": i, "notes": page.notes + notes}}, filepath, i)
            if doc:
                yield doc
        for problem in source.problems:
            self.stat_update("broken_records")


class ExtractText(BaseExtractor):
    """``cleaning.extract_text``, run the way datatrove runs every extractor: in a separate
    process with a per-page time limit, so one pathological page cannot stall a task."""

    name = "⛏ extract_text"

    def __init__(self, timeout: float = 60.0):
        super().__init__(timeout)

    def extract(self, text: str) -> str:
        return cleaning.extract_text(text)


class LanguageFilter(BaseFilter):
    """``cleaning.identify_language`` + ``language_problem``: keep English and Chinese."""

    name = "🌍 language"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        doc.metadata["language"] = cleaning.identify_language(doc.text)
        return _verdict(doc, "language", cleaning.language_problem(doc.metadata["language"]))


class SpamFilter(BaseFilter):
    """``cleaning.spam_problem``: the hand-weighted spam score."""

    name = "📢 spam"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return _verdict(doc, "spam", cleaning.spam_problem(doc.text))


class QualityFilter(BaseFilter):
    """``cleaning.quality_problem``: the Gopher/C4-style rules."""

    name = "🥇 quality"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        problem = cleaning.quality_problem(doc.text)
        return _verdict(doc, "quality", problem and f"{problem[0]}: {problem[1]}")


def _verdict(doc: Document, step: str, problem: str | None) -> bool | tuple[bool, str]:
    if problem is None:
        return True
    doc.metadata["removed_by"], doc.metadata["reason"] = step, problem  # kept by the exclusion writer
    return False, step


class DedupView(BaseFormatter):
    """``cleaning.dedup_view``: what deduplication compares (contact lines left out)."""

    name = "👓 dedup_view"

    def format(self, text: str) -> str:
        return cleaning.dedup_view(text)


class RedactPII(BaseFormatter):
    """``cleaning.redact_pii``: emails -> <EMAIL>, phone numbers -> <PHONE>."""

    name = "🕵 redact_pii"

    def format(self, text: str) -> str:
        return cleaning.redact_pii(text)


class CourseWords(WordTokenizer):
    """The course's words for MinHash shingles: lower-case words, or characters for Chinese.

    datatrove's own English tokenizer needs NLTK data downloaded at run time (we are offline),
    and ours also handles Chinese the way ``cleaning.shingles`` does.
    """

    def word_tokenize(self, text: str) -> list[str]:
        return list("".join(text.split())) if cleaning.cjk_fraction(text) > 0.3 else text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return text.splitlines()

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError("MinHash needs words only")


def exact_dedup_key(doc: Document) -> bytes:
    """What exact deduplication hashes: the normalised text of its dedup view, as in ``clean_crawl``."""
    return cleaning.normalize(cleaning.dedup_view(doc.text)).encode("utf-8")


def crawl_priority(doc: Document) -> int:
    """Of two exact copies datatrove keeps the higher priority, then the earlier page of a file:
    pages of earlier files come first, so the first copy in the crawl survives."""
    return 65535 - doc.metadata["shard"]


# ============================================================================ the pipeline
@dataclass
class PipelineRun:
    """Where a datatrove run left its results: every stage's output under ``folder``."""

    folder: Path
    stages: dict  # stage name -> {"tasks": n, "seconds": ...}

    def documents(self) -> list[dict]:
        """The clean corpus: one {"id", "lang", "text"} per kept page, in crawl order."""
        docs = _read_jsonl(self.folder / "corpus")
        docs.sort(key=lambda d: (d["metadata"]["shard"], d["metadata"]["position"]))
        return [{"id": d["id"], "lang": d["metadata"]["language"], "text": d["text"]} for d in docs]

    def near_dup_clusters(self) -> dict[str, int]:
        """Page url -> its MinHash cluster, for every page in a cluster of two or more."""
        docs = _read_jsonl(self.folder / "corpus") + _read_jsonl(self.folder / "removed" / "near_dup")
        return {d["id"]: d["metadata"]["minhash_cluster_id"] for d in docs
                if d["metadata"].get("minhash_cluster_id", -1) >= 0}

    def removed(self) -> dict[str, str]:
        """Page url -> the step that removed it ("extract" for a page with no text at all)."""
        out = {}
        for step in ("extract", "language", "spam", "quality", "exact_dup", "near_dup"):
            for d in _read_jsonl(self.folder / "removed" / step):
                out[d["id"]] = step
        return out


# ============================================================================ parity with clean_crawl
PER_DOCUMENT_STEPS = ("language", "spam", "quality")


def compare_with_clean_crawl(report: cleaning.CleaningReport, run: PipelineRun) -> dict:
    """Page by page, does datatrove's run decide what ``clean_crawl`` decided?

    The per-document steps call the same functions, so they must agree exactly. A page whose
    text comes out empty is dropped by datatrove's extractor, and by ``clean_crawl``'s quality
    rules ("only 0 words"): both count as "quality" here. Exact deduplication keeps the same
    first copy. Near-duplicates may differ, for two reasons counted apart:

    - ``pair``: datatrove calls two pages near-duplicates when their MinHash signatures agree on
      one whole band (no second check); ``clean_crawl`` also asks the estimated Jaccard to clear
      the threshold. Pairs near the threshold can fall on different sides.
    - ``other_copy_kept``: both find the same cluster, but datatrove keeps the root of its
      union-find (it joins the smaller group to the larger) where ``clean_crawl`` keeps the
      first page in the crawl.
    """
    ours = {r.url: r.removed_by for r in report.pages}
    theirs = run.removed()
    theirs = {url: theirs.get(url) for url in ours}
    step = lambda fate: "quality" if fate == "extract" else fate  # noqa: E731
    per_document = {s: {"clean_crawl": sum(v == s for v in ours.values()),
                        "datatrove": sum(step(v) == s for v in theirs.values()),
                        "disagree": sum((ours[u] == s) != (step(theirs[u]) == s) for u in ours)}
                    for s in PER_DOCUMENT_STEPS + ("exact_dup",)}
    reached = [u for u in ours if ours[u] in (None, "near_dup") and theirs[u] in (None, "near_dup")]
    differ = [u for u in reached if ours[u] != theirs[u]]
    # Clusters as clean_crawl saw them: every removed copy points at the copy it kept.
    ours_cluster = {r.url: r.duplicate_of for r in report.pages if r.removed_by == "near_dup"}
    ours_cluster.update({first: first for first in set(ours_cluster.values())})
    theirs_cluster = run.near_dup_clusters()
    members = lambda clusters, c: {u for u, k in clusters.items() if k == c}  # noqa: E731
    other_copy = [u for u in differ if u in ours_cluster and u in theirs_cluster
                  and members(ours_cluster, ours_cluster[u]) == members(theirs_cluster, theirs_cluster[u])]
    kept_ours = [d["id"] for d in report.documents()]
    kept_theirs = [d["id"] for d in run.documents()]
    return {
        "pages": len(ours),
        "per_document_disagreements": sum(v["disagree"] for k, v in per_document.items() if k != "exact_dup"),
        "exact_dup_disagreements": per_document["exact_dup"]["disagree"],
        "steps": per_document,
        "near_dup": {"pages_reaching": len(reached),
                     "removed_by_clean_crawl": sum(ours[u] == "near_dup" for u in reached),
                     "removed_by_datatrove": sum(theirs[u] == "near_dup" for u in reached),
                     "disagreements": len(differ), "other_copy_kept": len(other_copy),
                     "pair_decisions": len(differ) - len(other_copy),
                     "agreement": round(1 - len(differ) / max(len(reached), 1), 4)},
        "documents": {"clean_crawl": len(kept_ours), "datatrove": len(kept_theirs),
                      "in_both": len(set(kept_ours) & set(kept_theirs))},
    }


def datatrove_near_dup_scores(report: cleaning.CleaningReport, run: PipelineRun, pages) -> dict:
    """Precision and recall of datatrove's near-duplicate decisions against the crawl's labels,
    scored the way ``cleaning.score_against_labels`` scores the course's."""
    theirs = run.removed()
    fates = [cleaning.PageResult(url=r.url, text="", lang="", removed_by=theirs.get(r.url)) for r in report.pages]
    for r in fates:
        r.removed_by = "quality" if r.removed_by == "extract" else r.removed_by
    rows = cleaning.score_against_labels(cleaning.CleaningReport(fates, {}), pages)
    return next({k: row[k] for k in ("precision", "recall", "flagged", "actual")} for row in rows
                if row["filter"] == "near_dup")


def _read_jsonl(folder: Path) -> list[dict]:
    import gzip

    out = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def write_crawl_warcs(pages, folder, shards: int = TASKS) -> list[Path]:
    """The crawl as ``shards`` WARC files (00000.warc.gz, ...), each a run of consecutive pages,
    the way a crawler writes one file after another. One file per task."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pages = list(pages)
    size = -(-len(pages) // shards)
    return [cleaning.write_warc(folder / f"{k:05d}.warc.gz", pages[k * size:(k + 1) * size]) for k in range(shards)]


def build_stages(warc_folder, work_folder, tasks: int = TASKS, workers: int = TASKS) -> dict:
    """The pipeline: stage name -> a LocalPipelineExecutor. Run them in order.

    For a cluster, build each stage with ``datatrove.executor.SlurmPipelineExecutor`` instead
    (same ``pipeline=[...]`` list, plus ``time``, ``partition`` and a ``job_name``; ``depends=``
    chains them): no step changes.
    """
    work = Path(work_folder)
    # datatrove normalises text before shingling; by default it also turns every number into 0,
    # which makes two worksheets of different sums ("12 + 7 = 19", "3 + 5 = 8") look the same.
    # The course's shingles keep numbers, so we do too.
    minhash = MinhashConfig(n_grams=cleaning.SHINGLE_SIZE, num_buckets=MINHASH_BANDS, hashes_per_bucket=MINHASH_ROWS,
                            hash_config=HashConfig(precision=64), norm_config=TextNormConfig(norm_numbers=False))
    exact = ExactDedupConfig(content_getter=exact_dedup_key, document_priority=crawl_priority)

    def removed(step):  # every step can write what it dropped, with why, beside its output
        return JsonlWriter(str(work / "removed" / step))

    def executor(name, pipeline, n=tasks):
        # "fork" starts a worker in milliseconds; datatrove's default ("forkserver") re-imports
        # everything in each worker, seconds per stage that a laptop-sized crawl notices.
        return LocalPipelineExecutor(pipeline=pipeline, tasks=n, workers=min(workers, n),
                                     logging_dir=str(work / "logs" / name), start_method="fork")

    return {
        "filter": executor("filter", [
            ReadWarc(str(warc_folder), glob_pattern="*.warc.gz"),
            ExtractText(),
            LanguageFilter(exclusion_writer=removed("language")),
            SpamFilter(exclusion_writer=removed("spam")),
            QualityFilter(exclusion_writer=removed("quality")),
            JsonlWriter(str(work / "filtered")),
        ]),
        "exact_signatures": executor("exact_signatures", [
            JsonlReader(str(work / "filtered")),
            ExactDedupSignature(str(work / "exact_sigs"), config=exact),
        ]),
        "exact_find": executor("exact_find", [
            ExactFindDedups(str(work / "exact_sigs"), str(work / "exact_dups"), config=exact),
        ], n=1),
        "exact_filter": executor("exact_filter", [
            JsonlReader(str(work / "filtered")),
            ExactDedupFilter(str(work / "exact_dups"), config=exact, exclusion_writer=removed("exact_dup")),
            JsonlWriter(str(work / "unique")),
        ]),
        "minhash_signatures": executor("minhash_signatures", [
            JsonlReader(str(work / "unique")),
            DedupView(),
            MinhashDedupSignature(str(work / "minhash_sigs"), config=minhash, language=CourseWords()),
        ]),
        "minhash_buckets": executor("minhash_buckets", [
            MinhashDedupBuckets(str(work / "minhash_sigs"), str(work / "minhash_buckets"), config=minhash),
        ], n=MINHASH_BANDS),
        "minhash_cluster": executor("minhash_cluster", [
            MinhashDedupCluster(str(work / "minhash_buckets"), str(work / "minhash_remove"), config=minhash,
                                save_cluster_id=True),
        ], n=1),
        "minhash_filter": executor("minhash_filter", [
            JsonlReader(str(work / "unique")),
            MinhashDedupFilter(str(work / "minhash_remove"), exclusion_writer=removed("near_dup"),
                               load_cluster_ids=True),
            RedactPII(),
            JsonlWriter(str(work / "corpus")),
        ]),
    }


def run_pipeline(warc_folder, work_folder, tasks: int = TASKS) -> PipelineRun:
    """Run every stage in order, in this process (see ``run_in_subprocess`` for a quiet run)."""
    import time

    work = Path(work_folder)
    if work.exists():
        shutil.rmtree(work)  # datatrove skips tasks it finds completed: start clean
    stages = {}
    for name, stage in build_stages(warc_folder, work, tasks).items():
        start = time.perf_counter()
        stage.run()
        stages[name] = {"tasks": stage.world_size, "seconds": round(time.perf_counter() - start, 2)}
    _record_extraction_drops(work, Path(warc_folder))
    (work / "stages.json").write_text(json.dumps(stages, indent=2))
    return PipelineRun(work, stages)


def _record_extraction_drops(work: Path, warc_folder: Path) -> None:
    """datatrove's extractors drop a page whose text comes out empty, without an exclusion writer;
    we list those pages (every page read, less those that reached a filter) so every page's fate is known."""
    import gzip

    read = {page.url for path in sorted(warc_folder.glob("*.warc.gz")) for page in cleaning.read_warc(path)}
    later = {d["id"] for d in _read_jsonl(work / "filtered")}
    for step in ("language", "spam", "quality"):
        later |= {d["id"] for d in _read_jsonl(work / "removed" / step)}
    folder = work / "removed" / "extract"
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "00000.jsonl.gz", "wt", encoding="utf-8") as f:
        for url in sorted(read - later):
            f.write(json.dumps({"id": url, "metadata": {"reason": "no text extracted"}}) + "\n")


def run_in_subprocess(warc_folder, work_folder, tasks: int = TASKS) -> PipelineRun:
    """Run the pipeline in a fresh Python process, its logs going to ``work_folder/run.log``.

    datatrove logs every task's progress; in a notebook that is pages of text, so we keep it in a
    file (and show its tail if the run fails).
    """
    work = Path(work_folder)
    work.parent.mkdir(parents=True, exist_ok=True)
    log = work.parent / f"{work.name}.log"
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, "-m", "course_utils.web_pipeline", str(warc_folder), str(work),
                               str(tasks)], stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "".join(open(log, encoding="utf-8", errors="replace").readlines()[-20:])
        raise RuntimeError(f"the datatrove pipeline failed (exit {done.returncode}); the end of {log}:\n{tail}")
    return PipelineRun(work, json.loads((work / "stages.json").read_text()))


def main(argv: list[str]) -> None:
    warc_folder, work_folder, tasks = argv[0], Path(argv[1]), int(argv[2]) if len(argv) > 2 else TASKS
    run = run_pipeline(warc_folder, work_folder, tasks)
    print(json.dumps(run.stages, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
