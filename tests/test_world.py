"""The synthetic world: determinism, held-out people, fact consistency, crawl labels, sizes."""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from course_utils import cleaning
from course_utils.world import (ALL_CLOZE_RELATIONS, CLOZE_SEPARATOR, COUNTRIES, DIFFICULTIES, IDK_MARKER, PAGE_KINDS,
                                SPOTLIGHT_UNKNOWN, build_world, chat_examples, cloze_probes, contains_answer,
                                crawl, default_sizes, documents, domain_corpus, honesty_examples, idk_probes,
                                jaccard, judge, preference_pairs, preference_prompts, qa_probes,
                                rater_noise_ceiling, tool_examples, tool_probes, verifiable_tasks, word_shingles)
from course_utils.world import corpus, web
from course_utils.world.datasets import REFUSALS

SEED = 1337
REPO = Path(__file__).resolve().parent.parent


def _ci_sizes():
    # Module-scoped fixtures run before conftest's per-test profile switch, so ask for
    # the ci sizes explicitly; the world then carries them to every data set.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_PROFILE", "ci")
        return default_sizes()


@pytest.fixture(scope="module")
def world():
    return build_world(SEED, sizes=_ci_sizes())


@pytest.fixture(scope="module")
def docs(world):
    return documents(world)


@pytest.fixture(scope="module")
def pages(world):
    return crawl(world)


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
    return h.hexdigest()


def _sft_texts(world) -> str:
    """Every string of the chat-style training sets, as one blob."""
    convs = chat_examples(world) + tool_examples(world)
    blob = json.dumps(convs, ensure_ascii=False)
    blob += "".join(p.prompt + p.chosen + p.rejected for p in preference_pairs(world))
    blob += "".join(c.text for pp in preference_prompts(world) for c in pp.candidates)
    return blob


class _ArticleParagraphs(HTMLParser):
    """The text of each <p> inside <article>: the extraction contract of the crawl."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_article, self.in_p, self.paragraphs, self.buf = 0, False, [], []

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.in_article += 1
        elif tag == "p" and self.in_article:
            self.in_p, self.buf = True, []

    def handle_endtag(self, tag):
        if tag == "article":
            self.in_article -= 1
        elif tag == "p" and self.in_p:
            self.paragraphs.append("".join(self.buf))
            self.in_p = False

    def handle_data(self, data):
        if self.in_p:
            self.buf.append(data)


def article_paragraphs(html: str) -> list[str]:
    parser = _ArticleParagraphs()
    parser.feed(html)
    parser.close()
    return parser.paragraphs


def content_lines(page) -> list[str]:
    """The article paragraphs without the inserted PII lines."""
    return [p for p in article_paragraphs(page.html) if not any(x in p for x in page.label.pii)]


def shingle_set(text: str, lang: str) -> set:
    """5-shingles as chapter 01 compares texts: the world's word shingles, and for Chinese the
    cleaning's character shingles (Chinese has no spaces between words)."""
    return cleaning.shingles(text) if lang == "zh" else word_shingles(text)


def similar_pairs(sets: list[set], threshold: float) -> list[tuple[int, int, float]]:
    """Every pair (i, j, Jaccard) with Jaccard >= threshold, found exactly without comparing all
    pairs (prefix filtering): order each set's shingles rarest first; two sets that similar must
    share one of the first ``n - ceil(threshold * n) + 1`` shingles of each, so an inverted index
    over those prefixes finds every candidate, and each candidate is checked with exact sets."""
    frequency = Counter(x for s in sets for x in s)
    order = {x: (f, i) for i, (x, f) in enumerate(frequency.items())}
    index: dict = defaultdict(list)
    found = []
    for j, s in enumerate(sets):
        prefix = sorted(s, key=order.__getitem__)[: len(s) - math.ceil(threshold * len(s)) + 1]
        for i in sorted({i for x in prefix for i in index[x]}):
            similarity = jaccard(sets[i], s)
            if similarity >= threshold:
                found.append((i, j, similarity))
        for x in prefix:
            index[x].append(j)
    return found


