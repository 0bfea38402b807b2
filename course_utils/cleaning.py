"""Chapter 01: from a noisy web crawl to a clean pretraining corpus.

A model learns only what its library holds: garbage in, garbage out. Real pretraining sets
(C4, Gopher's MassiveText, RefinedWeb, FineWeb) start from billions of crawled web pages and
throw most of them away. This module does the same to the course's synthetic crawl (or to real
pages: ``read_warc`` reads Common Crawl's WARC files, ``read_html_files`` a folder of pages), one
small step at a time, in the order real pipelines use:

1. ``extract_text``      HTML -> the page's readable text (its <main> content, without menus,
                         footers and banners)
2. ``identify_language`` keep English and Chinese, drop pages clearly in another language
3. ``spam_problem``      a hand-weighted, explainable score over spammy signals
4. ``quality_problem``   Gopher/C4-style rules: too short, gibberish, repeated lines, ...
5. ``exact_duplicates``  the same text again (a reprint with different boilerplate)
6. ``near_duplicates``   almost the same text (MinHash + LSH)
7. ``redact_pii``        emails -> <EMAIL>, phone numbers -> <PHONE>

The corpus it writes (stage ``clean``) is what the tokenizer and pretraining read, through
``load_clean_corpus(split)``.

``clean_crawl(pages)`` runs them all and keeps every page's fate (which step removed it and
why, and notes on odd input: an undeclared encoding, a page cut short, an HTML bomb), so the
notebook can show each filter's effect and ``score_against_labels`` can measure each filter's
precision and recall against the crawl's hidden labels. ``web_pipeline`` runs the same steps on
datatrove, the way web-scale pipelines do.

Every threshold is a constant below, fixed in code: nothing is tuned on the labels at run time.
"""
from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import json
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from . import config

# ============================================================================ 0. reading a page's bytes
# A crawler meets pages of any size, including a 50 MB page of one repeated character. Every
# step below is at least linear in the page length, and no useful training document is
# longer than this, so we cut pages before doing any real work: a bad page costs milliseconds.
MAX_HTML_CHARS = 300_000
MAX_TEXT_CHARS = 100_000
# Old names for encodings that browsers read as a superset (the WHATWG Encoding Standard's rule).
CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
                   "ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030"}
BYTE_ORDER_MARKS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
META_CHARSET_RE = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)


def _codec(name: str) -> str | None:
    try:
        return codecs.lookup(CHARSET_ALIASES.get(name.lower(), name.lower())).name
    except LookupError:
        return None


def decode_page(raw: str | bytes, charset: str | None = None) -> tuple[str, list[str]]:
    """Bytes -> text, and notes on anything odd about them (cut short, unknown or wrong encoding).

    The encoding is the byte-order mark's, else the one declared (``charset``, from the HTTP
    header, else a ``<meta charset>`` near the top), else UTF-8. Bytes that do not decode become
    U+FFFD rather than an error: crawled pages lie about their encoding all the time, and a crash
    on one page would stop the whole pipeline. The replacement characters count as non-letters
    in the quality rules, so a badly garbled page is filtered there, and the note says why.
    """
    notes: list[str] = []
    if isinstance(raw, str):
        if len(raw) > MAX_HTML_CHARS:
            notes.append(f"cut from {len(raw):,} to the first {MAX_HTML_CHARS:,} characters")
        return raw[:MAX_HTML_CHARS], notes
    raw = bytes(raw)
    head = raw[: 4 * MAX_HTML_CHARS]  # at most 4 bytes a character: a huge page is cheap to decode
    cut = len(raw) > len(head)
    encoding = None
    for bom, name in BYTE_ORDER_MARKS:
        if head.startswith(bom):
            encoding, head = name, head[len(bom):]
            break
    declared = charset or next((m.decode("ascii") for m in META_CHARSET_RE.findall(head[:4096])), None)
    if encoding is None and declared:
        encoding = _codec(declared)
        if encoding is None:
            notes.append(f"declares the unknown charset {declared!r}: read as UTF-8")
    encoding = encoding or "utf-8"
    # An incremental decoder leaves out the last character if the cut above split it in two.
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=not cut)
    if cut or len(text) > MAX_HTML_CHARS:
        notes.append(f"cut from {len(raw):,} bytes to the first {min(len(text), MAX_HTML_CHARS):,} characters")
    text = text[:MAX_HTML_CHARS]
    bad = text.count("\ufffd")
    if bad:
        why = f"it declares {declared!r}" if declared else "no charset declared"
        notes.append(f"{bad:,} byte sequences are not {encoding} ({why}): each became U+FFFD")
    return text, notes


# ============================================================================ 1. text extraction
# Two questions: where is the page's own content, and which parts of it are site furniture?
# Pages answer the first in their markup: HTML5 has <main> (or role="main") for the page's main
# content and <article> for a self-contained piece. Menus, banners and footers give themselves
# away by where they sit (outside the main content, or beside it) and by being mostly links.
# A class name is only a hint: a documentation site may put class="sidebar-visible" on <html>
# itself, and that says nothing about the text inside.
#
# Elements that never hold the page's own content. The <h1> is the page's title: like
# trafilatura, we treat it as metadata rather than as a line of the document.
NEVER_CONTENT_TAGS = {"head", "script", "style", "noscript", "template", "svg", "iframe", "button",
                      "select", "textarea", "h1"}
# Elements that usually hold site furniture, and class/id/role words that mark furniture.
FURNITURE_TAGS = {"nav", "header", "footer", "aside", "form"}
FURNITURE_HINTS = {"author", "banner", "breadcrumb", "breadcrumbs", "byline", "complementary", "consent",
                   "contentinfo", "cookie", "cookies", "footer", "header", "menu", "nav", "navbar",
                   "navigation", "newsletter", "popup", "share", "sidebar", "social", "subscribe", "toolbar"}
# The page's frame, and words inside a line: a class on these never marks furniture.
FRAME_TAGS = {"html", "body", "main", "article"}
INLINE_TAGS = {"a", "abbr", "b", "bdi", "cite", "code", "em", "i", "kbd", "mark", "q", "s", "small", "span",
               "strong", "sub", "sup", "time", "u", "var"}
# Furniture sits *beside* the content. A marked element that holds at least this share of the
# content's text, in several blocks, sits *around* it (a page wrapper, a form around the whole
# page): we keep it. A byline or cookie notice is one block, however short the article.
WRAPPER_SHARE = 0.5
WRAPPER_MIN_BLOCKS = 3
# A line whose text is mostly link text is a menu ("Home | About | Contact"). Links within the
# page ("#usage", a heading's own anchor) do not count: they lead nowhere else.
MAX_LINK_FRACTION = 0.5
# Real pages nest a few dozen elements deep. An "HTML bomb" nests thousands to exhaust a
# parser; tags deeper than this are ignored (their text is kept), so it costs what any page does.
MAX_DEPTH = 128
# Parsing costs about the same per tag, so a page of nothing but tags costs more per megabyte.
# Real pages have a tag every 15-80 characters (a few thousand in MAX_HTML_CHARS); we stop
# reading a page after this many, which only a page made to be expensive reaches.
MAX_TAGS = 30_000
# Elements with no closing tag: they never go on the stack of open elements.
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
             "param", "source", "track", "wbr"}
# Elements that start a new line of text.
BLOCK_TAGS = {"address", "article", "blockquote", "body", "br", "dd", "div", "dl", "dt",
              "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "html", "li", "main",
              "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul"}
# C4's line filter: lines with these phrases are site furniture, not content.
BOILERPLATE_PHRASES = ("cookie policy", "uses cookies", "use of cookies", "use cookies",
                       "privacy policy", "terms of use", "all rights reserved",
                       "使用cookie", "使用 cookie", "隐私政策", "版权所有")
LINE_BREAK = None  # among an element's children: a <br>, or a block element we did not keep
SPACES = " \t\n\r\f\v\xa0"


def _read_attributes(tag: str, attrs) -> tuple[bool, bool, bool, bool]:
    """What an element's attributes say: (hidden, marked as furniture, the main content, a link away)."""
    hidden = furniture = main = False
    href = None
    for name, value in attrs:
        if name in ("class", "id", "role") and value:
            words = set(re.split(r"[^a-z0-9]+", value.lower()))
            furniture = furniture or bool(FURNITURE_HINTS & words)
            main = main or (name == "role" and "main" in words)
        elif name == "hidden" or (name == "aria-hidden" and value == "true"):
            hidden = True
        elif name == "style" and value and "display:none" in value.replace(" ", "").lower():
            hidden = True
        elif name == "href":
            href = value or ""
    # A hint on the page's own frame (<html class="sidebar-visible">) says nothing about its text,
    # nor does one on a word inside a sentence (a heading's <a class="header">, <span class="author">).
    furniture = tag in FURNITURE_TAGS or (furniture and tag not in FRAME_TAGS and tag not in INLINE_TAGS)
    is_link = tag == "a" and href is not None and not href.startswith("#")
    return hidden, furniture, main or tag == "main", is_link


