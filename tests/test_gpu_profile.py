"""The `gpu` profile, checked on a CPU: its world at full size, with the invariants the chapters
rely on at every profile; the world's pools failing clearly when asked for too much; and a
smoke run of the whole chain (COURSE_SMOKE=1: the gpu shapes, one or two steps per stage)
through the builders the chapters call. benchmarks/gpu_smoke.py measures the same run."""
from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from dataclasses import replace
from functools import partial

import pytest

from course_utils import config, stages
from course_utils.world import (DIFFICULTIES, WorldSizeError, build_world, chat_examples, crawl, default_sizes,
                                documents, domain_corpus, honesty_examples, idk_probes, preference_prompts,
                                qa_probes, tool_examples, tool_probes, verifiable_tasks)
from course_utils.world import corpus, facts, web

SEED = 1337


def _sizes(profile: str):
    # Module-scoped fixtures run before conftest's per-test profile switch: ask explicitly.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_PROFILE", profile)
        return default_sizes()


@pytest.fixture(scope="module")
def gpu_world():
    yield build_world(SEED, sizes=_sizes("gpu"))
    # The gpu corpus and crawl are cached (the smoke run below reuses them): let them go.
    corpus._documents.cache_clear()
    web._crawl.cache_clear()


# ----------------------------------------------------------------------------- the pools

def test_the_gpu_world_builds_with_a_title_for_every_work(gpu_world):
    # Issue 16: 600 + 600 people outran the 1,274 work titles ("pop from empty list").
    sizes = _sizes("gpu")
    assert (len(gpu_world.people), len(gpu_world.heldout_people)) == (sizes.n_people, sizes.n_heldout)
    titles = [w.title for p in gpu_world.people + gpu_world.heldout_people for w in p.works]
    titles_zh = [w.title_zh for p in gpu_world.people + gpu_world.heldout_people for w in p.works]
    assert len(titles) > len(facts._titles(facts.TITLE_NOUNS))  # more than the first pool held
    assert len(set(titles)) == len(titles) == len(set(titles_zh))
    names = [p.name for p in gpu_world.people + gpu_world.heldout_people]
    assert len(set(names)) == len(names)


def test_every_profile_fits_the_pools_for_the_largest_world():
    for profile in config.PROFILES:
        facts.check_sizes(_sizes(profile))
    gpu = _sizes("gpu")
    assert 2 * (gpu.n_people + gpu.n_heldout) <= facts.TITLE_POOL_SIZE


def test_growing_the_title_pool_leaves_the_smaller_worlds_alone():
    # The added titles are drawn last, so ci and cpu worlds use only the original ones.
    original = {t for t, _ in facts._titles(facts.TITLE_NOUNS)}
    for profile in ("ci", "cpu"):
        w = build_world(SEED, sizes=_sizes(profile))
        assert {wk.title for p in w.people + w.heldout_people for wk in p.works} <= original


