"""The cleaning pipeline on datatrove: the same decisions as clean_crawl, run as tasks over WARC files."""
import pytest

pytest.importorskip("datatrove")
pytest.importorskip("warcio")

from course_utils import cleaning  # noqa: E402
from course_utils import web_pipeline as wp  # noqa: E402
from test_cleaning import fake_crawl  # noqa: E402


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    pages = fake_crawl()
    folder = tmp_path_factory.mktemp("datatrove")
    wp.write_crawl_warcs(pages, folder / "warc", shards=2)
    run = wp.run_pipeline(folder / "warc", folder / "work", tasks=2)
    return pages, run


def test_the_warc_shards_hold_the_crawl_in_order(tmp_path):
    pages = fake_crawl()
    paths = wp.write_crawl_warcs(pages, tmp_path, shards=2)
    assert [p.name for p in paths] == ["00000.warc.gz", "00001.warc.gz"]
    urls = [page.url for path in paths for page in cleaning.read_warc(path)]
    assert urls == [p.url for p in pages]


def test_every_stage_ran_with_its_tasks(fake_run):
    _, run = fake_run
    assert run.stages["filter"]["tasks"] == 2
    assert run.stages["minhash_buckets"]["tasks"] == wp.MINHASH_BANDS
    assert run.stages["exact_find"]["tasks"] == run.stages["minhash_cluster"]["tasks"] == 1


def test_datatrove_keeps_what_clean_crawl_keeps(fake_run):
    pages, run = fake_run
    report = cleaning.clean_crawl(pages)
    assert run.documents() == report.documents()  # same pages, same order, same redacted text
    removed = run.removed()
    assert {r.url: r.removed_by for r in report.pages if not r.kept} == removed
    comparison = wp.compare_with_clean_crawl(report, run)
    assert comparison["per_document_disagreements"] == comparison["exact_dup_disagreements"] == 0
    assert comparison["near_dup"]["disagreements"] == 0


def test_the_comparison_notices_a_disagreement(fake_run):
    pages, run = fake_run
    report = cleaning.clean_crawl(pages)
    spam = next(r for r in report.pages if r.removed_by == "spam")
    spam.removed_by = None  # pretend clean_crawl had kept the ad
    comparison = wp.compare_with_clean_crawl(report, run)
    assert comparison["per_document_disagreements"] == 1 and comparison["steps"]["spam"]["disagree"] == 1


def test_course_words_shingle_like_the_course():
    words = wp.CourseWords()
    assert words.word_tokenize("the quick brown fox") == ["the", "quick", "brown", "fox"]
    assert words.word_tokenize("李明出生在杭州") == list("李明出生在杭州")


def test_the_exact_dedup_priority_keeps_the_earlier_file():
    from datatrove.data import Document

    first, later = (Document(text="x", id=str(k), metadata={"shard": k}) for k in (0, 1))
    assert wp.crawl_priority(first) > wp.crawl_priority(later)