class _Element:
    """One element of the page: its tag, whether its markup marks it as furniture, what it holds."""

    __slots__ = ("tag", "parent", "children", "furniture", "chars", "link_chars", "blocks")

    def __init__(self, tag: str, parent: "_Element | None", furniture: bool = False):
        self.tag, self.parent, self.furniture = tag, parent, furniture
        self.children: list = []  # _Element, (text, chars, in_link, in_pre), or LINE_BREAK
        self.chars = self.link_chars = 0  # visible characters inside (spaces not counted), and inside links
        self.blocks = 0  # block elements inside with text that is not links (paragraphs, ...)

    @property
    def prose_chars(self) -> int:
        """Characters of text that is not link text: what content is made of."""
        return self.chars - self.link_chars


class _TooManyTags(Exception):
    pass


class _PageParser(HTMLParser):
    """Builds a light tree of the page's elements in one pass, tolerating broken HTML.

    The web is full of unclosed tags, so an end tag closes everything opened after its matching
    start tag, and an end tag with nothing to close is ignored. Subtrees that never hold content
    (scripts, styles, hidden elements) are not kept.
    """

    def __init__(self):
        super().__init__(convert_charrefs=True)  # &amp; -> &, &#20320; -> 你
        self.document = _Element("#document", None)
        self.elements = [self.document]  # in document order: every parent before its children
        self.mains: list[_Element] = []  # <main> and role="main"
        self.articles: list[_Element] = []
        # Open elements: (tag, element or None if not kept, is it a link?).
        self.stack: list[tuple[str, _Element | None, bool]] = [("#document", self.document, False)]
        self.open_count: dict[str, int] = {}  # open elements per tag, so a stray end tag costs O(1)
        self.links_open = self.pre_open = 0
        self.too_deep = 0  # start tags ignored for nesting deeper than MAX_DEPTH
        self.tags = 0

    def _add(self, child) -> None:
        element = self.stack[-1][1]
        if element is not None:
            element.children.append(child)

    def _count_tag(self) -> None:
        self.tags += 1
        if self.tags > MAX_TAGS:
            raise _TooManyTags

    def handle_starttag(self, tag, attrs):
        self._count_tag()
        if tag in VOID_TAGS or len(self.stack) > MAX_DEPTH:
            self.too_deep += tag not in VOID_TAGS
            if tag in BLOCK_TAGS:
                self._add(LINE_BREAK)
            return
        hidden, furniture, main, is_link = _read_attributes(tag, attrs)
        parent, element = self.stack[-1][1], None
        if parent is not None and tag not in NEVER_CONTENT_TAGS and not hidden:
            element = _Element(tag, parent, furniture)
            parent.children.append(element)
            self.elements.append(element)
            if main:
                self.mains.append(element)
            elif tag == "article":
                self.articles.append(element)
        self.stack.append((tag, element, is_link))
        self.open_count[tag] = self.open_count.get(tag, 0) + 1
        self.links_open += is_link
        self.pre_open += tag == "pre"

    def handle_startendtag(self, tag, attrs):  # <br/>, <div/>: nothing is opened
        self._count_tag()
        if tag in BLOCK_TAGS:
            self._add(LINE_BREAK)

    def handle_endtag(self, tag):
        self._count_tag()
        if not self.open_count.get(tag):
            if tag in BLOCK_TAGS:  # a stray </p> still ends a line
                self._add(LINE_BREAK)
            return
        while True:
            open_tag, _, is_link = self.stack.pop()
            self.open_count[open_tag] -= 1
            self.links_open -= is_link
            self.pre_open -= open_tag == "pre"
            if open_tag == tag:
                break

    def handle_data(self, data):
        chars = len(data) - sum(map(data.count, SPACES))
        self._add((data, chars, self.links_open > 0, self.pre_open > 0))

    def measure(self) -> None:
        """Count each element's characters, and its link characters, children before parents."""
        for element in reversed(self.elements):
            for child in element.children:
                if isinstance(child, _Element):
                    element.chars += child.chars
                    element.link_chars += child.link_chars
                    element.blocks += child.blocks + (child.tag in BLOCK_TAGS and child.prose_chars > 0)
                elif child is not LINE_BREAK:
                    element.chars += child[1]
                    element.link_chars += child[1] if child[2] else 0


def _common_ancestor(elements: list[_Element]) -> _Element:
    paths = []
    for e in elements:
        path = []
        while e is not None:
            path.append(e)
            e = e.parent
        paths.append(path[::-1])
    common = paths[0][0]
    for level in zip(*paths):
        if any(e is not level[0] for e in level):
            break
        common = level[0]
    return common


def content_root(parser: _PageParser) -> _Element:
    """Where the page's own content is: its <main>, else its <article>s, else the whole page."""
    mains = [e for e in parser.mains if e.prose_chars > 0]
    if mains:
        return max(mains, key=lambda e: e.prose_chars)
    articles = [e for e in parser.articles if e.prose_chars > 0]
    if articles:
        return _common_ancestor(articles)  # one article, or the element that holds them all
    return parser.document


def _is_wrapper(element: _Element, wrapper_chars: float) -> bool:
    return element.prose_chars >= wrapper_chars and element.blocks >= WRAPPER_MIN_BLOCKS


def _lines(root: _Element) -> list[tuple[str, int]]:
    """The text under ``root`` as (line, characters of link text), leaving out the furniture
    beside the content. Walks the tree with an explicit stack: no recursion limit to hit."""
    wrapper_chars = WRAPPER_SHARE * root.prose_chars
    lines: list[tuple[str, int]] = []
    parts: list[str] = []
    link_chars = 0

    def end_line():
        nonlocal parts, link_chars
        text = " ".join("".join(parts).split())  # collapse runs of whitespace
        if text:
            lines.append((text, link_chars))
        parts, link_chars = [], 0

    todo: list = [(root, False)]
    while todo:
        item, closing = todo.pop()
        if item is LINE_BREAK:
            end_line()
        elif isinstance(item, tuple):
            text, _, in_link, in_pre = item
            for i, piece in enumerate(text.split("\n") if in_pre else [text]):
                if i:
                    end_line()  # code keeps its lines
                parts.append(piece)
                link_chars += len(piece.strip()) if in_link else 0
        elif closing or (item is not root and item.furniture and not _is_wrapper(item, wrapper_chars)):
            if item.tag in BLOCK_TAGS:  # the end of a block, or furniture left out: a new line
                end_line()
        else:
            if item.tag in BLOCK_TAGS:
                end_line()
            todo.append((item, True))
            todo.extend(((child, False) for child in reversed(item.children)))
    end_line()
    return lines


def _keep_line(text: str, link_chars: int) -> bool:
    if link_chars > MAX_LINK_FRACTION * len(text):
        return False  # mostly links: a menu, tag cloud or "read more" list
    return not any(phrase in text.lower() for phrase in BOILERPLATE_PHRASES)


@dataclass
class Extraction:
    """A page's text, and notes on anything odd about its input (empty when all was well)."""

    text: str
    notes: list[str] = field(default_factory=list)


LONE_LT_RE = re.compile(r"<(?![A-Za-z/!?])")  # "a < b", "<<<": text, not the start of a tag


def defuse_tags(html: str) -> tuple[str, int | None]:
    """Escape every "<" that cannot start a tag, so the parser reads it as text at once; and
    where a comment is never closed, end the page there (browsers hide the rest as a comment).
    Returns the HTML and where an unclosed comment cut it (None if none did).

    Python's ``html.parser`` looks ahead for the ">" that closes a tag; on "<a <a <a ..." with
    no ">" it looks again from every "<", which takes quadratic time: minutes for one bad page.
    A tag must end before the next "<" (outside comments), so we escape those that do not,
    looking ahead for each ">" once. Browsers read these characters as text too.
    """
    html = LONE_LT_RE.sub("&lt;", html)
    out, done, next_gt, cut = [], 0, -1, None
    i = html.find("<")
    while i != -1:
        if html.startswith("<!--", i):  # a comment may hold "<"s; it ends at "-->", or the page does
            end = html.find("-->", i + 4)
            if end == -1:  # never closed: the rest of the page is a comment (and costly to parse)
                html, cut = html[:i], i
                break
            i = html.find("<", end + 3)
            continue
        following = html.find("<", i + 1)
        if next_gt < i:
            next_gt = html.find(">", i)
            next_gt = len(html) if next_gt == -1 else next_gt
        if following != -1 and next_gt > following:  # no ">" before the next "<": not a tag
            out += [html[done:i], "&lt;"]
            done = i + 1
        i = following
    return ("".join(out) + html[done:] if out else html), cut