def _words_inside(title: str) -> set[str]:
    words = title.split()
    return {" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)} - {title}


def _chars_inside(title: str) -> set[str]:
    return {title[i:j] for i in range(len(title)) for j in range(i + 1, len(title) + 1)} - {title}


def test_no_title_contains_another_in_either_language():
    titles = facts._titles(facts.TITLE_NOUNS + facts.MORE_TITLE_NOUNS)
    assert len(titles) == facts.TITLE_POOL_SIZE
    english, chinese = {t for t, _ in titles}, {z for _, z in titles}
    assert len(english) == len(chinese) == len(titles)
    for title, title_zh in titles:
        assert not _words_inside(title) & english, title
        assert not _chars_inside(title_zh) & chinese, title_zh


@pytest.mark.parametrize("field, value, pool", [
    ("n_people", 2000, "work titles"),
    ("n_countries", len(facts.COUNTRIES) + 1, "countries"),
    ("n_idk_probe", 600, "held-out people"),
    ("n_domain_pieces", 21, "domain pieces"),
])
def test_asking_for_more_than_a_pool_holds_names_the_pool_and_the_sizes(field, value, pool):
    with pytest.raises(WorldSizeError) as err:
        build_world(SEED, sizes=replace(_sizes("gpu"), **{field: value}))
    assert pool in str(err.value) and f"{value}" in str(err.value).replace(",", "")


def test_a_used_up_name_pool_is_a_clear_error_not_an_endless_loop(monkeypatch):
    monkeypatch.setattr(facts, "FEMALE_NAMES", ("Ada",))
    monkeypatch.setattr(facts, "MALE_NAMES", ("Bruno",))
    monkeypatch.setattr(facts, "SURNAME_HEADS", ("Ko",))
    monkeypatch.setattr(facts, "SURNAME_TAILS", ("vak", "sen"))
    with pytest.raises(WorldSizeError, match="pool of names is used up"):
        build_world(SEED, sizes=_sizes("ci"))


SENTENCES = ("Once upon a time a small cat lived by the sea and sang every day.",
             "The old mill stood on the hill where the wind blew from the north.",
             "Three friends walked to the market to buy apples, bread and cheese.")


def _few_ways(rng: random.Random, k: int):
    """A document generator whose templates can write three different documents only."""
    return corpus._Draft("story", "en", "A story", [rng.choice(SENTENCES)], ())


def _many_ways(rng: random.Random, k: int):
    return corpus._Draft("story", "en", "A story", [" ".join(f"w{k}x{i}" for i in range(12))], ())


def _drafts(generator, ks):
    return [(generator(random.Random(k), k), partial(corpus._remake, generator, (k,), {})) for k in ks]


def test_templates_that_cannot_write_enough_documents_are_an_error():
    world = build_world(SEED, sizes=_sizes("ci"))
    with pytest.raises(WorldSizeError, match="templates of _few_ways: 37 of its 40"):
        corpus._distinct(world, _drafts(_few_ways, range(40)))
    # A few left out (here 1 of 60: a copy that stays a copy) is fine.
    assert len(corpus._distinct(world, _drafts(_many_ways, list(range(59)) + [0]))) == 59


# ----------------------------------------------------------------------------- invariants, every profile

_NAME_START = re.compile(r"[A-Z][a-z]+ (?=([A-Z][a-z]+))")


def names_in(text: str, names) -> set[str]:
    """Which of ``names`` ("First Last") occur in ``text``: the same answer as ``name in text``
    for each (a first name ends at a space, and any word that follows may start with the
    surname), in one pass over the text instead of one per name."""
    surnames = defaultdict(list)
    for name in names:
        first, last = name.split(" ")
        surnames[first].append(last)
    found = set()
    for m in _NAME_START.finditer(text):
        first = m.group(0)[:-1]
        found.update(f"{first} {last}" for last in surnames.get(first, ()) if m.group(1).startswith(last))
    return found


def test_names_in_agrees_with_plain_substring_search():
    text = "Ada Kovak met Mara Ada Belstrom.是Orson Kovacs的朋友 and ZAda Kovakson, ada kovak, Ida Lin"
    names = ["Ada Kovak", "Ada Belstrom", "Orson Kovacs", "Ida Lin", "Mara Ada", "Lin Ko", "Ada Ko"]
    assert names_in(text, names) == {n for n in names if n in text}


def _chat_style_text(world, convs) -> str:
    """Every string of the chat-style training sets (chat, tools, preferences), as one blob."""
    blob = json.dumps(convs, ensure_ascii=False)
    return blob + "".join(pp.prompt + "".join(c.text for c in pp.candidates) for pp in preference_prompts(world))


_OPS = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "×": int.__mul__}


def _solved_problems(convs) -> set:
    """({a, b}, result) of every three-digit problem a conversation works out, with the tool or without."""
    out = set()
    for msg in (m for conv in convs for m in conv):
        for a, op, b in re.findall(r"(\d{3}) ?([-+*×]) ?(\d{3})", msg.get("tool_call") or msg.get("content", "")):
            out.add((frozenset((int(a), int(b))), _OPS[op](int(a), int(b))))
    return out


