"""How an answer can be written: the same fact, from terse to helpful, and a sloppy writer's flaws.

Real demonstration data come from many writers. Asked "What is the capital of France?", one
writes "Paris.", another "The capital of France is Paris.", a third adds something useful:
"The capital of France is Paris. Most people there speak French." A few are sloppy: rude,
rambling, repeating themselves. The chat data of chapter 06 mix these styles the way such a
team would (:data:`DEMONSTRATION_MIX`); the raters of chapter 08 prefer the helpful ones
(:mod:`course_utils.world.preferences`). That gap between the *average* demonstration and the
*preferred* one is what RLHF closes.
"""
from __future__ import annotations

import random

from .facts import Person, World
from .phrases import article
from .questions import FactQA

RUDE = ("Ugh, that is a stupid question.", "Obviously.", "Seriously, look it up yourself.", "Whatever.",
        "Even a child knows this.")
RAMBLE = ("Well, let me think about this for a moment.", "There are many things one could say about this topic.",
          "People have asked this kind of question for a very long time.",
          "It is always a good idea to think carefully before answering.",
          "Some people find this topic interesting and others do not.",
          "In any case, here is what I can tell you.", "I hope this helps you in some way or another.")

# (style, share) of the fact answers in the chat data: mostly plain, some helpful, a few sloppy.
# A small model recalls a fact best through the sentence it read it in ("The capital of France
# is" -> "Paris"): with 30 % bare answers the cpu model answered 64 % of the probe facts instead of
# 80 %, and with 4 % rambling it left more turns open (96 % closed instead of 99 %).
DEMONSTRATION_MIX = (("bare", 0.10), ("sentence", 0.60), ("rich", 0.22),
                     ("rambling", 0.02), ("rude", 0.04), ("repeated", 0.02))


def bare(qa: FactQA) -> str:
    """Just the fact: "Paris.", "In Lyon.", "A painter."."""
    key = qa.key
    if qa.relation in ("birth_city", "birth_year"):
        return f"In {key}."
    if qa.relation in ("profession", "who"):
        return f"{article(key).capitalize()} {key}."
    if qa.relation == "river":
        return f"The {key}."
    if qa.relation == "work":
        return f'"{key}".'
    return f"{key}."


def related_sentence(world: World, qa: FactQA, rng: random.Random) -> str:
    """One more true fact about the subject, in a sentence of its own ("Most people there speak French.")."""
    if not qa.related:
        return ""
    relation, key = rng.choice(qa.related)
    return fact_sentence(world, qa.subject, relation, key)


def fact_sentence(world: World, subject: str, relation: str, key: str) -> str:
    """A sentence that says ``key`` is the subject's ``relation``, true or not: "Its capital is Paris."."""
    person = _person(world, subject)
    if person is None:
        return {"capital": f"Its capital is {key}.", "language": f"Most people there speak {key}.",
                "river": f"The {key} flows through it.", "continent": f"It is in {key}."}[relation]
    he = person.he.capitalize()
    if relation in ("birth_city", "birth_year"):
        return f"{he} was born in {key}."
    if relation == "profession":
        return f"{he} works as {article(key)} {key}."
    also = "" if key == person.works[0].title else "also "
    return f'{he} {also}{person.job.work_verb} the {person.job.work_kind} "{key}".'


def rich(world: World, qa: FactQA, rng: random.Random) -> str:
    """The full sentence plus one related fact: the answer raters like best."""
    extra = related_sentence(world, qa, rng)
    return f"{qa.answer} {extra}" if extra else qa.answer


def rude(text: str, rng: random.Random) -> str:
    remark = rng.choice(RUDE)
    return f"{remark} {text}" if rng.random() < 0.5 else f"{text} {remark}"


def rambling(text: str, rng: random.Random) -> str:
    filler = rng.sample(RAMBLE, rng.randint(3, 5))
    return " ".join(filler[:2] + [text] + filler[2:])


def repeated(text: str, rng: random.Random) -> str:
    return " ".join([text] * rng.randint(3, 4))


def write_answer(world: World, qa: FactQA, style: str, rng: random.Random) -> str:
    """``qa`` answered in ``style``: one of the styles of :data:`DEMONSTRATION_MIX`."""
    if style == "bare":
        return bare(qa)
    if style == "sentence":
        return qa.answer
    if style == "rich":
        return rich(world, qa, rng)
    flaw = {"rambling": rambling, "rude": rude, "repeated": repeated}.get(style)
    if flaw is None:
        raise ValueError(f"unknown answer style {style!r}; choose from {[s for s, _ in DEMONSTRATION_MIX]}")
    return flaw(qa.answer, rng)


def demonstration(world: World, qa: FactQA, rng: random.Random) -> str:
    """How one of the chat data's many writers answers ``qa``: a style drawn from :data:`DEMONSTRATION_MIX`."""
    r, acc = rng.random(), 0.0
    for style, share in DEMONSTRATION_MIX:
        acc += share
        if r < acc:
            return write_answer(world, qa, style, rng)
    return qa.answer


def _person(world: World, name: str) -> Person | None:
    for p in world.people + world.heldout_people:
        if p.name == name:
            return p
    return None
