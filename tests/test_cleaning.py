"""Chapter 01's cleaning pipeline: each step on hand-made pages, then the whole chain on the world's crawl."""
import json
import time
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import cleaning

# ----------------------------------------------------------------------------- hand-made pages

ADA = ("Ada Novak was born in Lisbon in 1987. She trained as a painter at the city academy and later "
       "moved to Prague, where she wrote two books about the rivers of Central Europe. Her second book, "
       "The Slow Water, describes a journey along the Vltava from its source to the place where it meets "
       "the Elbe. Critics praised the book for its careful drawings and its calm, precise language.")
RIVERS = ("The Danube is the second longest river in Europe. It rises in the Black Forest of Germany and "
          "flows east through ten countries, including Austria, Hungary, Serbia and Romania, before it "
          "reaches the Black Sea. Four capital cities stand on its banks, more than on any other river "
          "in the world, and boats have carried goods along it for thousands of years.")
ZH = ("李明出生在杭州，是一位有名的工程师。他在大学里学习了物理，后来到上海的一家公司工作。"
      "他说自己最喜欢的事情是和学生们一起讨论问题，因为这样可以学到很多新的东西。"
      "每年春天，他都会回到家乡，看看西湖边上的樱花。")


def page(body: str, title: str = "A page") -> str:
    """Wrap content in the kind of boilerplate a real site adds."""
    return f"""<!DOCTYPE html><html><head><title>{title}</title>
<script>window.dataLayer = []; function track() {{ return 1; }}</script>
<style>body {{ font-family: serif; }}</style></head><body>
<header><div class="logo">The Daily Example</div></header>
<nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/about">About us</a></li></ul></nav>
<div id="cookie-consent">We use cookies to improve your experience. <button>Accept all</button></div>
<main><article>{body}</article></main>
<div class="related"><ul><li><a href="/1">Ten rivers you must see</a></li><li><a href="/2">The best painters of 1987</a></li></ul></div>
<footer><p>© 2024 The Daily Example. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
</body></html>"""


def paragraphs(*texts: str) -> str:
    return "".join(f"<p>{t}</p>" for t in texts)


# ----------------------------------------------------------------------------- 1. extraction

def test_extraction_drops_boilerplate_and_keeps_paragraphs():
    text = cleaning.extract_text(page("<h1>Ada Novak</h1>" + paragraphs(ADA, RIVERS)))
    assert text.splitlines() == [ADA, RIVERS]  # the <h1> title is metadata, like the <title>


@pytest.mark.parametrize("noise", [
    "<script>var secret = 'do not keep me';</script>",
    "<style>.x { color: red }</style>",
    "<nav><a href='/'>Home</a> <a href='/x'>Shop</a></nav>",
    "<div class='site-menu'><span>Products</span> <span>Pricing</span></div>",
    "<div><a href='/a'>Popular</a> | <a href='/b'>Latest</a> | <a href='/c'>Archive</a></div>",
    "<p>This site uses cookies. By continuing you accept our cookie policy.</p>",
    "<form><label>Subscribe to our newsletter</label><input type='text'></form>",
])
def test_extraction_drops_each_kind_of_noise(noise):
    text = cleaning.extract_text(f"<html><body>{noise}<p>{ADA}</p></body></html>")
    assert text == ADA


def test_extraction_keeps_inline_links_and_decodes_entities():
    html = "<p>Read <a href='/b'>her book</a> &amp; enjoy &#20320;&#22909;.</p><p>Second<br>line</p>"
    assert cleaning.extract_text(html).splitlines() == ["Read her book & enjoy 你好.", "Second", "line"]


def test_extraction_survives_broken_html():
    html = "<div><p>Unclosed paragraph <b>bold <i>both</p></div></span></nav><p>After</p><script>never closed"
    assert cleaning.extract_text(html).splitlines() == ["Unclosed paragraph bold both", "After"]


# ----------------------------------------------------------------------------- 2. language id

@pytest.mark.parametrize("text, lang", [
    (ADA, "en"),
    (RIVERS, "en"),
    (ZH, "zh"),
    ("Der Hund läuft über die Straße und die Katze schläft auf dem Sofa, weil es draußen regnet.", "de"),
    ("Le chat dort sur le canapé et le chien joue dans le jardin avec les enfants.", "fr"),
    ("El perro corre por la calle y el gato duerme en la casa de la abuela.", "es"),
    ("Собака бежит по улице, а кошка спит на диване.", "ru"),
    ("", "und"),
    ("1234 5678", "und"),
])
def test_language_id(text, lang):
    assert cleaning.identify_language(text) == lang


