"""How people ask: many phrasings of each kind of fact question, and the ones held out.

A small model fine-tuned on a handful of question templates learns the templates, not the
questions: asked "In what year was Ada Novak born?" it has nothing to go on if every
training question said "When was Ada Novak born?". So each kind of question has dozens of
phrasings here, in different word orders and registers, and a fixed share of them is *held
out*: no training data (chat, honesty, preferences) ever uses them, and the chapters ask
them to measure whether the model understood the question or matched a template.

On top of the written phrasings, :func:`dress` adds what real users add: a greeting or a
"quick question", lower case without a question mark, a typo.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace

from . import phrases as P
from .facts import Country, Person, World

# Every phrasing names its subject once: ``{name}`` (a person) or ``{ref}`` (a country as
# used inside a sentence, "the United Kingdom"). A sentence may start with ``{ref}``: the
# first letter is raised afterwards.
PERSON_PHRASINGS: dict[str, tuple[str, ...]] = {
    "birth_city": (
        "Where was {name} born?", "In which city was {name} born?", "What is {name}'s hometown?",
        "Where does {name} come from?", "Which city is {name} from?", "{name} was born where?",
        "Do you know where {name} was born?", "Tell me where {name} was born.", "What city was {name} born in?",
        "Where is {name} originally from?", "Where's {name} from?", "What is the birthplace of {name}?",
        "Name the city where {name} was born.", "Which town was {name} born in?",
        "Could you tell me {name}'s place of birth?", "what's {name}'s home town?",
        "I'd like to know where {name} was born.", "Where did {name} grow up?",
        "My friend asked me where {name} was born. Do you know?", "In what city was {name} born?",
        "Which city does {name} call home?", "Birthplace of {name}?", "Where was {name} born, please?",
        "From which city does {name} come?",
    ),
    "birth_year": (
        "When was {name} born?", "In which year was {name} born?", "What year was {name} born?",
        "Do you know when {name} was born?", "What is {name}'s year of birth?", "{name} was born in which year?",
        "Tell me the year {name} was born.", "When was {name} born, in what year?", "Which year was {name} born in?",
        "How long ago was {name} born? Give me the year.", "what year was {name} born",
        "I need the birth year of {name}.", "In what year was {name} born?", "Birth year of {name}?",
        "Can you tell me what year {name} was born?", "When did {name} come into the world?",
        "Year of birth for {name}?", "Was {name} born long ago? Which year?",
        "Which year is {name}'s birth year?", "Remind me when {name} was born.",
    ),
    "profession": (
        "What does {name} do?", "What is {name}'s job?", "What does {name} do for a living?",
        "What is {name}'s profession?", "What kind of work does {name} do?", "How does {name} earn a living?",
        "Tell me what {name} does.", "What job does {name} have?", "{name} works as what?",
        "Do you know what {name} does for work?", "what does {name} do", "Which profession does {name} have?",
        "What is {name} by profession?", "Can you tell me {name}'s occupation?", "What's {name}'s line of work?",
        "I wonder what {name} does for a job.", "What does {name} work as?", "Occupation of {name}?",
        "What is {name}'s work?", "Is {name} a painter, a singer, or something else?",
    ),
    "work": (
        "What is {name} known for?", "Name a work by {name}.", "What is {name} famous for?",
        "What did {name} make?", "Which work made {name} famous?", "Can you name something {name} created?",
        "Tell me about a work by {name}.", "What is {name}'s best-known work?", "What has {name} made?",
        "what is {name} known for", "Give me the title of a work by {name}.", "Is {name} famous for anything?",
        "What did {name} create?", "Name one thing {name} made.", "What is the most famous work of {name}?",
        "Which title is {name} known for?", "What should I read, watch or hear by {name}?",
        "{name} is known for what?", "Tell me one of {name}'s works.", "Why is {name} famous?",
    ),
    "who": (
        "Who is {name}?", "Tell me about {name}.", "Who's {name}?", "Do you know {name}?",
        "What can you tell me about {name}?", "Have you heard of {name}?", "who is {name}",
        "I keep hearing about {name}. Who is that?", "Give me a short introduction to {name}.",
        "Can you describe {name} in a sentence?", "What do you know about {name}?", "Introduce {name} to me.",
        "Who exactly is {name}?", "Please tell me who {name} is.", "Say something about {name}.",
        "{name}: who is that?", "Tell me a bit about {name}.", "Is {name} someone famous?",
        "Who is this {name} person?", "Could you tell me who {name} is?",
    ),
}
COUNTRY_PHRASINGS: dict[str, tuple[str, ...]] = {
    "capital": (
        "What is the capital of {ref}?", "Which city is the capital of {ref}?", "Name the capital of {ref}.",
        "What's the capital city of {ref}?", "What is {ref}'s capital?", "Tell me the capital of {ref}.",
        "Which city is {ref}'s capital?", "what is the capital of {ref}", "The capital of {ref} is which city?",
        "Do you know the capital of {ref}?", "Capital of {ref}?", "Where is the government of {ref}?",
        "If I fly to the capital of {ref}, where do I land?", "In which city does {ref} have its capital?",
        "Which city serves as the capital of {ref}?", "I forgot the capital of {ref}. What is it?",
        "What city is the capital of {ref}?", "Can you tell me the capital of {ref}?",
        "What is the name of the capital of {ref}?", "{ref} has which capital?",
        "Where would I find the capital of {ref}? Which city?", "Which is the capital city of {ref}?",
    ),
    "language": (
        "What language do people speak in {ref}?", "What is the main language of {ref}?",
        "What language is spoken in {ref}?", "Which language do they speak in {ref}?",
        "What do people in {ref} speak?", "Tell me the main language of {ref}.",
        "what language do they speak in {ref}", "If I travel to {ref}, what language will I hear?",
        "Which language is the most common in {ref}?", "Language of {ref}?", "What's the language of {ref}?",
        "Do you know what language people speak in {ref}?", "What language should I learn for {ref}?",
        "In {ref}, what language do people speak?", "Which language does {ref} speak?",
        "What is the national language of {ref}?", "Can you tell me the language of {ref}?",
        "Name the main language of {ref}.", "What do they speak in {ref}?",
        "Which tongue is spoken in {ref}?",
    ),
    "river": (
        "Name a famous river in {ref}.", "Which river flows through {ref}?", "What is a famous river in {ref}?",
        "Tell me a river in {ref}.", "Is there a famous river in {ref}?", "Which river is {ref} known for?",
        "name a river in {ref}", "What river runs through {ref}?", "Can you name a river of {ref}?",
        "Which big river is in {ref}?", "River in {ref}?", "What is the best-known river in {ref}?",
        "Do you know a river in {ref}?", "Which river would I see in {ref}?",
        "Give me the name of a river in {ref}.", "What's a well-known river in {ref}?",
        "Which river crosses {ref}?", "Tell me about a river that flows through {ref}.",
        "I want to see a famous river in {ref}. Which one?", "What is the main river of {ref}?",
    ),
    "continent": (
        "On which continent is {ref}?", "Where is {ref}?", "Which continent is {ref} in?",
        "What continent is {ref} on?", "Is {ref} in Europe, Asia, Africa or somewhere else?",
        "Tell me which continent {ref} is on.", "where is {ref}", "On what continent can I find {ref}?",
        "{ref} is on which continent?", "Which part of the world is {ref} in?", "Continent of {ref}?",
        "Do you know which continent {ref} belongs to?", "In which continent is {ref}?",
        "Where in the world is {ref}?", "Which continent does {ref} belong to?",
        "Can you tell me where {ref} is?", "What continent would I fly to for {ref}?",
        "Where on the map is {ref}?", "Is {ref} in Asia?", "Which continent is home to {ref}?",
    ),
}

# Every HELDOUT_EVERY-th phrasing (starting at HELDOUT_OFFSET) is held out of all training data.
HELDOUT_EVERY = 5
HELDOUT_OFFSET = 2

GREETINGS = ("Hi! ", "Hello, ", "Hey, ", "Quick question: ", "Excuse me, ", "I have a question. ",
             "Sorry to bother you. ", "Good morning! ")
TYPO_RATE = 0.1
PREFIX_RATE = 0.15
LOWERCASE_RATE = 0.1


def split_phrasings(phrasings: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training phrasings, held-out phrasings) of one kind of question."""
    held = tuple(p for i, p in enumerate(phrasings) if i % HELDOUT_EVERY == HELDOUT_OFFSET)
    return tuple(p for p in phrasings if p not in held), held