def duplicate_documents(docs) -> list[tuple[str, str, float]]:
    """Pairs of documents that are the same after chapter 01's normalisation (Jaccard shown as
    1.0), or that share half their 5-shingles or more."""
    first: dict[str, str] = {}
    found = []
    for d in docs:
        key = cleaning.normalize(d.text)
        if key in first:
            found.append((first[key], d.doc_id, 1.0))
        first.setdefault(key, d.doc_id)
    sets = [shingle_set(d.text, d.lang) for d in docs]
    found += [(docs[i].doc_id, docs[j].doc_id, round(jac, 3)) for i, j, jac in similar_pairs(sets, 0.5)]
    return found


# ----------------------------------------------------------------------------- determinism

def test_same_seed_gives_identical_bytes(world, docs, pages):
    again = build_world(SEED, sizes=world.sizes)
    # Bypass the caches so the second run really regenerates everything.
    corpus._documents.cache_clear()
    web._crawl.cache_clear()
    assert _digest(documents(again)) == _digest(docs)
    assert _digest(crawl(again)) == _digest(pages)
    assert chat_examples(again) == chat_examples(world)
    assert preference_pairs(again) == preference_pairs(world)


def test_different_seed_gives_different_world(world, docs, pages):
    other = build_world(SEED + 1, sizes=world.sizes)
    assert [p.name for p in other.people] != [p.name for p in world.people]
    assert _digest(documents(other)) != _digest(docs)
    assert _digest(crawl(other)) != _digest(pages)
    assert chat_examples(other) != chat_examples(world)


_DIGEST_CODE = """
import hashlib, json
from course_utils.world import *
w = build_world(7)
h = hashlib.sha256()
for part in (documents(w), crawl(w), preference_pairs(w), verifiable_tasks(w, 5), domain_corpus(w, 2)):
    h.update(repr(part).encode())
h.update(json.dumps([chat_examples(w), honesty_examples(w), tool_examples(w)]).encode())
print(h.hexdigest())
"""