def test_language_filter_keeps_en_zh_and_leaves_undetermined_to_quality():
    assert cleaning.language_problem("en") is None
    assert cleaning.language_problem("zh") is None
    assert cleaning.language_problem("und") is None
    assert "de" in cleaning.language_problem("de")


# ----------------------------------------------------------------------------- 3. quality rules

REPEATED = "\n".join(["Best deals on shoes today."] * 12 + [ADA])
GIBBERISH = " ".join(["xqzt vlorp mekkan trovik zunda plimsk abrot kelvani"] * 8)
ZH_GIBBERISH = "鑫鬻鼉麤齉爨灪驫龘靐" * 10


@pytest.mark.parametrize("text, rule", [
    ("Welcome to my page.", "too_few_words"),
    (GIBBERISH, "no_stop_words"),
    ("supercalifragilisticexpialidocious " * 50, "odd_word_length"),
    (REPEATED, "repeated_lines"),
    (" ".join(["#deal #sale #shoes #win the best of"] * 10), "too_many_symbols"),
    (" ".join(["extraordinary 1 2 3 of the 4 5"] * 10), "too_few_alpha_words"),
    ("\n".join(f"Item {i} of the list with the best {w}" for i, w in enumerate(["shoes", "hats"] * 5)),
     "few_lines_end_in_punctuation"),
    (ZH_GIBBERISH, "no_stop_words"),
])
def test_quality_rules_reject_with_the_right_reason(text, rule):
    problem = cleaning.quality_problem(text)
    assert problem is not None and problem[0] == rule, problem
    assert problem[1]  # a reason a person can read


@pytest.mark.parametrize("text", [ADA, RIVERS, ADA + "\n" + RIVERS, ZH + ZH.replace("李明", "王芳")])
def test_quality_rules_keep_good_text(text):
    assert cleaning.quality_problem(text) is None


# ----------------------------------------------------------------------------- 4. spam

SPAM = ("CLICK HERE to WIN a FREE iPhone!!! Limited time offer, buy now and save 90%! "
        "Cheap pills, no prescription needed. Visit www.best-deals.example now!!! $$$ guaranteed $$$.")


def test_spam_filter_flags_ads_not_prose():
    assert cleaning.spam_problem(SPAM) is not None
    assert "phrases" in cleaning.spam_problem(SPAM)  # the reason names its evidence
    for text in (ADA, RIVERS, ZH, ADA + " The museum is free on Sundays."):
        assert cleaning.spam_problem(text) is None, cleaning.spam_signals(text)


# ----------------------------------------------------------------------------- 5. exact dedup

def test_exact_dedup_ignores_case_punctuation_and_whitespace():
    texts = [ADA, RIVERS, ADA.upper().replace(".", " ! "), "  ".join(ADA.split()), RIVERS + " Extra words."]
    assert cleaning.exact_duplicates(texts) == [None, None, 0, 0, None]


# ----------------------------------------------------------------------------- 6. near dedup

def test_near_dup_detects_one_changed_word_and_not_unrelated_text():
    long_ada = ADA + " " + RIVERS
    edited = long_ada.replace("painter", "sculptor")
    unrelated = ("Honey bees live in colonies of many thousands. A single queen lays the eggs while the "
                 "workers gather nectar, build the comb and guard the hive. In winter the bees cluster "
                 "together and shiver to keep warm, living on the honey they stored during the summer.")
    assert cleaning.jaccard(cleaning.shingles(long_ada), cleaning.shingles(edited)) > 0.8
    assert cleaning.near_duplicates([long_ada, unrelated, edited]) == [None, None, 0]


def test_near_dup_uses_characters_for_chinese():
    edited = ZH.replace("工程师", "设计师")
    assert all(len(s) == cleaning.SHINGLE_SIZE and " " not in s for s in cleaning.shingles(ZH))
    assert cleaning.near_duplicates([ZH, edited, RIVERS]) == [None, 0, None]