def phrasings(relation: str, heldout: bool = False) -> tuple[str, ...]:
    """The training (or held-out) phrasings of a relation ("capital", "birth_city", ...)."""
    table = PERSON_PHRASINGS if relation in PERSON_PHRASINGS else COUNTRY_PHRASINGS
    if relation not in table:
        raise ValueError(f"unknown relation {relation!r}; choose from "
                         f"{', '.join(list(PERSON_PHRASINGS) + list(COUNTRY_PHRASINGS))}")
    return split_phrasings(table[relation])[1 if heldout else 0]


def fill(template: str, **names: str) -> str:
    """The phrasing with its subject put in, the first letter raised ("{ref} has ..." -> "The ...")."""
    text = template.format(**names)
    return text[0].upper() + text[1:] if template[0] == "{" else text


def add_typo(text: str, rng: random.Random, protect: str = "") -> str:
    """Swap two neighbouring letters of one ordinary word (never in ``protect``, the subject's name)."""
    words = list(re.finditer(r"\b[a-z]{4,}\b", text))
    words = [m for m in words if m.group() not in protect]
    if not words:
        return text
    m = rng.choice(words)
    i = m.start() + rng.randrange(len(m.group()) - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def dress(question: str, rng: random.Random, subject: str = "") -> str:
    """The question as a real user might type it: sometimes with a greeting, in lower case
    without the question mark, or with a typo (the subject's name is always spelt right)."""
    if rng.random() < LOWERCASE_RATE:
        question = _lower_first(question, subject).rstrip("?.")
    if rng.random() < TYPO_RATE:
        question = add_typo(question, rng, protect=subject)
    if rng.random() < PREFIX_RATE:
        greeting = rng.choice(GREETINGS)
        question = greeting + (_lower_first(question, subject) if greeting.endswith(", ") else question)
    return question


def _lower_first(text: str, subject: str) -> str:
    # A name keeps its capital letter: "ada Novak" would be a different word to the tokenizer.
    return text if subject and text.startswith(subject) else text[0].lower() + text[1:]


# ----------------------------------------------------------------------------- a question and its answer

def contains_answer(text: str, key: str, subject: str = "") -> bool:
    """Does ``text`` state ``key`` as a whole word (any case)? "Po" is in "the Po flows",
    not in "important". Only Latin letters and digits count as word characters, so Chinese
    keys match inside Chinese text. When the key is part of the ``subject`` asked about
    ("Africa" in "South Africa"), the subject's own name does not count as an answer."""
    if subject and key.lower() in subject.lower():
        text = re.sub(re.escape(subject), " ", text, flags=re.IGNORECASE)
    pattern = rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


@dataclass(frozen=True)
class FactQA:
    relation: str      # "capital", "birth_city", ...
    subject: str       # the country or person asked about
    question: str
    answer: str        # the canonical sentence
    key: str           # the short fact a grader looks for in a reply: "Paris"
    answer_zh: str     # the same answer in Chinese
    # Other true facts about the subject that the answer does not state yet: what a helpful
    # answer may add ("Its main language is French."), and what the rubric checks it against.
    related: tuple[tuple[str, str], ...] = ()   # (relation, key) pairs
    facts: tuple[str, ...] = ()                 # every true key about the subject, stated or not


def person_qa(world: World, p: Person, relation: str, k: int = 0, heldout: bool = False) -> FactQA:
    """The ``k``-th training (or held-out) phrasing of a question about ``p``, with its answer."""
    forms = phrasings(relation, heldout)
    q = fill(forms[k % len(forms)], name=p.name)
    if relation == "birth_city":
        qa = FactQA(relation, p.name, q, P.born(p), p.birth_city, P.born_zh(p, world))
    elif relation == "profession":
        qa = FactQA(relation, p.name, q, P.profession(p), p.profession, P.profession_zh(p))
    elif relation == "work":
        qa = FactQA(relation, p.name, q, P.work(p, p.works[0]), p.works[0].title, P.works_zh(p))
    elif relation == "birth_year":
        qa = FactQA(relation, p.name, q, P.born_year(p), str(p.birth_year), P.born_year_zh(p))
    else:
        qa = FactQA(relation, p.name, q, f"{P.alt_profession(p, world, 0)} {P.born(p)}", p.profession,
                    P.profession_zh(p) + P.born_zh(p, world))
    facts = [("birth_city", p.birth_city), ("birth_year", str(p.birth_year)), ("profession", p.profession),
             ("work", p.works[0].title)] + [("work", w.title) for w in p.works[1:]]
    return replace(qa, related=_not_stated(qa, facts), facts=tuple(k for _, k in facts))


def country_qa(c: Country, relation: str, k: int = 0, heldout: bool = False) -> FactQA:
    """The ``k``-th training (or held-out) phrasing of a question about country ``c``, with its answer."""
    forms = phrasings(relation, heldout)
    q = fill(forms[k % len(forms)], ref=c.ref)
    if relation == "capital":
        qa = FactQA(relation, c.name, q, P.capital(c), c.capital, P.capital_zh(c))
    elif relation == "language":
        qa = FactQA(relation, c.name, q, P.language(c), c.languages[0], P.language_zh(c))
    elif relation == "river":
        qa = FactQA(relation, c.name, q, P.river(c), c.rivers[0], P.river_zh(c))
    else:
        qa = FactQA(relation, c.name, q, P.continent(c), c.continent, P.continent_zh(c))
    facts = [("capital", c.capital), ("language", c.languages[0]), ("river", c.rivers[0]),
             ("continent", c.continent)]
    return replace(qa, related=_not_stated(qa, facts), facts=tuple(k for _, k in facts))


def _not_stated(qa: FactQA, facts) -> tuple[tuple[str, str], ...]:
    return tuple((rel, key) for rel, key in facts
                 if key != qa.key and not contains_answer(qa.answer, key, qa.subject))