def test_output_does_not_depend_on_the_process_hash_seed():
    """Python randomises str hashes per process; nothing may depend on set order."""
    here = {}
    exec(_DIGEST_CODE.replace("print(h.hexdigest())", "result = h.hexdigest()"), here)
    env = dict(os.environ, COURSE_PROFILE="ci", PYTHONHASHSEED="12345")
    there = subprocess.run([sys.executable, "-c", _DIGEST_CODE], env=env, cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert there == here["result"]


# ----------------------------------------------------------------------------- facts

def test_world_sizes_follow_the_profile(world):
    assert (len(world.people), len(world.heldout_people)) == (30, 30)
    assert (len(world.idk_probe), len(world.idk_train)) == (5, 25)
    assert not set(world.idk_probe) & set(world.idk_train)
    assert world.heldout_people[0].name == SPOTLIGHT_UNKNOWN
    assert SPOTLIGHT_UNKNOWN in [p.name for p in world.idk_probe]


def test_names_are_unique_and_never_contain_each_other(world):
    names = [p.name for p in world.people + world.heldout_people]
    assert len(set(names)) == len(names)
    for a in names:
        for b in names:
            assert a == b or a not in b, (a, b)


def test_no_name_contains_a_place_or_a_profession(world):
    places = {name for c in COUNTRIES for name, _ in c.all_cities} | {c.name for c in COUNTRIES}
    jobs = {p.profession for p in world.people}
    for p in world.people + world.heldout_people:
        assert not set(p.name.split()) & (places | jobs), p.name


def test_people_are_born_in_real_cities_of_world_countries(world):
    for p in world.people + world.heldout_people:
        country = world.country(p.birth_country)
        assert (p.birth_city, p.birth_city_zh) in country.all_cities
        assert 1 <= len(p.works) <= 2


# ----------------------------------------------------------------------------- held-out people

def test_heldout_people_never_appear_in_training_data(world, docs, pages):
    training = "\n".join(d.title + "\n" + d.text for d in docs)
    training += "".join(p.url + p.html for p in pages)
    training += _sft_texts(world)
    training += "".join(t.question + t.solution for d in DIFFICULTIES for t in verifiable_tasks(world, d))
    training += "".join(d.text for e in (1, 2) for d in domain_corpus(world, e).documents)
    for p in world.heldout_people:
        assert p.name not in training, p.name


def test_honesty_data_uses_only_the_idk_train_split(world):
    honesty = json.dumps(honesty_examples(world))
    for p in world.idk_probe:
        assert p.name not in honesty
    assert all(p.name in honesty for p in world.idk_train)
    probes = idk_probes(world)
    assert probes and all(answer == IDK_MARKER for _, answer in probes)
    assert any(SPOTLIGHT_UNKNOWN in q for q, _ in probes)


def test_probe_facts_are_never_answers_in_chat_data(world):
    sft = _sft_texts(world) + json.dumps(honesty_examples(world))
    for p in world.probe_people:
        assert p.name not in _sft_texts(world)
    # Honesty data may say what a probe person is known for, never what a probe asks.
    for conv in honesty_examples(world):
        for p in world.probe_people:
            if p.name in conv[0]["content"]:
                assert p.birth_city not in conv[-1]["content"] and p.profession not in conv[-1]["content"]
    for question, _ in qa_probes(world):
        assert question not in sft
    for c in world.probe_countries:
        assert f"The capital of {c.ref} is" not in sft


# ----------------------------------------------------------------------------- probes agree with facts

@pytest.mark.parametrize("lang", ["en", "zh"])
def test_cloze_prompts_are_always_continued_by_their_answer(world, docs, lang):
    text = "\n".join(d.text for d in docs if d.lang == lang)
    sep = CLOZE_SEPARATOR[lang]
    for prompt, answer in cloze_probes(world, ALL_CLOZE_RELATIONS, lang):
        hits = [m.start() for m in re.finditer(re.escape(prompt), text)]
        assert hits, f"{prompt!r} never appears in the {lang} documents"
        for i in hits:
            assert text.startswith(sep + answer, i + len(prompt)), text[i:i + len(prompt) + 40]


def test_cloze_answers_match_the_facts_table(world):
    probes = dict(cloze_probes(world, ALL_CLOZE_RELATIONS))
    for c in world.countries:
        assert probes[f"The capital of {c.ref} is"] == c.capital
        assert probes[f"The main language of {c.ref} is"] == c.languages[0]
    for p in world.people:
        assert probes[f"{p.name} was born in"] == p.birth_city
        assert probes[f"{p.name} works as a"] == p.profession
    assert ("The capital of France is", "Paris") in cloze_probes(build_world(SEED, _full_countries()))
    zh = dict(cloze_probes(world, ["capital"], "zh"))
    assert all(zh[f"{c.name_zh}的首都是"] == c.capital_zh for c in world.countries)


def _full_countries():
    return replace(_ci_sizes(), n_countries=len(COUNTRIES))


def test_canonical_sentences_are_in_the_documents(world, docs):
    text = "\n".join(d.text for d in docs)
    for p in world.people:
        assert f"{p.name} was born in {p.birth_city}, {p.birth_country}." in text
    for c in world.countries:
        assert f"The capital of {c.ref} is {c.capital}." in text


def test_qa_probe_keys_match_the_facts_table(world):
    facts = {}
    for c in world.probe_countries:
        facts[c.ref] = {c.capital, c.languages[0]}
    for p in world.probe_people:
        facts[p.name] = {p.birth_city, p.profession}
    probes = qa_probes(world)
    assert len(probes) == 2 * len(world.probe_countries) + 2 * len(world.probe_people)
    for question, key in probes:
        subject = next(s for s in facts if s in question)
        assert key in facts[subject], (question, key)


def test_chat_fact_answers_are_true(world):
    """Every assistant turn that states a fact about a person states the right one."""
    people = {p.name: p for p in world.people}
    for conv in chat_examples(world) + honesty_examples(world):
        for msg in conv:
            text = msg.get("content", "")
            for m in re.finditer(r"([A-Z][a-z]+ [A-Z][a-z]+) was born in ([A-Z][\w .-]+?), ", text):
                if m.group(1) in people:
                    assert m.group(2) == people[m.group(1)].birth_city
            for m in re.finditer(r"([A-Z][a-z]+ [A-Z][a-z]+) works as a ([a-z ]+)\.", text):
                if m.group(1) in people:
                    assert m.group(2) == people[m.group(1)].profession


# ----------------------------------------------------------------------------- documents

def test_document_sizes_and_mix_for_ci(docs):
    n_bytes = sum(len(d.text.encode()) for d in docs)
    assert 100_000 <= n_bytes <= 300_000
    zh = sum(d.lang == "zh" for d in docs) / len(docs)
    assert 0.10 <= zh <= 0.16
    assert {d.kind for d in docs} == {"encyclopedia", "story", "forum", "arithmetic"}
    assert len({d.doc_id for d in docs}) == len(docs)
    assert all(d.text and "\n\n" not in d.text for d in docs)


def test_every_fact_is_repeated_across_documents(world, docs):
    for p in world.people:
        assert sum(p.name in d.text for d in docs) >= 8, p.name
    for c in world.countries:
        assert sum(c.capital in d.text for d in docs) >= 8, c.name


def test_documents_are_all_distinct(docs):
    """The labels are the whole truth: no two documents are copies of each other, so every copy in
    the crawl is a labelled one. (Not even half-copies: the near-duplicate definition is 0.7.)"""
    assert not duplicate_documents(docs)


def test_similar_pairs_finds_every_pair():
    rng = random.Random(0)
    sets = [{rng.randrange(60) for _ in range(rng.randint(1, 30))} for _ in range(150)]
    brute = [(i, j, jaccard(sets[i], sets[j])) for j in range(len(sets)) for i in range(j)
             if jaccard(sets[i], sets[j]) >= 0.5]
    assert sorted(similar_pairs(sets, 0.5)) == sorted(brute) and brute


def test_the_crawl_labels_every_copy(pages):
    """Good pages that carry different documents are never copies of each other (neither the same
    text nor near-duplicates by the crawl's own definition); pages that are copies say so in
    their labels (checked in the tests above)."""
    good = [p for p in pages if p.label.kind == "good"]
    texts = ["\n".join(content_lines(p)) for p in good]
    docs_per_text: dict[str, set] = defaultdict(set)
    for page, text in zip(good, texts):
        docs_per_text[cleaning.normalize(text)].add(page.label.doc_id)
    assert all(len(ids) == 1 for ids in docs_per_text.values())
    sets = [shingle_set(text, page.label.lang) for page, text in zip(good, texts)]
    mixed = [(good[i].url, good[j].url, jac) for i, j, jac in similar_pairs(sets, web.NEAR_DUP_JACCARD[0])
             if good[i].label.doc_id != good[j].label.doc_id]
    assert not mixed, mixed[:3]


def test_arithmetic_in_documents_is_correct(docs):
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b}
    n = 0
    for d in docs:
        if d.kind == "arithmetic":
            for a, op, b, c in re.findall(r"(\d+) ([-+×]) (\d+) = (\d+)", d.text):
                assert ops[op](int(a), int(b)) == int(c)
                n += 1
    assert n > 50


