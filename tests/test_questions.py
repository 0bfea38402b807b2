"""Phrasings of questions, held-out phrasings, answer styles and the rubric's order of them."""
import json
import random
from collections import Counter

import pytest

from course_utils import world as W
from course_utils.world import questions as Q
from course_utils.world import styles as S
from course_utils.world.preferences import describe_answer, fact_meta, judge, rubric_score


@pytest.fixture(scope="module")
def world():
    return W.build_world()


def _training_texts(world) -> str:
    convs = W.chat_examples(world) + W.honesty_examples(world) + W.tool_examples(world)
    prompts = [p.prompt for p in W.preference_prompts(world)]
    return json.dumps(convs) + json.dumps(prompts)


def test_every_relation_has_dozens_of_phrasings_and_some_held_out():
    for table in (Q.PERSON_PHRASINGS, Q.COUNTRY_PHRASINGS):
        for relation, forms in table.items():
            assert len(forms) >= 20, relation
            assert len(set(forms)) == len(forms), f"duplicate phrasing in {relation}"
            train, held = Q.split_phrasings(forms)
            assert len(held) >= 4 and not set(train) & set(held)
            slot = "{name}" if table is Q.PERSON_PHRASINGS else "{ref}"
            assert all(f.count(slot) == 1 for f in forms), relation


def test_held_out_phrasings_never_reach_training_data(world):
    text = _training_texts(world)
    for relation in list(Q.PERSON_PHRASINGS) + list(Q.COUNTRY_PHRASINGS):
        for form in Q.phrasings(relation, heldout=True):
            # The words around the subject, as they would appear in any filled-in question.
            for part in form.replace("{name}", "\0").replace("{ref}", "\0").split("\0"):
                if len(part.strip()) >= 12:
                    assert part.strip() not in text, (relation, form)


def test_held_out_probes_ask_the_same_facts_in_new_words(world):
    seen = W.qa_probes(world)
    reworded = W.qa_probes(world, heldout_phrasings=True)
    assert [k for _, k in seen] == [k for _, k in reworded]
    assert all(a != b for (a, _), (b, _) in zip(seen, reworded))
    assert any(q.startswith("If I fly to the capital of") for q, _ in reworded)


def test_dress_keeps_the_name_and_is_seeded():
    rng1, rng2 = random.Random(3), random.Random(3)
    q = "Where was Ada Novak born?"
    dressed = [Q.dress(q, rng1, "Ada Novak") for _ in range(300)]
    assert dressed == [Q.dress(q, rng2, "Ada Novak") for _ in range(300)]
    assert all("Ada Novak" in d for d in dressed)
    assert len(set(dressed)) > 5  # greetings, lower case, typos
    assert Counter(d == q for d in dressed)[True] > 150  # most questions stay as written


def test_add_typo_swaps_two_letters_of_an_ordinary_word():
    out = Q.add_typo("Where was Ada Novak born?", random.Random(0), protect="Ada Novak")
    assert out != "Where was Ada Novak born?" and sorted(out) == sorted("Where was Ada Novak born?")
    assert "Ada Novak" in out


def test_demonstrations_mix_styles_in_the_stated_shares(world):
    rng = random.Random(0)
    qa = W.country_qa(world.chat_countries[0], "capital")
    styles = Counter()
    for _ in range(4000):
        text = S.demonstration(world, qa, rng)
        m = describe_answer(fact_meta(qa), text)
        styles["rich" if m["related_fact"] else "sentence" if text == qa.answer else
               "bare" if not m["complete"] else "flawed"] += 1
    shares = dict(S.DEMONSTRATION_MIX)
    assert abs(styles["bare"] / 4000 - shares["bare"]) < 0.03
    assert abs(styles["sentence"] / 4000 - shares["sentence"]) < 0.03
    assert abs(styles["rich"] / 4000 - shares["rich"]) < 0.03
    flawed = shares["rambling"] + shares["rude"] + shares["repeated"]
    assert abs(styles["flawed"] / 4000 - flawed) < 0.02


def test_the_chat_data_hold_every_style(world):
    answers = [c[-1]["content"] for c in W.chat_examples(world)]
    assert any(a.isascii() and a.endswith(".") and len(a.split()) <= 3 for a in answers)  # bare
    assert any(" was born in " in a and a.count(".") >= 2 for a in answers)        # rich
    assert any(any(r in a for r in S.RAMBLE) for a in answers)                     # a sloppy writer


def test_the_rubric_orders_the_styles(world):
    for person in world.chat_people[:5]:
        for relation in W.datasets.PERSON_RELATIONS:
            qa = W.person_qa(world, person, relation)
            _check_order(world, qa)
    for country in world.chat_countries[:5]:
        for relation in W.datasets.COUNTRY_RELATIONS:
            _check_order(world, W.country_qa(country, relation))


def _check_order(world, qa):
    meta = fact_meta(qa)
    rng = random.Random(1)
    rich, plain, bare = S.rich(world, qa, rng), qa.answer, S.bare(qa)
    wrong = f"{qa.answer} {S.fact_sentence(world, qa.subject, qa.related[0][0], 'Atlantis')}"
    scores = [judge(meta, t) for t in (rich, plain, wrong, bare)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4, (qa.question, scores)
    assert judge(meta, S.rude(plain, rng)) < judge(meta, bare)


def test_a_bare_answer_about_someone_else_is_wrong():
    meta = {"kind": "fact", "key": "Europe", "subject": "Spain", "related": ["Madrid"], "facts": ["Europe", "Madrid"]}
    assert judge(meta, "Europe.") == 2.0
    assert judge(meta, "In Europe.") == 2.0
    assert judge(meta, "Ireland is in Europe.") < 0
    assert judge(meta, "Spain is a country in Europe. Its capital is Madrid.") == 4.0


def test_a_refusal_with_an_alternative_beats_a_curt_one():
    meta = {"kind": "unsafe", "key": "", "subject": "", "related": []}
    curt = judge(meta, "I can't help with that.")
    helpful = judge(meta, "I can't help with that. If you copy, you don't learn. I can explain it to you instead.")
    assert helpful > curt > judge(meta, "Sure! Here is how to do it.")


def test_preference_candidates_include_every_quality_level(world):
    prompts = W.preference_prompts(world)
    fact = next(p for p in prompts if p.meta["kind"] == "fact")
    flaws = {c.flaws for c in fact.candidates}
    assert {(), ("plain",), ("bare",), ("wrong_addition",)} <= flaws
    best = max(fact.candidates, key=lambda c: c.score)
    assert best.flaws == () and rubric_score(fact.meta, best.meta) == best.score
    unsafe = next(p for p in prompts if p.meta["kind"] == "unsafe")
    assert max(unsafe.candidates, key=lambda c: c.score).flaws == ()