def test_near_dup_clusters_keep_the_first():
    a = ADA + " " + RIVERS
    b = a.replace("Lisbon", "Porto")
    c = b.replace("Prague", "Vienna")
    assert cleaning.near_duplicates([RIVERS, a, b, c]) == [None, None, 1, 1]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(0, 300), st.integers(0, 300))
def test_minhash_estimates_jaccard(shared, only_a, only_b):
    # Two sets built from disjoint word pools, so the true Jaccard is known exactly.
    a = {f"s{i}" for i in range(shared)} | {f"a{i}" for i in range(only_a)}
    b = {f"s{i}" for i in range(shared)} | {f"b{i}" for i in range(only_b)}
    true = cleaning.jaccard(a, b)
    est = cleaning.estimated_jaccard(cleaning.minhash_signature(cleaning.hash_shingles(a)),
                                     cleaning.minhash_signature(cleaning.hash_shingles(b)))
    # The estimate is a mean of NUM_PERM coin flips: standard deviation ≤ 0.5 / sqrt(NUM_PERM)
    # (0.016 for 1024); allow 6 of them.
    assert abs(est - true) <= 6 * 0.5 / cleaning.NUM_PERM ** 0.5


def test_lsh_s_curve():
    s = np.linspace(0, 1, 101)
    p = cleaning.lsh_detection_probability(s, bands=16, rows=8)
    assert p[0] == 0 and p[-1] == 1 and np.all(np.diff(p) >= 0)
    assert p[50] < 0.1 < 0.9 < p[90]  # the S: unlikely at 0.5, near certain at 0.9
    assert cleaning.lsh_detection_probability(0.8, 2, 3) == pytest.approx(1 - (1 - 0.8**3) ** 2)


# ----------------------------------------------------------------------------- 7. PII

@pytest.mark.parametrize("pii, token", [
    ("ada.novak@example.org", "<EMAIL>"),
    ("li_ming+news@mail.example.co.uk", "<EMAIL>"),
    ("+44 20 7946 0958", "<PHONE>"),
    ("+1 (555) 123-4567", "<PHONE>"),
    ("+86 138 0013 8000", "<PHONE>"),
    ("+49-30-1234567", "<PHONE>"),
    ("(555) 123-4567", "<PHONE>"),
    ("555-123-4567", "<PHONE>"),
    ("555.123.4567", "<PHONE>"),
])
def test_pii_redacted(pii, token):
    for template in ("Contact {} today.", "联系方式：{}。", "{}", "Write ({}) or call."):
        text = template.format(pii)
        out = cleaning.redact_pii(text)
        assert pii not in out and out == template.format(token), out


@pytest.mark.parametrize("text", [
    "She was born in 1987 and died in 2031.",
    "12 + 7 = 19 and 125 - 37 = 88, so 3 * 4 = 12.",
    "The war lasted from 1914-1918.",
    "The meeting is on 2023-01-15 at 10:30.",
    "Population: 8,400,000 people; the river is 2,850 km long.",
    "Order 123456 shipped. Version 3.11.7 was released.",
    "Write to us at the office (no email).",
])
def test_pii_leaves_numbers_alone(text):
    assert cleaning.redact_pii(text) == text
    assert cleaning.find_pii(text) == []


# ----------------------------------------------------------------------------- bad input

def test_empty_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="empty corpus"):
        cleaning.clean_crawl([])


def test_non_utf8_bytes_never_crash():
    bad = b"\xff\xfe\xc3(" + "中文 ok".encode("gbk")  # not UTF-8, and no charset says what it is
    raw = page(paragraphs(ADA, "MARK")).encode("utf-8").replace(b"MARK", bad)
    extraction = cleaning.extract_page(raw)
    assert ADA in extraction.text and "\ufffd" in extraction.text
    assert any("not utf-8" in note and "no charset declared" in note for note in extraction.notes), extraction.notes
    report = cleaning.clean_crawl([("u1", raw), ("u2", b"\x80\x81\x82" * 100)])
    assert [p.kept for p in report.pages] == [True, False]


def test_huge_page_of_one_character_is_filtered_quickly():
    start = time.perf_counter()
    report = cleaning.clean_crawl([("huge", "a" * 10_000_000), ("huge-bytes", b"<" * 10_000_000),
                                   ("ok", page(paragraphs(ADA)))])
    assert time.perf_counter() - start < 5
    assert [p.removed_by for p in report.pages] == ["quality", "quality", None]