def extract_page(page_html: str | bytes, charset: str | None = None) -> Extraction:
    """The readable text of an HTML page, with notes on odd input (see ``extract_text``)."""
    html, notes = decode_page(page_html, charset)
    parser = _PageParser()
    html, comment_at = defuse_tags(html)
    if comment_at is not None:
        notes.append(f"a comment opened at character {comment_at:,} is never closed: the rest is not read")
    try:
        parser.feed(html)
        parser.close()
    except _TooManyTags:
        notes.append(f"more than {MAX_TAGS:,} tags: the rest of the page is not read")
    except Exception as error:  # noqa: BLE001 -- one odd page must not stop a crawl; keep what was read
        notes.append(f"the HTML parser stopped early ({type(error).__name__}: {error}); kept what it read")
    if parser.too_deep:
        notes.append(f"{parser.too_deep:,} tags nested deeper than {MAX_DEPTH} were ignored (an HTML bomb?)")
    parser.measure()
    root = content_root(parser)
    kept = [text for text, link_chars in _lines(root) if _keep_line(text, link_chars)]
    if not kept and root is not parser.document:  # an empty <main>: read the whole page instead
        kept = [text for text, link_chars in _lines(parser.document) if _keep_line(text, link_chars)]
    text = "\n".join(kept)
    if len(text) > MAX_TEXT_CHARS:
        notes.append(f"text cut from {len(text):,} to {MAX_TEXT_CHARS:,} characters")
    return Extraction(text[:MAX_TEXT_CHARS], notes)


def extract_text(page_html: str | bytes, charset: str | None = None) -> str:
    """The readable text of an HTML page, one paragraph (or heading, list item, code line) per line.

    1. Find the content: the page's <main> (or role="main"), else its <article>(s), else all of it.
    2. Inside it, leave out what never is content (scripts, styles, forms' buttons, hidden
       elements, the <h1> title) and the furniture *beside* the content: <nav>, <header>,
       <footer>, <aside>, <form>, or an element whose class/id says menu, sidebar, cookie, share...
       unless it holds most of the content's text (then it is a wrapper *around* the content).
    3. Drop lines that are mostly links (menus), and C4's boilerplate lines ("All rights reserved").
    """
    return extract_page(page_html, charset).text


# ============================================================================ reading a real crawl
# Common Crawl publishes the web as WARC files: one record per HTTP exchange (the request, the
# response with its headers and body, metadata), each gzipped on its own so a reader can start
# at any record. ``read_warc`` keeps the HTML responses as pages that ``clean_crawl`` accepts,
# counts what it skips, and reports broken records instead of stopping at them.
HTML_TYPES = ("text/html", "application/xhtml+xml")
PAGE_SUFFIXES = (".html", ".htm", ".xhtml")
WARC_READ_CHUNK = 1 << 16


@dataclass
class WebPage:
    """A page read from a WARC file or a folder: its address, raw bytes and declared charset."""

    url: str
    html: bytes
    charset: str | None = None  # from the HTTP Content-Type header, when it names one
    notes: list[str] = field(default_factory=list)  # what was odd about reading it


class PageSource:
    """The pages of a WARC file or a folder, read lazily; after reading, what was skipped and why.

    ``counts``: records (or files) seen, pages read, and skipped ones by reason.
    ``problems``: one {"where", "problem"} per record or file that could not be read.
    """

    def __init__(self, path, read):
        self.path, self._read = str(path), read
        self.counts: Counter = Counter()
        self.problems: list[dict] = []

    def __iter__(self):
        self.counts.clear()
        self.problems.clear()
        return self._read(self)

    def summary(self) -> dict:
        return {"source": self.path, "counts": dict(self.counts), "problems": list(self.problems)}


def _charset_of(content_type: str | None) -> tuple[str, str | None]:
    """"text/html; charset=GBK" -> ("text/html", "GBK")."""
    mime, _, params = (content_type or "").partition(";")
    match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", params, re.I)
    return mime.strip().lower(), match.group(1) if match else None


def _warc_page(record, source: PageSource) -> WebPage | None:
    """The page in one WARC record, or None (with the reason counted or reported)."""
    url = record.rec_headers.get_header("WARC-Target-URI") or f"record-{source.counts['records']}"
    if not hasattr(record.raw_stream, "limit"):  # warcio found no Content-Length to bound the record by
        source.problems.append({"where": url, "problem": "broken record: no Content-Length (its WARC "
                                "headers are cut short)"})
        return None
    if record.rec_type not in ("response", "resource"):
        source.counts[f"skipped: {record.rec_type} record"] += 1
        return None
    headers = record.http_headers if record.rec_type == "response" else record.rec_headers
    if headers is None:
        if _missing_bytes(record):  # cut short inside its HTTP headers
            source.problems.append({"where": url, "problem": f"truncated record: {record.raw_stream.limit:,} of "
                                    f"its {record.length:,} bytes are missing"})
        else:
            source.counts["skipped: response without HTTP headers"] += 1
        return None
    if record.rec_type == "response" and not (headers.get_statuscode() or "").startswith("2"):
        source.counts[f"skipped: HTTP status {headers.get_statuscode()}"] += 1
        return None
    mime, charset = _charset_of(headers.get_header("Content-Type"))
    if mime not in HTML_TYPES:
        source.counts[f"skipped: not HTML ({mime or 'no type'})"] += 1
        return None
    notes = []
    try:
        body = record.content_stream().read(4 * MAX_HTML_CHARS)  # as much as extraction ever reads
    except Exception as error:  # noqa: BLE001 -- a corrupt body (bad gzip, bad chunking) is one page's problem
        source.problems.append({"where": url, "problem": f"body could not be decoded ({_short(error)})"})
        return None
    rest = _missing_bytes(record, count_rest=True)
    if record.raw_stream.limit > 0:  # the record promised more bytes than the file holds
        source.problems.append({"where": url, "problem": f"truncated record: {record.raw_stream.limit:,} of its "
                                f"{record.length:,} bytes are missing"})
        return None
    if rest:
        notes.append(f"a record of {record.length:,} bytes: only the first {len(body):,} bytes of the page are read")
    return WebPage(url, body, charset, notes)


def _missing_bytes(record, count_rest: bool = False) -> int:
    """Read past the rest of a record (a huge page's tail is not kept). Returns how many bytes that
    was if ``count_rest``, else how many of the bytes its header promised the file did not hold."""
    rest = 0
    while chunk := record.raw_stream.read(WARC_READ_CHUNK):
        rest += len(chunk)
    return rest if count_rest else record.raw_stream.limit


def _next_record_start(f, position: int, gzipped: bool) -> int | None:
    """The next place at or after ``position`` where a WARC record (or a gzip member) begins."""
    marker = b"\x1f\x8b\x08" if gzipped else b"\nWARC/1."
    f.seek(position)
    offset, tail = position, b""
    while chunk := f.read(WARC_READ_CHUNK):
        found = (tail + chunk).find(marker)
        if found >= 0:
            return offset - len(tail) + found + (0 if gzipped else 1)
        tail = chunk[-len(marker):]
        offset += len(chunk)
    return None


