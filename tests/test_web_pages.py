"""Extraction on real HTML: one crafted page per rule, then real documentation pages (tests/fixtures/web)."""
from pathlib import Path

import pytest

from course_utils import cleaning

FIXTURES = Path(__file__).parent / "fixtures" / "web"
REAL_PAGES = sorted(FIXTURES.glob("*.html"))

STORY = ("The lighthouse keeper climbed the stairs every evening at dusk. He cleaned the great lens, "
         "trimmed the wick and wrote the weather in a small blue book that his father had kept before him.")
RIVER = ("The river froze early that year, and the children of the village skated from one bank to the "
         "other while their parents carried bread and firewood across the ice on wooden sledges.")
BIRDS = ("In spring the swallows came back to the old barn. They rebuilt their nests of mud under the "
         "roof beams and flew low over the fields all day, catching insects above the tall grass.")


def p(*texts):
    return "".join(f"<p>{t}</p>" for t in texts)


def lines(html):
    return cleaning.extract_text(html).splitlines()


# ----------------------------------------------------------------------------- where the content is

@pytest.mark.parametrize("frame", [
    '<html class="light sidebar-visible"><body>{}</body></html>',  # mdBook's <html>
    '<html><body class="nav-open menu-collapsed">{}</body></html>',
    '<html><body><main class="main-with-sidebar">{}</main></body></html>',
    '<html><body><article class="share-card">{}</article></body></html>',
    '<html><body><main role="main" id="cookie-wall">{}</main></body></html>',
])
def test_a_hint_on_the_page_frame_does_not_drop_the_page(frame):
    assert lines(frame.format(p(STORY, RIVER))) == [STORY, RIVER]


def test_a_hinted_wrapper_around_the_content_is_kept_and_a_hinted_box_beside_it_is_not():
    html = (f'<body><div class="sidebar-layout">{p(STORY, RIVER, BIRDS)}'
            f'<div class="sidebar">Chapters and more chapters to read</div></div></body>')
    assert lines(html) == [STORY, RIVER, BIRDS]


def test_a_form_around_the_whole_page_is_a_wrapper_not_furniture():
    # ASP.NET WebForms pages put one <form> around everything.
    html = f'<body><form id="aspnetForm"><nav><a href="/">Home</a></nav>{p(STORY, RIVER, BIRDS)}</form></body>'
    assert lines(html) == [STORY, RIVER, BIRDS]


def test_main_is_preferred_over_the_rest_of_the_page():
    html = f"<body><div>{BIRDS}</div><main>{p(STORY)}</main><div><p>{RIVER}</p></div></body>"
    assert lines(html) == [STORY]


def test_role_main_is_preferred_too():
    html = f'<body><div>{BIRDS}</div><div role="main">{p(STORY, RIVER)}</div></body>'
    assert lines(html) == [STORY, RIVER]


def test_several_articles_are_all_kept_without_what_sits_beside_them():
    html = (f'<body><div class="sidebar">{p("Popular posts this week")}</div>'
            f"<div><article>{p(STORY)}</article><article>{p(RIVER)}</article></div></body>")
    assert lines(html) == [STORY, RIVER]


def test_an_empty_main_falls_back_to_the_whole_page():
    html = f"<body><main><a href='/x'>Skip</a></main><div>{p(STORY)}</div></body>"
    assert lines(html) == [STORY]


# ----------------------------------------------------------------------------- what is furniture inside it

def test_menus_are_dropped_by_link_density_and_inline_links_are_kept():
    menu = "<ul>" + "".join(f"<li><a href='/{i}'>Section {i}</a></li>" for i in range(6)) + "</ul>"
    linked = "Read <a href='/x'>the keeper's diary</a> for the rest of the story, told by the keeper himself."
    html = f"<main>{menu}{p(STORY, linked)}</main>"
    assert lines(html) == [STORY, "Read the keeper's diary for the rest of the story, told by the keeper himself."]


def test_in_page_anchors_are_not_links_away_and_inline_hints_are_not_furniture():
    # Documentation headings link to themselves (mdBook: <a class="header" href="#usage">).
    html = (f"<main><h2><a class='header' href='#usage'>Usage</a></h2>{p(STORY)}"
            "<p>Written by <span class='author'>Ada Novak</span> in Lisbon.</p></main>")
    assert lines(html) == ["Usage", STORY, "Written by Ada Novak in Lisbon."]


@pytest.mark.parametrize("furniture", [
    "<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>",
    "<header><span>The Daily Lantern</span></header>",
    "<aside><h2>Related</h2><p>Ten lighthouses to visit this summer and many more.</p></aside>",
    "<div class='byline'>By the editors, updated today</div>",
    "<div id='cookie-notice'><p>We and our partners store data on your device.</p></div>",
    "<footer><p>Contact the editors at the office.</p></footer>",
])
def test_furniture_beside_the_content_is_dropped(furniture):
    assert lines(f"<main>{furniture}{p(STORY, RIVER)}</main>") == [STORY, RIVER]


@pytest.mark.parametrize("hidden", ["<div hidden>", "<div aria-hidden='true'>", "<div style='display: none'>"])
def test_hidden_elements_are_dropped(hidden):
    assert lines(f"<main>{hidden}Secret search box</div>{p(STORY)}</main>") == [STORY]


def test_code_keeps_its_lines():
    html = f"<main>{p(STORY)}<pre><code>fn main() {{\n    println!(\"hi\");\n}}</code></pre></main>"
    assert lines(html) == [STORY, "fn main() {", 'println!("hi");', "}"]


# ----------------------------------------------------------------------------- bytes, encodings, bad input