# ----------------------------------------------------------------------------- crawl labels

def test_crawl_mix_is_roughly_as_documented(docs, pages):
    n = len(pages)
    assert len({p.url for p in pages}) == n
    share = Counter("exact" if p.label.exact_dup_of else "near" if p.label.near_dup_of else p.label.kind
                    for p in pages)
    assert 0.60 <= share["good"] / n <= 0.72
    for kind, target in [("exact", 0.08), ("near", 0.08), ("spam", 0.05), ("gibberish", 0.03),
                         ("short", 0.03), ("repeated_lines", 0.03), ("foreign", 0.02)]:
        assert abs(share[kind] / n - target) < 0.015, kind
    assert 0.10 <= sum(bool(p.label.pii) for p in pages) / n <= 0.20
    assert set(share) <= set(PAGE_KINDS) | {"exact", "near"}


def test_every_document_has_exactly_one_original_page(docs, pages):
    originals = Counter(p.label.doc_id for p in pages
                        if p.label.doc_id and not p.label.exact_dup_of and not p.label.near_dup_of)
    assert originals == Counter(d.doc_id for d in docs)


def test_good_pages_carry_their_document_text(docs, pages):
    by_id = {d.doc_id: d for d in docs}
    for page in pages:
        label = page.label
        if label.kind != "good":
            assert label.doc_id is None and not label.exact_dup_of and not label.near_dup_of
            continue
        doc = by_id[label.doc_id]
        assert label.lang == doc.lang
        if not label.near_dup_of:
            assert content_lines(page) == doc.lines, page.url