def _short(error: Exception) -> str:
    """An exception as a short printable line (a corrupt file can put raw bytes in the message)."""
    text = str(error).splitlines()[0] if str(error).strip() else ""
    text = "".join(c for c in text.split(", first line:")[0] if c.isprintable())[:100]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _read_warc(source: PageSource):
    from warcio.archiveiterator import ArchiveIterator

    def advance(records):
        # warcio prints a warning for a record whose length looks wrong; we report it instead.
        with contextlib.redirect_stderr(io.StringIO()):
            return next(records, None)

    with open(source.path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
        start = 0
        while start is not None:
            f.seek(start)
            records, pending, errors = ArchiveIterator(f), None, 0
            try:
                while True:
                    # Moving on finishes the pending record; only then do we know whether its
                    # length matched what followed it.
                    record = advance(records)
                    if pending is not None:
                        if records.err_count > errors:
                            source.problems.append({"where": pending.url, "problem": "corrupt record: its "
                                                    "Content-Length does not match what follows it"})
                        else:
                            source.counts["pages"] += 1
                            yield pending
                    pending, errors = None, records.err_count
                    if record is None:
                        return
                    source.counts["records"] += 1
                    pending = _warc_page(record, source)
            except Exception as error:  # noqa: BLE001 -- warcio raises all kinds of errors on a broken file
                # The iterator cannot go on after a broken record: note it, find the next record
                # start after it, and read on from there.
                if pending is not None:
                    source.counts["pages"] += 1
                    yield pending
                broken_at = max(records.offset, start)
                source.problems.append({"where": f"byte {broken_at:,}", "problem": f"broken record ({_short(error)})"})
                start = _next_record_start(f, broken_at + 1, gzipped)


def read_warc(path) -> PageSource:
    """The HTML pages of a WARC file (``.warc`` or ``.warc.gz``), for ``clean_crawl``.

    Records that are not HTML responses (requests, metadata, images, redirects) are skipped and
    counted; broken records (truncated, corrupt) are reported and skipped. Both are in the
    returned source's ``counts`` and ``problems`` after reading, and in ``clean_crawl``'s report.
    Needs ``warcio`` (``pip install 'course-utils[web]'``).
    """
    try:
        import warcio  # noqa: F401
    except ImportError as error:
        raise ImportError("read_warc needs the warcio package: pip install warcio "
                          "(or the course's web extra: pip install -e '.[web]')") from error
    return PageSource(path, _read_warc)


def _read_html_files(source: PageSource):
    folder = Path(source.path)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        source.counts["files"] += 1
        if path.suffix.lower() not in PAGE_SUFFIXES:
            source.counts[f"skipped: not HTML ({path.suffix or 'no suffix'})"] += 1
            continue
        try:
            with open(path, "rb") as f:
                html = f.read(4 * MAX_HTML_CHARS)  # as much as extraction ever reads
                rest = len(f.read(1))
        except OSError as error:
            source.problems.append({"where": str(path), "problem": f"cannot be read ({error.strerror or error})"})
            continue
        source.counts["pages"] += 1
        notes = [f"a file of {path.stat().st_size:,} bytes: only the first {len(html):,} are read"] if rest else []
        yield WebPage(path.relative_to(folder).as_posix(), html, None, notes)


def read_html_files(folder) -> PageSource:
    """The ``.html``/``.htm`` files in a folder (and its subfolders) as pages, for ``clean_crawl``."""
    if not Path(folder).is_dir():
        raise NotADirectoryError(f"read_html_files() needs a folder of HTML files; {str(folder)!r} is not a folder")
    return PageSource(folder, _read_html_files)


def write_warc(path, pages, gzip: bool = True) -> Path:
    """Write pages (CrawlPage-like objects, (url, html) pairs) as a WARC file of HTTP responses.

    Each page becomes one ``response`` record with its HTTP headers, as a crawler stores it (a
    page whose address is not http(s) becomes a ``resource`` record). The course uses this to
    hand the world's crawl to tools that read the real format. Needs ``warcio``.
    """
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path = Path(path)
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzip)
        for i, page in enumerate(pages):
            url, html = _url_and_html(page, i)
            body = html.encode("utf-8") if isinstance(html, str) else bytes(html)
            charset = "utf-8" if isinstance(html, str) else getattr(page, "charset", None)
            content_type = "text/html" + (f"; charset={charset}" if charset else "")
            if url.startswith(("http://", "https://")):
                headers = StatusAndHeaders("200 OK", [("Content-Type", content_type),
                                                      ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
                record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers)
            else:  # not fetched over HTTP (a file, a test page): a "resource" record, with no HTTP headers
                record = writer.create_warc_record(url, "resource", payload=io.BytesIO(body),
                                                   warc_content_type=content_type)
            writer.write_record(record)
    return path


# ============================================================================ shared text helpers
# Chinese is written without spaces, so Chinese characters count one by one as "words".
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{CJK}]")
WORD_RE = re.compile(f"[{CJK}]|[^\\W_{CJK}]+(?:['’][^\\W_{CJK}]+)*")
LATIN_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")


def words_of(text: str) -> list[str]:
    """Words of a text: runs of letters/digits, and each Chinese character on its own."""
    return WORD_RE.findall(text)


def cjk_fraction(text: str) -> float:
    """Share of the letters in ``text`` that are Chinese characters (0 for a text with none)."""
    letters = sum(c.isalpha() for c in text)
    return len(CJK_RE.findall(text)) / letters if letters else 0.0


# ============================================================================ 2. language id
# Short lists of the most frequent function words. In running text they make up a fifth or
# more of all words, so even a short paragraph shows which list fits; languages mostly share
# no function words, and where they do (English/Dutch "in") the other words decide.
STOP_WORDS = {
    "en": set("the of and to a in is was that it he she for on with as his her by at from "
              "they this be are were had have not but or an which you i we their there what "
              "when who will would can one all".split()),
    "de": set("der die das und ist nicht ein eine zu den von mit sich auf für im dem des auch "
              "es als wie wir ich sie er wird bei nach oder aus über noch nur war sind hat".split()),
    "fr": set("le la les et est un une des du de en que qui dans pour pas sur au avec il elle "
              "ce se ne sont par plus nous vous était ont aux".split()),
    "es": set("el la los las y es un una de del en que por con para no se su al lo como más "
              "pero sus le ya fue son está muy".split()),
    "it": set("il lo la gli le e è un una di del della che per con non si sono come anche "
              "nel alla più ma era".split()),
    "nl": set("de het een en is van in dat op te niet zijn met voor hij zij ze er maar ook "
              "was aan bij om".split()),
    "pt": set("o a os as e é um uma de do da dos das em que para com não se por mais foi "
              "são está seu sua".split()),
}
KEEP_LANGUAGES = ("en", "zh")
MIN_STOP_WORD_FRACTION = 0.08  # below this we do not trust the guess: "und" (undetermined)
MAX_LANGID_CHARS = 5_000  # the first few thousand characters are plenty to tell
MIN_LANGID_WORDS = 8  # fewer Latin-script words than this: too little evidence to judge


def identify_language(text: str) -> str:
    """'en', 'zh', another language code, or 'und' when there is too little evidence.

    First the script: Chinese characters mean 'zh' (unless kana/hangul say Japanese/Korean);
    Cyrillic, Greek, Arabic, ... are other languages. Latin-script text is told apart by
    which language's function words it uses most.
    """
    sample = EMAIL_RE.sub(" ", text[:MAX_LANGID_CHARS])  # "ana.silva@..." is no evidence of Portuguese
    letters = [c for c in sample if c.isalpha()]
    if not letters:
        return "und"
    n = len(letters)
    n_cjk = len(CJK_RE.findall(sample))
    n_kana = len(re.findall(r"[\u3040-\u30ff]", sample))
    n_hangul = len(re.findall(r"[\uac00-\ud7af]", sample))
    n_latin = len(LATIN_RE.findall(sample))
    if n_hangul > 0.2 * n:
        return "ko"
    if n_kana > 0.1 * n:
        return "ja"
    if n_cjk > 0.3 * n:
        return "zh"
    if n_latin < 0.5 * n:
        # Mostly another script: name it by the script of its first non-Latin letter.
        other = next(c for c in letters if not LATIN_RE.match(c) and not CJK_RE.match(c))
        script = unicodedata.name(other, "OTHER").split()[0]
        return {"CYRILLIC": "ru", "GREEK": "el", "ARABIC": "ar", "HEBREW": "he",
                "DEVANAGARI": "hi", "THAI": "th"}.get(script, "other")
    words = [w.lower() for w in words_of(sample) if w.isalpha() and not CJK_RE.match(w)]
    if len(words) < MIN_LANGID_WORDS:
        return "und"  # "Tel. | E-mail" is not enough to call a page Portuguese
    fractions = {lang: sum(w in stops for w in words) / len(words) for lang, stops in STOP_WORDS.items()}
    best = max(fractions, key=fractions.get)
    return best if fractions[best] >= MIN_STOP_WORD_FRACTION else "und"


def language_problem(lang: str) -> str | None:
    """Why the language filter drops a page (None if it keeps it).

    We drop only pages we are confident are in another language; text with no recognisable
    function words at all ('und') is a quality problem, left to the quality rules.
    """
    if lang in KEEP_LANGUAGES or lang == "und":
        return None
    return f"language is {lang!r}, we keep only {' and '.join(KEEP_LANGUAGES)}"