def test_pages_of_any_shape_are_accepted():
    with pytest.raises(TypeError, match="page 0"):
        cleaning.clean_crawl([42])
    report = cleaning.clean_crawl([page(paragraphs(ADA))])
    assert report.pages[0].url == "page-0" and report.pages[0].kept


# ----------------------------------------------------------------------------- the whole pipeline on a fake crawl

@dataclass(frozen=True)
class Label:
    doc_id: str | None
    kind: str
    lang: str
    exact_dup_of: str | None = None
    near_dup_of: str | None = None
    pii: tuple = ()


@dataclass(frozen=True)
class FakePage:
    url: str
    html: str
    label: Label


def fake_crawl():
    contact = " You can reach the author at ada.novak@example.org or on +44 20 7946 0958."
    return [
        FakePage("u/ada", page(paragraphs(ADA + contact, RIVERS)), Label("d1", "good", "en", pii=(
            "ada.novak@example.org", "+44 20 7946 0958"))),
        FakePage("u/zh", page(paragraphs(ZH, ZH.replace("李明", "王芳"))), Label("d2", "good", "zh")),
        FakePage("u/ada-reprint", page(paragraphs(ADA + contact, RIVERS), "Reprint"), Label(
            "d1", "good", "en", exact_dup_of="u/ada", pii=("ada.novak@example.org", "+44 20 7946 0958"))),
        FakePage("u/ada-edit", page(paragraphs(ADA.replace("painter", "sculptor"), RIVERS)),
                 Label("d1", "good", "en", near_dup_of="u/ada")),
        FakePage("u/spam", page(paragraphs(SPAM, SPAM.lower())), Label(None, "spam", "en")),
        FakePage("u/gib", page(paragraphs(GIBBERISH)), Label(None, "gibberish", "en")),
        FakePage("u/short", page("<p>Coming soon.</p>"), Label(None, "short", "en")),
        FakePage("u/rep", page("".join(f"<p>{line}</p>" for line in REPEATED.splitlines())),
                 Label(None, "repeated_lines", "en")),
        FakePage("u/de", page(paragraphs(
            "Der Hund läuft über die Straße und die Katze schläft auf dem Sofa, weil es draußen regnet. " * 4)),
            Label(None, "foreign", "de")),
    ]


def test_clean_crawl_on_a_fake_crawl():
    pages = fake_crawl()
    report = cleaning.clean_crawl(pages)
    fate = {p.url: p.removed_by for p in report.pages}
    assert fate == {"u/ada": None, "u/zh": None, "u/ada-reprint": "exact_dup", "u/ada-edit": "near_dup",
                    "u/spam": "spam", "u/gib": "quality", "u/short": "quality", "u/rep": "quality",
                    "u/de": "language"}
    docs = report.documents()
    assert [d["id"] for d in docs] == ["u/ada", "u/zh"] and [d["lang"] for d in docs] == ["en", "zh"]
    assert "<EMAIL>" in docs[0]["text"] and "<PHONE>" in docs[0]["text"]
    assert "ada.novak" not in docs[0]["text"]
    funnel = report.counts()
    assert funnel[0]["pages_in"] == 9 and funnel[-1]["pages_out"] == 2
    scores = {row["filter"]: row for row in cleaning.score_against_labels(report, pages)}
    assert set(scores) == set(cleaning.FILTERS) | {"pii"}
    for row in scores.values():
        assert row["precision"] == 1.0 and row["recall"] == 1.0, row


def test_train_val_split_is_deterministic_and_about_five_percent():
    docs = [{"id": str(i), "lang": "en", "text": f"document number {i}"} for i in range(4000)]
    train, val = cleaning.split_train_val(docs)
    assert len(train) + len(val) == 4000 and 0.03 < len(val) / 4000 < 0.07
    assert cleaning.split_train_val(docs) == (train, val)
    assert not {d["id"] for d in train} & {d["id"] for d in val}


# ----------------------------------------------------------------------------- more rules, seen in the world's crawl

def test_worked_arithmetic_and_fact_boxes_are_kept():
    math = "\n".join(["Addition practice.", "12 + 7 = 19", "25 + 17 = 42", "30 - 4 = 26", "9 × 8 = 72", "100 - 1 = 99"])
    zh_math = "\n".join(["27加6等于33。", "3加15等于18。", "31加26等于57。", "12加35等于47。"])
    box = "\n".join(["Country: France", "Capital: Paris", "Continent: Europe", "Main language: French",
                     "Rivers: Seine, Loire", "In one sentence: The capital of France is Paris."])
    for text in (math, zh_math, box):
        assert cleaning.quality_problem(text) is None, (text, cleaning.quality_problem(text))