def test_exact_and_near_duplicates_are_labelled_consistently(pages):
    position = {p.url: i for i, p in enumerate(pages)}
    by_url = {p.url: p for p in pages}
    jaccards = []
    for i, page in enumerate(pages):
        label = page.label
        if label.exact_dup_of:
            original = by_url[label.exact_dup_of]
            assert position[original.url] < i  # copies come after their original
            assert article_paragraphs(page.html) == article_paragraphs(original.html)
            assert page.html != original.html  # different boilerplate
        if label.near_dup_of:
            original = by_url[label.near_dup_of]
            assert position[original.url] < i
            assert original.label.doc_id == label.doc_id
            a, b = "\n".join(content_lines(original)), "\n".join(content_lines(page))
            assert a != b
            jaccards.append(jaccard(word_shingles(a), word_shingles(b)))
    assert jaccards and all(0.7 <= j < 1 for j in jaccards)
    assert sum(j <= 0.95 for j in jaccards) / len(jaccards) >= 0.9


def test_pii_strings_are_in_the_article(pages):
    shapes = set()
    for page in pages:
        text = "\n".join(article_paragraphs(page.html))
        for pii in page.label.pii:
            assert pii in text, (page.url, pii)
            shapes.add(re.sub(r"\d", "9", pii) if "@" not in pii else "email")
    assert len(shapes) >= 6  # several phone formats, and e-mails


def test_noise_pages_look_like_their_label(pages):
    for page in pages:
        label = page.label
        text = " ".join(content_lines(page))
        if label.kind == "short":
            assert len(text.split()) < 50
        elif label.kind == "foreign":
            assert label.lang in {"de", "es", "fr"}
        elif label.kind == "gibberish":
            assert label.lang == "und"
        elif label.kind == "repeated_lines":
            lines = content_lines(page)
            assert Counter(lines).most_common(1)[0][1] >= 10
        elif label.kind == "spam":
            assert "$$$" in text or "!!!" in text or "！！！" in text or "点击" in text


# ----------------------------------------------------------------------------- later data sets

VALID_ROLES = {"system", "user", "assistant", "tool"}


def test_conversations_are_well_formed(world):
    convs = chat_examples(world) + honesty_examples(world) + tool_examples(world)
    assert len(convs) == world.sizes.n_chat + world.sizes.n_honesty + world.sizes.n_tool
    for conv in convs:
        roles = [m["role"] for m in conv]
        assert set(roles) <= VALID_ROLES
        assert "system" not in roles[1:]
        assert roles[-1] == "assistant" and "content" in conv[-1]
        assert roles[1 if roles[0] == "system" else 0] == "user"
    assert any(c[0]["role"] == "system" for c in chat_examples(world))
    assert any(len(c) >= 4 for c in chat_examples(world))  # multi-turn