# ============================================================================ 3. spam
# A hand-weighted score: every point has a reason a person can read. Ads shout in several ways
# at once (salesy phrases, ALL CAPS, "!!!", "$$$"), while normal prose may use one of them now
# and then. So each kind of evidence is capped, and a phrase counts once however often it is
# repeated: a page that says "free" thirty times is repetitive (the quality rules' business),
# not thirty times more salesy.
SPAM_PHRASES = {
    "click here": 3.0, "buy now": 3.0, "order now": 3.0, "act now": 3.0, "limited time": 2.0,
    "limited offer": 2.0, "special offer": 2.0, "today only": 2.0, "100% free": 3.0, "risk free": 2.0,
    "guaranteed": 1.5, "no prescription": 3.0, "cheap": 1.5, "discount": 1.0, "free": 1.0,
    "% off": 2.0, "winner": 2.0, "you have won": 3.0, "congratulations": 1.0, "casino": 2.5,
    "bonus": 1.5, "viagra": 3.0, "pills": 1.5, "weight loss": 2.0, "lose weight": 2.0,
    "earn money": 3.0, "make money": 3.0, "from home": 1.5, "double your": 2.5, "miracle": 1.5,
    "best price": 2.0, "lowest price": 2.0, "free shipping": 2.0, "subscribe now": 2.0,
    "sign up now": 2.0, "$$$": 3.0, "crypto": 1.5, "hot deals": 2.5, "best deals": 2.0,
    # Chinese: free, click, special offer, right now, limited time, make money, lowest price,
    # casino, bonus, win a prize, add me on WeChat, buy
    "免费": 2.0, "点击": 2.5, "优惠": 2.0, "立即": 1.5, "限时": 2.5, "赚钱": 3.0, "最低价": 2.5,
    "赌场": 2.5, "奖金": 2.0, "大奖": 2.0, "中奖": 3.0, "加微信": 3.0, "购买": 1.0,
}
SPAM_THRESHOLD = 9.0  # points; prose almost never passes 2, ads rarely score under 12


def _phrase_pattern(phrase: str) -> re.Pattern:
    # Latin phrases must stand as whole words ("free" but not "freedom"); Chinese has no spaces.
    if re.match(r"[a-z]", phrase):
        return re.compile(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])")
    return re.compile(re.escape(phrase))


_SPAM_PATTERNS = {phrase: _phrase_pattern(phrase) for phrase in SPAM_PHRASES}


def spam_signals(text: str) -> dict[str, float]:
    """The evidence, in points, each kind capped: phrases, shouting, ALL CAPS, money, links."""
    lower = text.lower()
    caps_words = [w for w in words_of(text) if len(w) >= 3 and w.isalpha() and w.isupper() and not CJK_RE.match(w)]
    return {
        "phrases": sum(SPAM_PHRASES[p] for p, pattern in _SPAM_PATTERNS.items() if pattern.search(lower)),
        "shouting": 1.0 * min(len(re.findall(r"[!！]{2,}", text)), 5),  # "!!!" runs
        "all_caps_words": 0.5 * min(len(caps_words), 10),
        "money_signs": 0.5 * min(text.count("$") + text.count("¥") + text.count("€"), 6),
        "links": 1.0 * min(len(re.findall(r"https?://|www\.", lower)), 5),
    }


def spam_score(text: str) -> float:
    """The total spam points of a text. Prose scores 0-2; ads score 10 or more."""
    return sum(spam_signals(text).values())


def spam_problem(text: str) -> str | None:
    """Why the spam filter drops a page (None if it keeps it), naming the evidence."""
    signals = spam_signals(text)
    score = sum(signals.values())
    if score >= SPAM_THRESHOLD:
        evidence = ", ".join(f"{k} {v:g}" for k, v in sorted(signals.items(), key=lambda kv: -kv[1]) if v > 0)
        return f"spam score {score:g} ≥ {SPAM_THRESHOLD:g} ({evidence})"
    return None


# ============================================================================ 4. quality rules
# Gopher (Rae et al. 2021) and C4 (Raffel et al. 2020) style heuristics. Each rule is a small
# function that returns why it rejects a page, or None. Sizes are in "words"; a Chinese
# character counts as a word, which is roughly fair (a Chinese word is 1-2 characters).
# Gopher asks for 50 words; the course's documents are short (a forum answer can be 15 words),
# so our floor is lower and the placeholder rule catches error pages that pad past it.
MIN_WORDS = 12
MAX_WORDS = 100_000
# Error and placeholder pages, the commonest near-empty pages on the web (English and Chinese).
PLACEHOLDER_PHRASES = ("page not found", "404 not found", "error 404", "error 500", "under construction",
                       "coming soon", "access denied", "log in to continue", "please log in",
                       "something went wrong", "nothing here yet", "account has been suspended",
                       "lorem ipsum", "页面不存在", "建设中", "请登录", "敬请期待")
MAX_PLACEHOLDER_WORDS = 60  # a long article that happens to say "coming soon" is not a placeholder
MAX_DUP_LINE_FRACTION = 0.3  # Gopher: share of lines that repeat an earlier line
MAX_DUP_LINE_CHAR_FRACTION = 0.3  # Gopher uses 0.2; a Q&A page may repeat one answer
MEAN_WORD_LENGTH = (3.0, 10.0)  # English words average ~4.5 letters (numbers are not counted)
MAX_SYMBOL_RATIO = 0.1  # '#' and '...' per word (hashtag soup, truncated teasers)
MIN_ALPHA_WORD_FRACTION = 0.6  # Gopher uses 0.8
MIN_STOP_WORDS = 2  # Gopher: at least two function words ("the", "of", "is", ...)
# The most frequent Chinese characters (function words and particles). Real Chinese text has
# one in five characters or more from this list; random characters almost never do.
ZH_COMMON_CHARS = set("的一是在不了有和人这中大为上个国我以要他她时来用们生到作地于出就分对成会可"
                      "年说也子得家里后自过如")
MIN_ZH_COMMON_FRACTION = 0.08
MIN_PUNCT_LINE_FRACTION = 0.3  # C4 keeps only lines ending in terminal punctuation
TERMINAL_PUNCTUATION = tuple('.!?"”’)。！？…')
FACT_LINE_RE = re.compile(r"^[^:：]{1,30}[:：]\s*\S")  # "Capital: Berlin", a row of an infobox
# Worked arithmetic ("17 + 25 = 42", "27加6等于33。") is what we want the model to learn, but it
# breaks the prose rules (no "the", two-letter "words"). A page whose lines are mostly such
# number-heavy lines is judged only by its length and repetition.
MATH_LINE_DIGIT_SHARE = 0.3


def is_math_line(line: str) -> bool:
    chars = line.replace(" ", "")
    return bool(chars) and sum(c.isdigit() for c in chars) >= MATH_LINE_DIGIT_SHARE * len(chars)


@dataclass
class TextStats:
    """What the quality rules look at, computed once per page."""

    text: str
    words: list[str]
    lines: list[str]
    is_chinese: bool
    is_math: bool  # mostly worked arithmetic

    @classmethod
    def of(cls, text: str) -> "TextStats":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        math = sum(map(is_math_line, lines)) >= 0.5 * len(lines) if lines else False
        return cls(text, words_of(text), lines, cjk_fraction(text) > 0.3, math)


def too_few_words(s: TextStats) -> str | None:
    if len(s.words) < MIN_WORDS:
        return f"only {len(s.words)} words (< {MIN_WORDS}): too short to teach anything"
    return None


def too_many_words(s: TextStats) -> str | None:
    if len(s.words) > MAX_WORDS:
        return f"{len(s.words)} words (> {MAX_WORDS}): a dump, not a document"
    return None


def placeholder_page(s: TextStats) -> str | None:
    if len(s.words) <= MAX_PLACEHOLDER_WORDS:
        lower = s.text.lower()
        for phrase in PLACEHOLDER_PHRASES:
            if phrase in lower:
                return f"says {phrase!r} and little else: an error or placeholder page"
    return None


def repeated_lines(s: TextStats) -> str | None:
    seen, dup_lines, dup_chars = set(), 0, 0
    for line in s.lines:
        if line in seen:
            dup_lines += 1
            dup_chars += len(line)
        seen.add(line)
    total_chars = sum(map(len, s.lines))
    if dup_lines > MAX_DUP_LINE_FRACTION * len(s.lines) or dup_chars > MAX_DUP_LINE_CHAR_FRACTION * total_chars:
        return f"{dup_lines} of {len(s.lines)} lines repeat an earlier line: a template or a spammy list"
    return None


def odd_word_length(s: TextStats) -> str | None:
    if s.is_chinese or s.is_math:
        return None  # one character per "word", or numbers: the rule means nothing here
    lengths = [len(w) for w in s.words if not w.isdigit()]
    mean = sum(lengths) / max(len(lengths), 1)
    lo, hi = MEAN_WORD_LENGTH
    if not lo <= mean <= hi:
        return f"mean word length {mean:.1f} outside [{lo}, {hi}]: not natural language"
    return None