@pytest.mark.parametrize("profile", config.PROFILES)
def test_heldout_people_and_probes_stay_out_of_training_data(profile):
    world = build_world(SEED, sizes=_sizes(profile))
    docs, pages = documents(world), crawl(world)
    convs = chat_examples(world) + tool_examples(world)
    chat_style = _chat_style_text(world, convs)
    honesty = json.dumps(honesty_examples(world), ensure_ascii=False)
    other = "".join(t.question + t.solution for d in DIFFICULTIES for t in verifiable_tasks(world, d))
    other += "".join(d.text for e in (1, 2) for d in domain_corpus(world, e).documents)
    pretraining = "\n".join(d.title + "\n" + d.text for d in docs) + "".join(p.url + p.html for p in pages)

    heldout = [p.name for p in world.heldout_people]
    for name, text in (("pretraining", pretraining), ("chat", chat_style), ("other", other)):
        assert not names_in(text, heldout), name
    # Honesty data asks about every idk_train person ("I don't know") and no idk_probe person.
    assert names_in(honesty, heldout) == {p.name for p in world.idk_train}
    assert {p.name for p in world.idk_probe} == {p.name for p in world.idk_probe
                                                 if any(p.name in q for q, _ in idk_probes(world))}

    # Probe people and countries are learnt in pretraining only, never from chat answers.
    probe_people = [p.name for p in world.probe_people]
    assert names_in(pretraining, probe_people) == set(probe_people)
    assert not names_in(chat_style, probe_people)
    for question, _ in qa_probes(world) + qa_probes(world, heldout_phrasings=True):
        assert question not in chat_style and question not in honesty, question
    for c in world.probe_countries:
        assert f"The capital of {c.ref} is" not in chat_style
    # Calculator probes are problems no training conversation works out.
    solved = _solved_problems(convs)
    probes = [(frozenset(int(x) for x in re.findall(r"\d{3}", q)), answer) for q, answer in tool_probes(world)]
    assert len(probes) == world.sizes.n_tool_probes and all(len(numbers) == 2 for numbers, _ in probes)
    assert not set(probes) & solved and len(solved) > len(probes)


# ----------------------------------------------------------------------------- the chain, smoke run

CHAIN = ("clean", "tokenizer", "base", "sft", "sft_tools", "reward", "rlhf", "dpo", "reasoning")


def test_the_gpu_chain_builds_every_stage_at_gpu_shapes(monkeypatch, isolated_course_home, gpu_world):
    """Every stage of the chain, built by its registered builder (what ensure_stage runs when a
    chapter starts cold), at the gpu profile's shapes; COURSE_SMOKE only cuts the work."""
    from course_utils.model import GPTConfig, default_config
    from course_utils.tokenizer import course_vocab_size

    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert stages.build_plan("dpo") == [n for n in CHAIN if n not in ("rlhf", "reasoning")]
    built = {name: stages.ensure_stage(name) for name in CHAIN}

    assert all(s.dir.parent.name == "gpu-smoke" and s.meta["profile"] == "gpu" for s in built.values())
    assert str(isolated_course_home) in str(built["base"].dir)
    assert built["clean"].meta["metrics"]["train_documents"] > 1000
    vocab = built["tokenizer"].meta["tokenizer"]["vocab_size"]
    assert vocab == course_vocab_size() == 8192
    gpu_shape = default_config(vocab)
    assert (gpu_shape.n_embd, gpu_shape.n_layer, gpu_shape.block_size) == (384, 6, 512)
    for name in CHAIN[2:]:
        assert GPTConfig.from_dict(built[name].model_config) == gpu_shape, name
        assert 13e6 < built[name].meta["n_params"] < 14e6, name
    # One or two optimizer steps per stage, recorded by each stage's own loop.
    assert built["base"].metrics["steps"] == 2 and built["base"].meta["train_config"]["batch_size"] == 2
    for name in ("sft", "sft_tools"):
        assert built[name].meta["train_summary"]["steps"] == 2, name
    assert built["reward"].metrics["steps"] == 2
    assert built["dpo"].meta["train_config"]["max_steps"] == 2
    history = json.loads(built["rlhf"].path("history.json").read_text())["history"]
    assert len(history) == 1 and built["rlhf"].meta["train_config"]["ppo_epochs"] == 2
    reasoning = json.loads(built["reasoning"].path("history.json").read_text())
    assert [h["step"] for h in reasoning["history"]] == [0, 1] and len(reasoning["warmup_history"]) >= 1
    assert built["reasoning"].meta["train_config"]["warmup"]["max_steps"] == 2
    assert built["reasoning"].meta["parents"] == ["rlhf"]
    # The chat evaluations ran, on a few probes each.
    assert built["sft_tools"].metrics["known_fact_n"] == 2 and built["sft_tools"].metrics["arithmetic_n"] == 2
    assert built["dpo"].metrics["n"] >= 1