def test_a_declared_charset_is_honoured():
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>Un café près de la gare.</p></body></html>'
    extraction = cleaning.extract_page(html.encode("latin-1"))
    assert extraction.text == "Un café près de la gare." and extraction.notes == []
    zh = "<p>你好，世界。这是一个用国标码写的网页。</p>".encode("gbk")
    assert cleaning.extract_text(zh, charset="GBK") == "你好，世界。这是一个用国标码写的网页。"


def test_a_byte_order_mark_wins():
    assert cleaning.extract_text("\ufeff<p>Grüße aus Köln</p>".encode("utf-16-le")) == "Grüße aus Köln"


def test_an_unknown_charset_is_read_as_utf8_with_a_note():
    extraction = cleaning.extract_page('<meta charset="x-klingon"><p>Hello there</p>'.encode())
    assert extraction.text == "Hello there"
    assert any("unknown charset 'x-klingon'" in note for note in extraction.notes)


def test_a_50_mb_page_is_cut_with_a_note():
    raw = b"<html><body><p>" + b"word " * (10 * 1024 * 1024) + b"</p></body></html>"  # 50 MB
    extraction = cleaning.extract_page(raw)
    assert 0 < len(extraction.text) <= cleaning.MAX_TEXT_CHARS
    assert any(note.startswith(f"cut from {len(raw):,} bytes") for note in extraction.notes), extraction.notes


@pytest.mark.parametrize("tag", ["div", "span", "a href='/x'", "table><tr><td", "p"])
def test_an_html_bomb_is_read_with_a_note(tag):
    depth = 10_000  # within the first MAX_HTML_CHARS, so the story is read
    name = tag.split()[0].split(">")[0]
    raw = f"<{tag}>" * depth + STORY + f"</{name}>" * depth
    extraction = cleaning.extract_page(raw)
    assert STORY in extraction.text or name == "a"  # text inside 10,000 links is a link, and links are menus
    assert any("nested deeper than" in note for note in extraction.notes), extraction.notes


@pytest.mark.parametrize("bomb", ["<a " * 20_000, "</" * 20_000, "<!" * 20_000])
def test_unclosed_tags_are_text_and_cost_no_more_than_text(bomb):
    # Python's html.parser looks ahead for a ">" from every one of these "<": quadratic, minutes.
    html, cut = cleaning.defuse_tags(bomb + "<p>end</p>")
    assert cut is None and html.endswith("<p>end</p>") and html.count("&lt;") == 20_000
    assert cleaning.extract_text(bomb + f"<p>{STORY}</p>").endswith(STORY)


def test_a_comment_that_never_closes_ends_the_page():
    html, cut = cleaning.defuse_tags(f"<p>{STORY}</p><!-- <p>hidden</p>" + "<!--" * 10_000)
    assert html == f"<p>{STORY}</p>" and cut == len(html)
    extraction = cleaning.extract_page(f"<p>{STORY}</p><!--" + "<!--" * 10_000)
    assert extraction.text == STORY and "never closed" in extraction.notes[0]


def test_comments_and_scripts_keep_their_angle_brackets():
    html = "<!-- <div>old</div> --><script>if (a<b) { x = '<p>'; }</script><p>a < b and c<d</p>"
    assert cleaning.extract_text(html) == "a < b and c<d"


def test_a_page_of_nothing_but_tags_is_read_only_so_far():
    extraction = cleaning.extract_page("<b></b>" * cleaning.MAX_TAGS + f"<p>{STORY}</p>")
    assert any(f"more than {cleaning.MAX_TAGS:,} tags" in note for note in extraction.notes)


def test_clean_crawl_reports_each_odd_page():
    pages = [("bomb", "<div>" * 5000 + STORY), ("latin", "<p>Caf\xe9 au lait.</p>".encode("latin-1")),
             ("fine", f"<main>{p(STORY, RIVER, BIRDS)}</main>")]
    report = cleaning.clean_crawl(pages)
    notes = {r.url: r.notes for r in report.pages}
    assert notes["fine"] == [] and notes["bomb"] and notes["latin"]
    assert {r.url for r in report.noted()} == {"bomb", "latin"}
    assert report.summary()["pages_with_notes"] == 2


# ----------------------------------------------------------------------------- real pages

def test_the_fixture_folder_says_where_every_page_comes_from():
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert len(REAL_PAGES) >= 5
    for page in REAL_PAGES:
        assert f"`{page.name}`" in readme, f"{page.name} is not described in {FIXTURES / 'README.md'}"


@pytest.mark.parametrize("page", REAL_PAGES, ids=lambda page: page.stem)
def test_no_real_page_comes_out_empty(page):
    text = cleaning.extract_text(page.read_bytes())
    assert len(cleaning.words_of(text)) >= 50, text[:500]


def test_the_mdbook_page_with_sidebar_visible_keeps_its_chapter_and_drops_the_chrome():
    raw = (FIXTURES / "mdbook-rust-book-ownership.html").read_bytes()
    assert b'class="light sidebar-visible"' in raw  # the page the first extractor emptied
    text = cleaning.extract_text(raw)
    assert "Ownership is a set of rules that govern how a Rust program manages memory." in text
    assert "Press S or / to search" not in text  # the keyboard-help pop-up outside <main>


def test_a_page_in_a_declared_legacy_charset():
    raw = (FIXTURES / "docbook-libxslt-xsltproc.html").read_bytes()
    assert b"charset=ISO-8859-1" in raw
    extraction = cleaning.extract_page(raw)
    assert "xsltproc — command line XSLT processor" in extraction.text and extraction.notes == []