@pytest.mark.parametrize("text", [
    "Page not found. The page you are looking for does not exist. Please try the home page instead.",
    "This page is under construction. Please come back later, we are working hard on it right now.",
    "网站正在建设中，敬请期待。我们很快就会回来，请稍后再来访问本网站，谢谢。",
])
def test_placeholder_pages_are_rejected(text):
    assert cleaning.quality_problem(text)[0] == "placeholder_page"


def test_too_little_text_for_a_language_guess():
    assert cleaning.identify_language("Tel. +1 415 555 0120 | E-mail: x@y.example.com Nothing here yet.") == "und"


def test_dedup_view_drops_contact_lines_and_masks_pii_in_prose():
    text = "\n".join([ADA, "Call us on +44 20 7946 0958.", RIVERS + " Write to ada.novak@example.org."])
    view = cleaning.dedup_view(text)
    assert view.splitlines() == [ADA, RIVERS + " Write to <EMAIL>."]


# ----------------------------------------------------------------------------- the world's crawl, end to end (ci profile)

@pytest.fixture(scope="module")
def ci_crawl_and_report():
    from course_utils import config, world

    with pytest.MonkeyPatch.context() as mp:  # module scope runs before conftest's per-test fixture
        mp.setenv("COURSE_PROFILE", "ci")
        pages = world.crawl(world.build_world(config.DEFAULT_SEED))
        report = cleaning.clean_crawl(pages)
    return pages, report


def test_scores_on_the_ci_crawl_stay_above_a_floor(ci_crawl_and_report):
    pages, report = ci_crawl_and_report
    scores = {row["filter"]: row for row in cleaning.score_against_labels(report, pages)}
    for name, row in scores.items():
        assert row["precision"] >= 0.8 and row["recall"] >= 0.8, row
    assert scores["pii"]["recall"] >= 0.99, scores["pii"]
    assert scores["spam"]["actual"] > 0 and scores["near_dup"]["actual"] > 0  # the crawl has both


def test_no_inserted_pii_survives_in_the_corpus(ci_crawl_and_report):
    pages, report = ci_crawl_and_report
    corpus = "\n".join(d["text"] for d in report.documents())
    leaked = [s for p in pages for s in p.label.pii if s in corpus]
    assert not leaked, leaked[:5]


def test_build_clean_stage_then_load_round_trip():
    from course_utils import stages

    train = cleaning.load_clean_corpus("train")  # nothing on disk yet: ensure_stage builds it
    val = cleaning.load_clean_corpus("val")
    stage = stages.load_stage("clean")
    assert stage.meta["profile"] == "ci"
    assert len(train) == stage.metrics["train_documents"] > 0
    assert len(val) == stage.metrics["val_documents"] > 0
    assert len(train) + len(val) == stage.metrics["documents_out"]
    assert all(isinstance(t, str) and t for t in train + val)
    docs = cleaning.load_clean_documents("train") + cleaning.load_clean_documents("val")
    assert len({d["id"] for d in docs}) == len(docs)
    # "und": pages with no words to judge, like a worksheet of sums ("12 + 7 = 19").
    assert {"en", "zh"} <= {d["lang"] for d in docs} <= {"en", "zh", "und"}
    report = json.loads(stage.path("report.json").read_text(encoding="utf-8"))
    assert report["documents_out"] == len(docs) and report["scores"]
    assert stage.metrics["near_dup"]["recall"] >= 0.8
    with pytest.raises(ValueError, match="split"):
        cleaning.load_clean_corpus("test")


def test_build_clean_stage_refuses_an_empty_corpus(monkeypatch):
    from course_utils import stages, world

    monkeypatch.setattr(world, "build_world", lambda seed: None)
    monkeypatch.setattr(world, "crawl", lambda w: [FakePage("u/x", "<p>Coming soon.</p>", Label(None, "short", "en"))])
    with pytest.raises(ValueError, match="corpus is empty"):
        cleaning.build_clean_stage()
    assert not stages.stage_exists("clean")