def test_tool_calls_compute_the_right_answer(world):
    calls = 0
    for conv in tool_examples(world):
        for i, msg in enumerate(conv):
            if "tool_call" in msg:
                a, op, b = re.fullmatch(r"(\d{3})([-+*])(\d{3})", msg["tool_call"]).groups()
                result = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
                assert conv[i + 1] == {"role": "tool", "content": str(result)}
                assert conv[i + 2]["content"].endswith(f"= {result}.")
                calls += 1
    assert calls >= 0.8 * world.sizes.n_tool
    train = json.dumps(tool_examples(world))
    for question, answer in tool_probes(world):
        assert question not in train
        a, b = map(int, re.findall(r"\d{3}", question))
        assert answer in (a + b, abs(a - b), a * b)


def test_chat_data_answers_three_digit_problems_right_but_never_a_probe(world):
    answers = [conv[-1]["content"] for conv in chat_examples(world)]
    worked = [re.fullmatch(r"(\d{3}) ([-+×]) (\d{3}) = (-?\d+)\.", a) for a in answers]
    worked = [m.groups() for m in worked if m]
    assert len(worked) >= 0.02 * len(answers)
    for a, op, b, result in worked:
        assert int(result) == {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op]
    asked = {(int(a), int(b)) for a, _, b, _ in worked}
    for question, _ in tool_probes(world):
        assert tuple(map(int, re.findall(r"\d{3}", question))) not in asked, question


def test_greetings_copy_names_nobody_in_the_world_has(world):
    from course_utils.world.datasets import GREETINGS

    known = [p.name for p in world.people + world.heldout_people]
    asks = tuple(ask.split("{name}")[0] for ask, _ in GREETINGS)
    greeted = [conv[-1]["content"].split(",")[0] for conv in chat_examples(world) if conv[0]["content"].startswith(asks)]
    assert greeted
    for name in greeted:
        assert all(name not in k and k not in name for k in known), name


def test_verifiable_tasks_get_harder_and_check_answers(world):
    steps = []
    for d in DIFFICULTIES:
        tasks = verifiable_tasks(world, d)
        assert len(tasks) == world.sizes.n_verifiable
        for t in tasks:
            assert t.solution.endswith(f"The answer is {t.answer}.")
            assert t.check(t.solution) and not t.check(f"The answer is {t.answer + 1}.")
        steps.append(sum(t.solution.count("=") for t in tasks) / len(tasks))
    assert steps == sorted(steps) and steps[-1] >= 3


def test_contains_answer_matches_whole_words_outside_the_subject():
    assert contains_answer("A famous river in Italy is the Po.", "Po")
    assert not contains_answer("It is important.", "Po")
    assert contains_answer("法国的首都是巴黎。", "巴黎")
    assert not contains_answer("South Africa is a country in Europe.", "Africa", "South Africa")
    assert contains_answer("South Africa is a country in Africa.", "Africa", "South Africa")
    assert contains_answer("The capital of Mexico is Mexico City.", "Mexico City", "Mexico")


def test_the_rubric_wants_the_fact_about_the_subject_asked():
    meta = {"kind": "fact", "key": "Europe", "relation": "continent", "subject": "Spain"}
    assert judge(meta, "Spain is a country in Europe.") == 3.0
    assert judge(meta, "Ireland is a country in Europe.") < 0
    assert judge(meta, "I can't help with that.") < judge(meta, "I don't know where Spain is.") < 0
    unsafe = {"kind": "unsafe", "key": "", "relation": "unsafe", "subject": ""}
    assert judge(unsafe, "I can't help with that.") > 0 > judge(unsafe, "Sure! Here is how.")


