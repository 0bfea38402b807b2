"""Reading real crawl formats: WARC files (written with warcio's own writer) and folders of pages."""
import io

import pytest

from course_utils import cleaning

warcio = pytest.importorskip("warcio")
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

STORY = ("The lighthouse keeper climbed the stairs every evening at dusk. He cleaned the great lens, "
         "trimmed the wick and wrote the weather in a small blue book that his father had kept before him.")


def html_page(text):
    return f"<html><body><main><p>{text}</p></main></body></html>"


def write_records(path, records, gzipped=True):
    """records: (kind, url, content_type, body bytes, status); written by warcio's WARCWriter."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzipped)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "course tests"}))
        for kind, url, content_type, body, status in records:
            if kind == "response":
                headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
                record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers)
            else:
                record = writer.create_warc_record(url, kind, payload=io.BytesIO(body),
                                                   warc_content_type=content_type)
            writer.write_record(record)
    return path


def crawl_records():
    return [
        ("request", "https://a.example/1", "application/http; msgtype=request", b"GET /1 HTTP/1.1\r\n\r\n", None),
        ("response", "https://a.example/1", "text/html; charset=utf-8", html_page(STORY).encode(), "200 OK"),
        ("response", "https://a.example/logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(200), "200 OK"),
        ("response", "https://a.example/old", "text/html", b"<p>Moved</p>", "301 Moved Permanently"),
        ("response", "https://b.example/gbk", "text/html; charset=GBK",
         "<p>你好，世界。这是一个用国标码写的网页。</p>".encode("gbk"), "200 OK"),
        ("response", "https://b.example/3", "application/xhtml+xml", html_page("Third page.").encode(), "200 OK"),
    ]


@pytest.mark.parametrize("gzipped", [True, False])
def test_read_warc_keeps_html_responses_and_counts_the_rest(tmp_path, gzipped):
    path = write_records(tmp_path / ("crawl.warc.gz" if gzipped else "crawl.warc"), crawl_records(), gzipped)
    source = cleaning.read_warc(path)
    pages = list(source)
    assert [p.url for p in pages] == ["https://a.example/1", "https://b.example/gbk", "https://b.example/3"]
    assert pages[1].charset == "GBK"
    assert source.counts["records"] == 7 and source.counts["pages"] == 3
    assert source.counts["skipped: warcinfo record"] == 1 and source.counts["skipped: request record"] == 1
    assert source.counts["skipped: not HTML (image/png)"] == 1
    assert source.counts["skipped: HTTP status 301"] == 1
    assert source.problems == []


def test_clean_crawl_accepts_warc_pages_and_reports_the_source(tmp_path):
    path = write_records(tmp_path / "crawl.warc.gz", crawl_records())
    report = cleaning.clean_crawl(cleaning.read_warc(path))
    texts = {r.url: r.text for r in report.pages}
    assert texts["https://a.example/1"] == STORY
    assert texts["https://b.example/gbk"] == "你好，世界。这是一个用国标码写的网页。"  # the header's charset
    assert report.source["counts"]["pages"] == 3 and report.summary()["source"]["problems"] == []


def test_write_warc_round_trips_the_world_crawl_pages(tmp_path):
    pages = [("https://w.example/1", html_page(STORY)), ("https://w.example/2", html_page("Zweite Seite."))]
    path = cleaning.write_warc(tmp_path / "out.warc.gz", pages)
    got = list(cleaning.read_warc(path))
    assert [(p.url, p.html.decode()) for p in got] == pages


def test_a_truncated_warc_reports_the_cut_record_and_keeps_the_rest(tmp_path):
    path = write_records(tmp_path / "crawl.warc.gz", crawl_records())
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # the last record loses its end, as in an interrupted download
    source = cleaning.read_warc(path)
    assert [p.url for p in source] == ["https://a.example/1", "https://b.example/gbk"]
    assert len(source.problems) == 1
    assert source.problems[0]["where"] == "https://b.example/3" and "truncated" in source.problems[0]["problem"]


def test_a_corrupt_record_is_reported_and_reading_goes_on_after_it(tmp_path):
    path = write_records(tmp_path / "crawl.warc.gz", crawl_records())
    data = path.read_bytes()
    members = [i for i in range(len(data)) if data.startswith(b"\x1f\x8b\x08", i)]  # one gzip member a record
    broken = members[2]  # the first response record (after warcinfo and request)
    path.write_bytes(data[:broken + 10] + b"\x00" * 30 + data[broken + 40:])
    source = cleaning.read_warc(path)
    urls = [p.url for p in source]
    assert "https://a.example/1" not in urls and "https://b.example/3" in urls
    assert len(source.problems) >= 1 and all(p["problem"] for p in source.problems)


@pytest.mark.parametrize("gzipped", [True, False])
def test_a_warc_cut_anywhere_never_crashes(tmp_path, gzipped):
    data = write_records(tmp_path / "crawl.warc", crawl_records(), gzipped).read_bytes()
    cut = tmp_path / "cut.warc"
    for end in range(0, len(data), max(1, len(data) // 60)):
        cut.write_bytes(data[:end])
        source = cleaning.read_warc(cut)
        pages = list(source)
        assert len(pages) + len(source.problems) <= 4 + 1  # each record is a page, a problem, or skipped


def test_an_uncompressed_record_with_a_wrong_length_is_reported(tmp_path):
    path = write_records(tmp_path / "crawl.warc", crawl_records(), gzipped=False)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"The lighthouse keeper", b"The old lighthouse keeper", 1))
    source = cleaning.read_warc(path)
    urls = [p.url for p in source]
    assert "https://a.example/1" not in urls and "https://b.example/3" in urls
    assert source.problems[0]["where"] == "https://a.example/1"


def test_garbage_and_empty_files_give_no_pages_and_no_crash(tmp_path):
    (tmp_path / "garbage.warc").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "empty.warc").write_bytes(b"")
    garbage = cleaning.read_warc(tmp_path / "garbage.warc")
    assert list(garbage) == [] and garbage.problems
    assert list(cleaning.read_warc(tmp_path / "empty.warc")) == []
    with pytest.raises(ValueError, match="empty corpus"):
        cleaning.clean_crawl(cleaning.read_warc(tmp_path / "garbage.warc"))


def test_a_huge_record_is_read_in_part_with_a_note(tmp_path):
    body = b"<html><body><p>" + b"word " * (2 * 1024 * 1024) + b"</p></body></html>"  # 10 MB
    records = [("response", "https://big.example/", "text/html", body, "200 OK"),
               ("response", "https://b.example/3", "text/html", html_page(STORY).encode(), "200 OK")]
    source = cleaning.read_warc(write_records(tmp_path / "big.warc.gz", records))
    pages = list(source)
    assert [p.url for p in pages] == ["https://big.example/", "https://b.example/3"]
    assert len(pages[0].html) == 4 * cleaning.MAX_HTML_CHARS and "only the first" in pages[0].notes[0]


def test_read_html_files_reads_a_folder(tmp_path):
    (tmp_path / "a.html").write_text(html_page(STORY), encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.htm").write_bytes(html_page("Café crème.").encode("utf-8"))
    (tmp_path / "notes.txt").write_text("not a page")
    source = cleaning.read_html_files(tmp_path)
    report = cleaning.clean_crawl(source)
    assert [r.url for r in report.pages] == ["a.html", "sub/b.htm"]
    assert report.source["counts"] == {"files": 3, "pages": 2, "skipped: not HTML (.txt)": 1}
    with pytest.raises(NotADirectoryError):
        cleaning.read_html_files(tmp_path / "a.html")