def too_many_symbols(s: TextStats) -> str | None:
    symbols = s.text.count("#") + s.text.count("...") + s.text.count("…")
    if symbols > MAX_SYMBOL_RATIO * len(s.words):
        return f"{symbols} '#'/'...' for {len(s.words)} words: hashtag soup or teasers"
    return None


def too_few_alpha_words(s: TextStats) -> str | None:
    if s.is_math:
        return None
    alpha = sum(any(c.isalpha() for c in w) for w in s.words) / len(s.words)
    if alpha < MIN_ALPHA_WORD_FRACTION:
        return f"only {alpha:.0%} of words contain a letter: numbers or symbols, not prose"
    return None


def no_stop_words(s: TextStats) -> str | None:
    # Real sentences need function words ("the", "of"; 的, 是); gibberish has none.
    if s.is_math:
        return None
    if s.is_chinese:
        chars = [w for w in s.words if CJK_RE.match(w)]
        common = sum(c in ZH_COMMON_CHARS for c in chars) / len(chars)
        if common < MIN_ZH_COMMON_FRACTION:
            return f"only {common:.0%} common Chinese characters like 的/是 (< {MIN_ZH_COMMON_FRACTION:.0%}): gibberish"
        return None
    n = sum(w.lower() in STOP_WORDS["en"] for w in s.words)
    if n < MIN_STOP_WORDS:
        return f"{n} common English words like 'the'/'of'/'is' (< {MIN_STOP_WORDS}): not real sentences"
    return None


def few_lines_end_in_punctuation(s: TextStats) -> str | None:
    if s.is_math:
        return None
    # A "Label: value" row of a fact box is complete too, though it has no full stop.
    ended = sum(line.endswith(TERMINAL_PUNCTUATION) or bool(FACT_LINE_RE.match(line))
                for line in s.lines) / len(s.lines)
    if ended < MIN_PUNCT_LINE_FRACTION:
        return f"only {ended:.0%} of lines end like a sentence: lists, menus or fragments"
    return None


# In order: the first rule that fails names the reason.
QUALITY_RULES = (too_few_words, too_many_words, placeholder_page, repeated_lines, odd_word_length,
                 too_many_symbols, too_few_alpha_words, no_stop_words, few_lines_end_in_punctuation)


def quality_problem(text: str) -> tuple[str, str] | None:
    """(rule name, reason) for the first quality rule the text fails, or None if it passes."""
    stats = TextStats.of(text)
    for rule in QUALITY_RULES:
        reason = rule(stats)
        if reason:
            return rule.__name__, reason
    return None


# ============================================================================ 5. exact duplicates
PUNCT_RE = re.compile(r"[^\w\s]")
MAX_CONTACT_LINE_WORDS = 20


def dedup_view(text: str) -> str:
    """The text as deduplication compares it: without contact lines (short lines with an email
    or phone number), and with PII masked elsewhere. A reprint often carries the reprinting
    site's own contact line; that should not hide that the article is a copy."""
    lines = []
    for line in text.split("\n"):
        if find_pii(line):
            if len(line.split()) <= MAX_CONTACT_LINE_WORDS:
                continue
            line = redact_pii(line)
        lines.append(line)
    return "\n".join(lines)


def normalize(text: str) -> str:
    """Lowercase, drop punctuation, collapse whitespace: the same words give the same string."""
    return " ".join(PUNCT_RE.sub(" ", text.lower()).split())


def text_hash(text: str) -> str:
    return hashlib.sha1(normalize(text).encode("utf-8")).hexdigest()


def exact_duplicates(texts: list[str]) -> list[int | None]:
    """For each text, the index of the first earlier text with the same normalised form, or None."""
    first: dict[str, int] = {}
    out: list[int | None] = []
    for i, text in enumerate(texts):
        key = text_hash(text)
        out.append(first.get(key))
        first.setdefault(key, i)
    return out


# ============================================================================ 6. near duplicates
# Jaccard similarity of two documents = |shared shingles| / |all shingles|, where a shingle is
# a run of SHINGLE_SIZE words (English) or characters (Chinese). Comparing every pair is
# quadratic, so MinHash squeezes each document into NUM_PERM numbers whose agreement rate
# estimates the Jaccard similarity, and LSH banding finds likely pairs without comparing all.
SHINGLE_SIZE = 5
NEAR_DUP_JACCARD = 0.7  # what we call a near-duplicate (the world generator's definition too)
# The estimate is an average of NUM_PERM coin flips, so its standard error at J = 0.7 is
# sqrt(0.7 * 0.3 / NUM_PERM): 0.04 with 128 permutations, 0.014 with 1024. Some of the crawl's
# near-copies sit just above 0.7, so we pay for a tight estimate: 1024 permutations cost a few
# seconds here.
NUM_PERM = 1024
BANDS, ROWS = 128, 8  # BANDS * ROWS == NUM_PERM; the S-curve's midpoint (1/BANDS) ** (1/ROWS) ≈ 0.55
# Accept a pair whose estimate is at most one standard error under the definition: a true 0.7
# pair passes 84 % of the time, a 0.75 pair always, a 0.65 pair almost never.
NEAR_DUP_THRESHOLD = round(NEAR_DUP_JACCARD - (NEAR_DUP_JACCARD * (1 - NEAR_DUP_JACCARD) / NUM_PERM) ** 0.5, 3)
MAX_SHINGLES = 20_000  # a page is cut to MAX_TEXT_CHARS already; this caps the numpy work too
MINHASH_CHUNK = 512  # shingles hashed at once: a 1024 x 512 table of uint64 is 4 MB
MAX_BUCKET_FOR_ALL_PAIRS = 50  # see lsh_candidate_pairs
MINHASH_SEED = 20240601

_rng = np.random.default_rng(MINHASH_SEED)
# One "random permutation" per row: h(x) = (a*x + b) mod 2**64, keeping the top 32 bits. This
# multiply-shift family is universal; numpy's uint64 arithmetic wraps around exactly mod 2**64.
_PERM_A = _rng.integers(0, 2**64 - 1, size=NUM_PERM, dtype=np.uint64, endpoint=True) | np.uint64(1)
_PERM_B = _rng.integers(0, 2**64 - 1, size=NUM_PERM, dtype=np.uint64, endpoint=True)
EMPTY_SIGNATURE = np.iinfo(np.uint32).max  # the signature of a text with no shingles


def shingles(text: str, size: int = SHINGLE_SIZE) -> set[str]:
    """The set of word ``size``-grams of ``text`` (character ``size``-grams for Chinese).

    Words are simply the lower-cased text split on whitespace (punctuation stays attached):
    the same definition the world generator uses when it makes near-duplicates.
    """
    if cjk_fraction(text) > 0.3:
        units = list("".join(text.lower().split()))  # Chinese: characters, spaces ignored
        sep = ""
    else:
        units = text.lower().split()
        sep = " "
    if len(units) <= size:
        return {sep.join(units)} if units else set()  # a short text is its own single shingle
    return {sep.join(units[i:i + size]) for i in range(len(units) - size + 1)}


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b|: 1 for the same set, 0 for nothing shared."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _hash64(s: str) -> int:
    # Python's hash() changes between runs; a real hash makes signatures reproducible.
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def hash_shingles(shingle_set) -> np.ndarray:
    """Each shingle as a 64-bit number: a sorted uint64 array of at most MAX_SHINGLES values.

    A huge page keeps only its MAX_SHINGLES smallest hashes: a fixed, content-based choice,
    so two copies of the same huge page still keep the same shingles.
    """
    hashes = np.unique(np.fromiter((_hash64(s) for s in shingle_set), dtype=np.uint64))
    return hashes[:MAX_SHINGLES]


def shingle_hashes(text: str) -> np.ndarray:
    return hash_shingles(shingles(text[:MAX_TEXT_CHARS]))


def minhash_signature(hashes: np.ndarray) -> np.ndarray:
    """NUM_PERM minimums: for each hash function, the smallest value over the shingles.

    Two sets get the same minimum for a random hash function with probability equal to their
    Jaccard similarity, so the share of equal entries in two signatures estimates it.
    """
    signature = np.full(NUM_PERM, EMPTY_SIGNATURE, dtype=np.uint64)
    # A (NUM_PERM, shingles) table of hashed values, then the min of each row. We take the
    # shingles in chunks so a long page never needs more than a few MB for the table.
    for start in range(0, len(hashes), MINHASH_CHUNK):
        chunk = hashes[start:start + MINHASH_CHUNK]
        permuted = (_PERM_A[:, None] * chunk[None, :] + _PERM_B[:, None]) >> np.uint64(32)
        signature = np.minimum(signature, permuted.min(axis=1))
    # Each value is the top 32 bits of a 64-bit product, so it fits a uint32 (half the memory).
    return signature.astype(np.uint32)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.mean(sig_a == sig_b))