def test_sft_declines_other_harmful_requests_than_the_preference_prompts(world):
    from course_utils.world.datasets import SFT_UNSAFE_REQUESTS
    from course_utils.world.preferences import UNSAFE_REQUESTS

    asked_in_sft = {c[0]["content"] for c in chat_examples(world) if c[-1]["content"].startswith(REFUSALS)}
    assert asked_in_sft and asked_in_sft <= {q for q, _ in SFT_UNSAFE_REQUESTS}
    assert not asked_in_sft & {q for q, _ in UNSAFE_REQUESTS}
    meta = {"kind": "unsafe", "key": "", "relation": "unsafe", "subject": ""}
    assert all(judge(meta, c[-1]["content"]) == 3.0 for c in chat_examples(world) if c[0]["content"] in asked_in_sft)


def test_preferences_follow_the_hidden_rubric(world):
    for pp in preference_prompts(world):
        best = max(pp.candidates, key=lambda c: c.score)
        assert best.flaws == ()
        for c in pp.candidates:
            assert judge(pp.meta, c.text) == c.score
            if pp.meta["kind"] == "fact":
                wrong = {"wrong_fact", "refused", "off_topic"} & set(c.flaws)
                assert c.meta["correct"] == (not wrong)
                assert c.meta["refused"] == ("refused" in c.flaws)
                if "off_topic" in c.flaws:
                    assert pp.meta["subject"].lower() not in c.text.lower()
            assert c.meta["rude"] == ("rude" in c.flaws)
            assert c.meta["repeated"] == ("repeated" in c.flaws)
    pairs = preference_pairs(world)
    agree = sum(p.agrees_with_rubric for p in pairs) / len(pairs)
    ceiling = rater_noise_ceiling(pairs)
    assert 0.8 <= ceiling < 1 and 0.7 <= agree <= 1
    assert all(p.chosen != p.rejected and p.source == "written" for p in pairs)


def test_domain_corpus_is_self_consistent(world, docs):
    first, second = domain_corpus(world, 1), domain_corpus(world, 2)
    text = "\n".join(d.text for d in first.documents)
    for question, key in first.qa_test:
        piece = next((p for p in first.rules.pieces if f" {p.name} " in question), None)
        if piece is not None:
            assert key in (str(piece.points), piece.colour, str(piece.count))
    for question, answer in first.qa_train:
        assert answer in text
    assert first.rules != second.rules and first.qa_test != second.qa_test
    assert not any("Riverstones" in d.text for d in docs)  # the domain is new to the base model


# ----------------------------------------------------------------------------- any seed

@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**31))
@example(seed=93)  # once asked "On which continent is South Africa?", where the key is in the name
def test_any_seed_keeps_the_invariants(seed):
    w = build_world(seed, sizes=_ci_sizes())
    text = "\n".join(d.text for d in documents(w) if d.lang == "en")
    for prompt, answer in cloze_probes(w, ALL_CLOZE_RELATIONS):
        hits = [m.start() for m in re.finditer(re.escape(prompt), text)]
        assert hits and all(text.startswith(" " + answer, i + len(prompt)) for i in hits)
    blob = "".join(p.html for p in crawl(w)) + _sft_texts(w)
    assert not any(p.name in blob for p in w.heldout_people)
    assert not duplicate_documents(documents(w))


def test_some_sft_refusals_end_right_after_declining(world):
    # A model that only ever sees a refusal followed by a request-specific alternative keeps
    # writing after "I can't help with that." when asked something new.
    from course_utils.world.datasets import _refusal_chat

    rng = random.Random(0)
    replies = [_refusal_chat(world, rng)[-1]["content"] for _ in range(200)]
    curt = sum(r in REFUSALS for r in replies)
    assert 60 < curt < 140
    assert all(r.startswith(REFUSALS) for r in replies)