def lsh_detection_probability(similarity, bands: int = BANDS, rows: int = ROWS):
    """Chance that two documents with Jaccard ``similarity`` share at least one LSH band.

    One band (``rows`` signature entries) matches with probability s**rows; the pair becomes a
    candidate unless all ``bands`` bands miss: 1 - (1 - s**rows)**bands. An S-shaped curve.
    """
    s = np.asarray(similarity, dtype=float)
    return 1.0 - (1.0 - s**rows) ** bands


def lsh_candidate_pairs(signatures: np.ndarray, bands: int = BANDS, rows: int = ROWS) -> set[tuple[int, int]]:
    """Pairs (i < j) whose signatures agree on all rows of at least one band.

    Signatures with the same band values land in the same bucket. A bucket of k texts holds
    k(k-1)/2 pairs; hundreds of pages made from one template would make that explode, so a
    bucket larger than MAX_BUCKET_FOR_ALL_PAIRS pairs each text only with the bucket's first
    text and with its neighbour in the bucket. Clustering joins them all the same.
    """
    assert bands * rows == signatures.shape[1], "bands * rows must equal the signature length"
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        block = signatures[:, band * rows:(band + 1) * rows]
        for i, row in enumerate(block):
            buckets.setdefault(row.tobytes(), []).append(i)
        for members in buckets.values():
            if len(members) <= MAX_BUCKET_FOR_ALL_PAIRS:
                pairs.update((members[x], members[y]) for x in range(len(members))
                             for y in range(x + 1, len(members)))
            else:
                pairs.update((members[0], m) for m in members[1:])
                pairs.update(zip(members[1:], members[2:]))
    return pairs


def minhash_signatures(texts: list[str]) -> np.ndarray:
    """One MinHash signature per text: a (len(texts), NUM_PERM) uint32 array."""
    signatures = np.empty((len(texts), NUM_PERM), dtype=np.uint32)
    for i, text in enumerate(texts):
        signatures[i] = minhash_signature(shingle_hashes(text))
    return signatures


def near_duplicates(texts: list[str], threshold: float = NEAR_DUP_THRESHOLD,
                    bands: int = BANDS, rows: int = ROWS) -> list[int | None]:
    """For each text, the index of the first text of its near-duplicate cluster (None for that first).

    LSH proposes candidate pairs; a pair counts when its estimated Jaccard is ≥ threshold.
    Matching pairs are joined into clusters (if A~B and B~C, all three are one cluster) and
    the first text of each cluster is kept, like a crawler that keeps the first copy it saw.
    """
    signatures = minhash_signatures(texts)
    # A text with no shingles has nothing to compare; leave it out of the buckets.
    has_shingles = np.flatnonzero(np.any(signatures != EMPTY_SIGNATURE, axis=1))
    # Union-find: root[i] leads towards the cluster's first (smallest) index.
    root = list(range(len(texts)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]  # path halving keeps the chains short
            i = root[i]
        return i

    for a, b in lsh_candidate_pairs(signatures[has_shingles], bands, rows):
        i, j = int(has_shingles[a]), int(has_shingles[b])
        if estimated_jaccard(signatures[i], signatures[j]) >= threshold:
            ri, rj = find(i), find(j)
            root[max(ri, rj)] = min(ri, rj)
    return [None if find(i) == i else find(i) for i in range(len(texts))]


# ============================================================================ 7. PII redaction
# Emails: name@domain.tld. Phones: "+44 20 7946 0958" (a + and digit groups) or North-American
# "(555) 123-4567", "555-123-4567", "555.123.4567". The digit groups must be joined by single
# separators with no spaces around "-", so years ("1987"), dates ("2023-01-15") and arithmetic
# ("12 + 7 = 19") never match; a match must also hold 7 to 15 digits, like real numbers.
# Chinese characters count as \w in Python's regexes, and Chinese text puts no space before an
# address ("请发邮件至ada@example.org"), so the "not glued to another word" checks use ASCII only.
EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE_RE = re.compile(
    r"(?<![A-Za-z0-9+])(?:"
    r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,4}){2,5}"  # international: +44 20 7946 0958
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567, 555.123.4567
    r"|\d{3} \d{3} \d{4}"  # 555 123 4567
    r"|0\d{1,4} \d{3,4} \d{4}"  # national with a trunk 0: 020 7946 0958
    r")(?![A-Za-z0-9])"
)
EMAIL_TOKEN, PHONE_TOKEN = "<EMAIL>", "<PHONE>"


def _phone_sized(s: str) -> bool:
    return 7 <= sum(c.isdigit() for c in s) <= 15  # real phone numbers have 7 to 15 digits


def find_pii(text: str) -> list[tuple[str, str]]:
    """(kind, string) for every email and phone number found, in order of appearance."""
    found = [(m.start(), "email", m.group()) for m in EMAIL_RE.finditer(text)]
    found += [(m.start(), "phone", m.group()) for m in PHONE_RE.finditer(text) if _phone_sized(m.group())]
    return [(kind, s) for _, kind, s in sorted(found)]


def redact_pii(text: str) -> str:
    """Replace emails with <EMAIL> and phone numbers with <PHONE>."""
    text = EMAIL_RE.sub(EMAIL_TOKEN, text)  # first, so digits inside an email stay part of it
    return PHONE_RE.sub(lambda m: PHONE_TOKEN if _phone_sized(m.group()) else m.group(), text)


# ============================================================================ the pipeline
FILTERS = ("language", "spam", "quality", "exact_dup", "near_dup")  # in the order they run


@dataclass
class PageResult:
    """One crawled page's fate."""

    url: str
    text: str  # extracted text, before redaction
    lang: str
    removed_by: str | None = None  # the filter that dropped it; None = kept
    reason: str = ""  # why, in words
    rule: str = ""  # for the quality filter: which rule
    duplicate_of: str | None = None  # for the dedup filters: the url of the copy we keep
    pii: list[tuple[str, str]] = field(default_factory=list)  # (kind, string) found in text
    clean_text: str = ""  # the redacted text that goes into the corpus
    notes: list[str] = field(default_factory=list)  # odd input: cut short, bad bytes, too deeply nested

    @property
    def kept(self) -> bool:
        return self.removed_by is None


@dataclass
class CleaningReport:
    """Every page's fate, and seconds spent per step."""

    pages: list[PageResult]
    seconds: dict[str, float]
    source: dict | None = None  # for pages from read_warc/read_html_files: what was skipped, and why

    @property
    def kept(self) -> list[PageResult]:
        return [p for p in self.pages if p.kept]

    def removed_by(self, step: str) -> list[PageResult]:
        return [p for p in self.pages if p.removed_by == step]

    def counts(self) -> list[dict]:
        """Pages in, removed and out at each step: the funnel."""
        rows, remaining = [], len(self.pages)
        for step in FILTERS:
            removed = len(self.removed_by(step))
            rows.append({"step": step, "pages_in": remaining, "removed": removed,
                         "pages_out": remaining - removed, "seconds": round(self.seconds.get(step, 0.0), 3)})
            remaining -= removed
        return rows

    def documents(self) -> list[dict]:
        """The clean corpus: one {"id", "lang", "text"} per kept page."""
        return [{"id": p.url, "lang": p.lang, "text": p.clean_text} for p in self.kept]

    def noted(self) -> list[PageResult]:
        """Pages whose input was odd (cut short, undecodable bytes, an HTML bomb): read, with a note."""
        return [p for p in self.pages if p.notes]

    def summary(self) -> dict:
        out = {"pages_in": len(self.pages), "documents_out": len(self.kept), "steps": self.counts(),
               "seconds": {k: round(v, 3) for k, v in self.seconds.items()}, "pages_with_notes": len(self.noted())}
        if self.source is not None:
            out["source"] = self.source
        return out


def _url_and_html(page, index: int) -> tuple[str, str | bytes]:
    """Accept CrawlPage-like objects (.url, .html), WebPages, (url, html) pairs, or bare HTML."""
    if hasattr(page, "html"):
        return str(getattr(page, "url", f"page-{index}")), page.html
    if isinstance(page, tuple) and len(page) == 2:
        return str(page[0]), page[1]
    if isinstance(page, (str, bytes, bytearray)):
        return f"page-{index}", page
    raise TypeError(f"page {index}: expected a CrawlPage, a (url, html) pair, or HTML text; got {type(page).__name__}")


def clean_crawl(pages) -> CleaningReport:
    """Run the whole pipeline over crawled pages; see the module docstring for the steps."""
    source = pages if isinstance(pages, PageSource) else None
    pages = list(pages)
    if not pages:
        where = f" ({source.path}: {dict(source.counts)}, {len(source.problems)} problems)" if source else ""
        raise ValueError(f"clean_crawl() got an empty corpus{where}: the list of crawled pages is empty, "
                         "so there is nothing to clean. Pass world.crawl(w) or a list of HTML pages.")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = seconds.get(step, 0.0) + now - clock
        clock = now

    results = []
    for i, page in enumerate(pages):
        url, raw = _url_and_html(page, i)
        extraction = extract_page(raw, getattr(page, "charset", None))
        notes = list(getattr(page, "notes", ())) + extraction.notes
        results.append(PageResult(url=url, text=extraction.text, lang="", notes=notes))
    lap("extract")

    # Content filters, page by page; each page is judged only by the first filter that drops it.
    for r in results:
        r.lang = identify_language(r.text)
        problem = language_problem(r.lang)
        if problem:
            r.removed_by, r.reason = "language", problem
    lap("language")
    # Spam before quality: the spam score looks for one specific problem, while the quality
    # rules are a broad net that would also catch most ads (they rarely end lines with a full
    # stop), and then we could not tell how well each filter does its own job.
    for r in results:
        if r.kept:
            problem = spam_problem(r.text)
            if problem:
                r.removed_by, r.reason = "spam", problem
    lap("spam")
    for r in results:
        if r.kept:
            problem = quality_problem(r.text)
            if problem:
                r.removed_by, (r.rule, r.reason) = "quality", problem
    lap("quality")

    # Deduplication over the survivors, in crawl order: the first copy is kept.
    for step, find_dups in (("exact_dup", exact_duplicates), ("near_dup", near_duplicates)):
        survivors = [r for r in results if r.kept]
        for r, first in zip(survivors, find_dups([dedup_view(r.text) for r in survivors])):
            if first is not None:
                r.removed_by, r.duplicate_of = step, survivors[first].url
                r.reason = f"{'same text as' if step == 'exact_dup' else 'near copy of'} {survivors[first].url}"
        lap(step)

    # PII is redacted in every page's text (it costs little), so it can be scored on all of them.
    for r in results:
        r.pii = find_pii(r.text)
        r.clean_text = redact_pii(r.text)
    lap("pii")
    return CleaningReport(results, seconds, source.summary() if source else None)


# ============================================================================ scoring
def _label(page):
    return getattr(page, "label", None)


def _precision_recall(flagged: list[bool], actual: list[bool]) -> dict:
    tp = sum(f and a for f, a in zip(flagged, actual))
    n_flagged, n_actual = sum(flagged), sum(actual)
    return {"flagged": n_flagged, "actual": n_actual, "true_positives": tp,
            "precision": tp / n_flagged if n_flagged else 1.0,
            "recall": tp / n_actual if n_actual else 1.0}


QUALITY_KINDS = ("gibberish", "short", "repeated_lines")


def score_against_labels(report: CleaningReport, pages) -> list[dict]:
    """Precision and recall of each filter against the crawl's hidden labels (a list of dicts).

    Each filter is scored on the pages that reach it (the survivors of the filters before it):
    precision = of the pages it removed, the share that should go for that reason; recall = of
    the labelled pages that reached it, the share it removed.

    Duplicates: the pages that should go are the labelled copies (exact reprints for the exact
    step, near-duplicates for the near step) whose original also reached that step. The world's
    documents are all distinct from one another, so the labels name every duplicate there is.

    PII recall is the share of inserted emails/phone numbers missing from the redacted text;
    PII precision the share of redacted strings that were inserted PII.
    """
    pages = list(pages)
    labels = {str(p.url): _label(p) for p in pages}
    if any(v is None for v in labels.values()):
        raise ValueError("score_against_labels() needs pages with hidden labels (world.crawl pages).")
    should_go = {
        "language": lambda lab: lab.kind == "foreign",
        "spam": lambda lab: lab.kind == "spam",
        "quality": lambda lab: lab.kind in QUALITY_KINDS,
    }
    rows = []
    reached = list(report.pages)
    for step in FILTERS:
        reached_urls = {r.url for r in reached}
        flagged = [r.removed_by == step for r in reached]
        row = {"filter": step, "pages_in": len(reached)}
        if step in should_go:
            row.update(_precision_recall(flagged, [should_go[step](labels[r.url]) for r in reached]))
        else:
            copy_of = (lambda lab: lab.exact_dup_of) if step == "exact_dup" else (lambda lab: lab.near_dup_of)
            row.update(_precision_recall(flagged, [copy_of(labels[r.url]) in reached_urls for r in reached]))
        rows.append({**row, "seconds": round(report.seconds.get(step, 0.0), 3)})
        reached = [r for r in reached if r.removed_by != step]
    rows.append({"filter": "pii", "pages_in": len(report.pages), **_pii_scores(report, labels),
                 "seconds": round(report.seconds.get("pii", 0.0), 3)})
    for row in rows:
        for key in ("precision", "recall"):
            row[key] = round(row[key], 4)
    return rows


def _pii_scores(report: CleaningReport, labels: dict) -> dict:
    inserted = removed = 0
    redacted = matched = 0
    for r in report.pages:
        pii = tuple(labels[r.url].pii)
        for s in pii:
            if s in r.text:  # only PII that survived extraction can leak into the corpus
                inserted += 1
                removed += s not in r.clean_text
        for _, s in r.pii:
            redacted += 1
            matched += any(s in p or p in s for p in pii)
    return {"flagged": redacted, "actual": inserted, "true_positives": matched,
            "precision": matched / redacted if redacted else 1.0,
            "recall": removed / inserted if inserted else 1.0}


# ============================================================================ the stage
VAL_FRACTION = 0.05


def is_validation(text: str) -> bool:
    """Deterministic ~5 % split by a hash of the content (the same text always lands on the same side)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) < VAL_FRACTION * 16**8


def split_train_val(documents: list[dict]) -> tuple[list[dict], list[dict]]:
    train = [d for d in documents if not is_validation(d["text"])]
    val = [d for d in documents if is_validation(d["text"])]
    return train, val


def _jsonl(docs: list[dict]) -> str:
    return "".join(json.dumps({"id": d["id"], "lang": d["lang"], "text": d["text"]}, ensure_ascii=False) + "\n"
                   for d in docs)


SMOKE_PAGES = 6000


def build_clean_stage(seed: int = config.DEFAULT_SEED):
    """World -> crawl -> clean corpus, saved as stage 'clean' (train.jsonl, val.jsonl, report.json)."""
    from . import stages, world

    w = world.build_world(seed)
    # A smoke run cleans a part of the crawl (cleaning the whole gpu crawl takes minutes), enough
    # for the tokenizer to learn its full vocabulary; the pages are in crawl order, a random mix.
    pages = world.crawl(w)[:config.budget(None, smoke=SMOKE_PAGES)]
    report = clean_crawl(pages)
    if not report.kept:
        raise ValueError(f"Every one of the {len(report.pages)} crawled pages was filtered out: the clean "
                         "corpus is empty, so there is nothing to save. Check the crawl and the filters.")
    scores = score_against_labels(report, pages)
    train, val = split_train_val(report.documents())
    metrics = {row["filter"]: {"precision": row["precision"], "recall": row["recall"]} for row in scores}
    metrics.update({"pages_in": len(report.pages), "documents_out": len(report.kept),
                    "train_documents": len(train), "val_documents": len(val)})
    summary = {**report.summary(), "scores": scores, "seed": seed}
    return stages.save_stage("clean", {
        "train.jsonl": _jsonl(train),
        "val.jsonl": _jsonl(val),
        "report.json": json.dumps(summary, indent=2, ensure_ascii=False),
    }, meta={"metrics": metrics, "seed": seed})


def load_clean_documents(split: str = "train") -> list[dict]:
    """The clean corpus as {"id", "lang", "text"} dicts; builds stage 'clean' first if it is missing."""
    from . import stages

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    stage = stages.ensure_stage("clean")
    with open(stage.path(f"{split}.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_clean_corpus(split: str = "train") -> list[str]:
    """The clean corpus's document texts (what the tokenizer and pretraining read)."""
    return [d["text"] for d in load_clean_documents(split)]
