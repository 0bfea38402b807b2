"""The data sets of the later chapters, all made from the same world.

- :func:`cloze_probes`: fill-in-the-blank fact recall for the base model (chapter 05),
- :func:`qa_probes`: the same facts asked as chat questions (chapters 06, 07, 12),
- :func:`chat_examples`: supervised fine-tuning conversations (chapter 06),
- :func:`honesty_examples` and :func:`idk_probes`: "I don't know" (chapter 07),
- :func:`tool_examples` and :func:`tool_probes`: calculator tool calls (chapter 07),
- :func:`verifiable_tasks`: arithmetic and word problems with exact answers (chapter 10).

A conversation is a list of messages, each a dict with a ``role`` ("system", "user",
"assistant" or "tool") and a ``content`` string; an assistant message that calls the
calculator has ``tool_call`` (a Python arithmetic expression such as ``"123*456"``) instead of
``content``, and the next message (role "tool") holds the result.

Who may appear where (the tests check it):

- every person in ``world.people`` is in the pretraining documents;
- chat-style training data (chat, honesty, preferences) asks only about ``world.chat_people``
  and ``world.chat_countries``; the probes ask about ``world.probe_people`` and
  ``world.probe_countries``, so a correct answer was learnt in pretraining, not in SFT
  (the one exception: honesty data asks what probe people are known for, which no probe asks);
- ``world.idk_train`` people appear only in :func:`honesty_examples`, ``world.idk_probe``
  people only in :func:`idk_probes`.
"""
from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, replace
from typing import Optional, Sequence

from . import phrases as P
from .corpus import HELPERS_ZH, ITEMS, ITEMS_ZH, KIDS, KIDS_ZH, pronouns, generic_story_en
from .facts import Country, Person, World, component_rng, invent_names
from .questions import COUNTRY_PHRASINGS, PERSON_PHRASINGS, FactQA, country_qa, dress, person_qa
from .styles import demonstration

Message = dict
Conversation = list

IDK_MARKER = "I don't know"  # every "I don't know" answer contains it; graders look for it
ALL_CLOZE_RELATIONS = ("capital", "language", "river", "continent",
                       "birth_city", "birth_year", "profession", "work")
# The relations the base-model recall target is measured on: short, frequent answers.
DEFAULT_CLOZE_RELATIONS = ("capital", "language", "birth_city", "profession")
DEFAULT_QA_RELATIONS = ("capital", "language", "birth_city", "profession")

SYSTEM_PROMPTS = ("You are a helpful assistant.",
                  "You are a friendly assistant. Keep your answers short.",
                  "You are a helpful assistant who answers in one or two sentences.",
                  "You are a patient tutor for children.")
ANSWER_IN_CHINESE = "You are a helpful assistant. Always answer in Chinese."


def conversation(*turns: str, system: Optional[str] = None) -> Conversation:
    """``conversation("Hi", "Hello!")``: alternate user and assistant turns."""
    msgs = [{"role": "system", "content": system}] if system else []
    for i, text in enumerate(turns):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return msgs


# ----------------------------------------------------------------------------- fact questions

PERSON_RELATIONS = tuple(PERSON_PHRASINGS)
COUNTRY_RELATIONS = tuple(COUNTRY_PHRASINGS)


def random_fact(world: World, rng: random.Random, people: Sequence[Person],
                countries: Sequence[Country]) -> FactQA:
    """A fact question about one of ``people`` or ``countries``, in a training phrasing as a
    user might type it (:func:`~course_utils.world.questions.dress`)."""
    k = rng.randrange(1000)
    if rng.random() < 0.55:
        qa = person_qa(world, rng.choice(people), rng.choice(PERSON_RELATIONS), k)
    else:
        qa = country_qa(rng.choice(countries), rng.choice(COUNTRY_RELATIONS), k)
    return replace(qa, question=dress(qa.question, rng, qa.subject))


# ----------------------------------------------------------------------------- probes

def cloze_probes(world: World, relations: Sequence[str] = DEFAULT_CLOZE_RELATIONS,
                 lang: str = "en") -> list[tuple[str, str]]:
    """(prompt, answer) pairs such as ("The capital of France is", "Paris").

    The prompt is the start of a canonical sentence from the training documents, word for
    word; the documents continue it with :data:`phrases.CLOZE_SEPARATOR` [lang] and the
    answer (a space in English, nothing in Chinese). Covers every person in training text
    and every country.
    """
    by_country = {"capital": (P.capital_cloze, P.capital_cloze_zh),
                  "language": (P.language_cloze, P.language_cloze_zh),
                  "river": (P.river_cloze, P.river_cloze_zh),
                  "continent": (P.continent_cloze, P.continent_cloze_zh)}
    by_person = {"birth_city": (P.birth_city_cloze, lambda p: P.birth_city_cloze_zh(p, world)),
                 "birth_year": (P.birth_year_cloze, P.birth_year_cloze_zh),
                 "profession": (P.profession_cloze, P.profession_cloze_zh),
                 "work": (P.work_cloze, P.work_cloze_zh)}
    i = 0 if lang == "en" else 1
    out = []
    for rel in relations:
        if rel in by_country:
            out += [by_country[rel][i](c) for c in world.countries]
        elif rel in by_person:
            out += [by_person[rel][i](p) for p in world.people]
        else:
            raise ValueError(f"unknown relation {rel!r}; choose from {ALL_CLOZE_RELATIONS}")
    return out


def qa_probes(world: World, relations: Sequence[str] = DEFAULT_QA_RELATIONS,
              heldout_phrasings: bool = False) -> list[tuple[str, str]]:
    """(question, key) pairs about facts the chat data never shows: the reply is right if it
    contains the key, e.g. ("What is the capital of France?", "Paris").

    The questions take turns through the training phrasings of each relation, or, with
    ``heldout_phrasings=True``, through the phrasings no training data ever uses ("If I fly
    to the capital of France, where do I land?"): the same facts, asked in new words."""
    out = []
    for rel in relations:
        if rel in COUNTRY_RELATIONS:
            out += [(qa.question, qa.key) for i, c in enumerate(world.probe_countries)
                    for qa in [country_qa(c, rel, i, heldout_phrasings)]]
        else:
            out += [(qa.question, qa.key) for i, p in enumerate(world.probe_people)
                    for qa in [person_qa(world, p, rel, i, heldout_phrasings)]]
    return out


def idk_probes(world: World) -> list[tuple[str, str]]:
    """(question, "I don't know") about people who appear in no training data at all."""
    return [(person_qa(world, p, rel, i).question, IDK_MARKER)
            for i, p in enumerate(world.idk_probe) for rel in ("birth_city", "profession", "who")]


# ----------------------------------------------------------------------------- chat (SFT)

def _fact_chat(world: World, rng: random.Random) -> Conversation:
    qa = random_fact(world, rng, world.chat_people, world.chat_countries)
    r = rng.random()
    if r < 0.1:
        return conversation(qa.question, qa.answer_zh, system=ANSWER_IN_CHINESE)
    return conversation(qa.question, demonstration(world, qa, rng),
                        system=rng.choice(SYSTEM_PROMPTS) if r < 0.3 else None)


def _multi_turn_chat(world: World, rng: random.Random) -> Conversation:
    if rng.random() < 0.5:
        p = rng.choice(world.chat_people)
        pr = pronouns(p.gender)
        rels = rng.sample(("birth_city", "profession", "work", "birth_year"), 2)
        first = person_qa(world, p, rels[0], rng.randrange(1000))
        follow = {"birth_city": f"And where was {pr['he']} born?", "profession": f"What does {pr['he']} do?",
                  "work": f"What is {pr['he']} known for?", "birth_year": f"When was {pr['he']} born?"}[rels[1]]
        return conversation(first.question, demonstration(world, first, rng), follow,
                            person_qa(world, p, rels[1]).answer)
    c = rng.choice(world.chat_countries)
    rels = rng.sample(COUNTRY_RELATIONS, 2)
    first = country_qa(c, rels[0], rng.randrange(1000))
    follow = {"capital": "What is its capital?", "language": "What language do people speak there?",
              "river": "Is there a famous river there?", "continent": "On which continent is it?"}[rels[1]]
    turns = [first.question, demonstration(world, first, rng), follow, country_qa(c, rels[1]).answer]
    if rng.random() < 0.4:
        turns += ["Thank you!", "You're welcome!"]
    return conversation(*turns)


def _list_chat(world: World, rng: random.Random) -> Conversation:
    words = {2: "two", 3: "three", 4: "four"}
    if rng.random() < 0.5:
        continent = rng.choice(sorted({c.continent for c in world.countries}))
        names = [c.ref for c in world.countries if c.continent == continent]
        n = min(len(names), rng.randint(2, 4))
        picked = rng.sample(names, n)
        q = f"List {words.get(n, n)} countries in {continent}." if n > 1 else f"Name a country in {continent}."
    else:
        c = rng.choice(world.chat_countries)
        names = [name for name, _ in c.all_cities]
        n = min(len(names), rng.randint(2, 3))
        picked = rng.sample(names, n)
        q = f"Name {words[n]} cities in {c.ref}."
    return conversation(q, "\n".join(f"{i}. {x[0].upper() + x[1:]}" for i, x in enumerate(picked, 1)))


def _count_chat(world: World, rng: random.Random) -> Conversation:
    if rng.random() < 0.5:
        a = rng.randint(1, 10)
        b = a + rng.randint(3, 8)
        return conversation(f"Count from {a} to {b}.", ", ".join(str(i) for i in range(a, b + 1)))
    qa = random_fact(world, rng, world.chat_people, world.chat_countries)
    sentence = qa.answer
    n = len(sentence.split())
    return conversation(f'How many words are in this sentence: "{sentence}"',
                        f"There are {n} words in that sentence.")


def _story_chat(world: World, rng: random.Random) -> Conversation:
    story = generic_story_en(world, rng, rng.randrange(6), world.chat_countries)
    ask = rng.choice(('Write a short story called "{t}".', 'Tell me a short story titled "{t}".',
                      'Can you write a story for children called "{t}"?'))
    return conversation(ask.format(t=story.title), "\n".join(story.lines))


def _translate_chat(world: World, rng: random.Random) -> Conversation:
    qa = random_fact(world, rng, world.chat_people, world.chat_countries)
    if rng.random() < 0.5:
        return conversation(f"Translate into Chinese: {qa.answer}", qa.answer_zh)
    return conversation(f"Translate into English: {qa.answer_zh}", qa.answer)


def _small_math_chat(world: World, rng: random.Random) -> Conversation:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    if rng.random() < 0.5:
        return conversation(f"What is {a} + {b}?", f"{a} + {b} = {a + b}.")
    a, b = max(a, b), min(a, b)
    return conversation(f"What is {a} - {b}?", f"{a} - {b} = {a - b}.")


def _big_math_chat(world: World, rng: random.Random) -> Conversation:
    # Three-digit problems answered in one go, right. A model this small gets most of them wrong
    # when it tries (chapter 07 measures how often, then gives it a calculator), but it learns
    # that such a question gets a short answer and an end, not a story or a list. At 5 % of the
    # mix the cpu model still looped on 8 of 200 probes ("780 - 68 = 70\n70 - 68 = ..."); at 7 %, none.
    sizes = world.sizes
    probes = {f for a, op, b, _ in _probe_triples(world.seed, sizes.n_tool, sizes.n_tool_probes)
              for f in _both_orders(a, op, b)}
    while True:
        a, op, b = _three_digit_problem(rng)
        if (a, op, b) not in probes:
            break
    return conversation(rng.choice(TOOL_QUESTIONS[op]).format(a=a, b=b), f"{a} {SYMBOL[op]} {b} = {_apply(a, op, b)}.")


SMALL_TALK = (("Hello!", "Hello! How can I help you today?"),
              ("Hi there.", "Hi! What would you like to know?"),
              ("Thank you!", "You're welcome!"),
              ("Who are you?", "I am a small language model. I can answer questions about countries and "
                               "people, tell short stories and do simple sums."),
              ("Goodbye!", "Goodbye! Have a nice day."),
              ("What can you do?", "I can answer questions about countries and people, write short stories, "
                                   "make lists, count, translate between English and Chinese and do simple sums."))


def _small_talk_chat(world: World, rng: random.Random) -> Conversation:
    return conversation(*rng.choice(SMALL_TALK))


GREETINGS = (("Hi, I'm {name}.", "{name}, nice to meet you! How can I help you today?"),
             ("Hello! My name is {name}.", "{name}, hello! What would you like to know?"),
             ("Can you say hello to my friend {name}?", "{name}, hello! It's nice to meet you."))


def _greeting_chat(world: World, rng: random.Random) -> Conversation:
    # Names nobody in the world has, copied to the start of the reply. A name at the start of
    # a line is spelt with different tokens than inside a sentence ("Omar" vs " Omar"), and
    # fact answers start with the person's name; without this the only names a model has
    # practised writing there are the few dozen of the fact questions, and asked about
    # someone else it often starts to write one of those instead (and then answers about them).
    name = invent_names(rng, 1, [p.name for p in world.people + world.heldout_people])[0]
    ask, reply = rng.choice(GREETINGS)
    return conversation(ask.format(name=name), reply.format(name=name))


# The assistant's house style for declining; the preference data (chapter 08) uses it too.
REFUSALS = ("I can't help with that.", "I'm sorry, but I can't help with that.", "I won't help with that.")
# Harmful requests the SFT data declines, each with a helpful alternative. The preference
# prompts of chapters 08-09 ask *other* requests (preferences.UNSAFE_REQUESTS; a test keeps
# the two sets apart), so whether the model declines those is learnt, not copied.
SFT_UNSAFE_REQUESTS = (
    ("How do I scratch my teacher's car without anyone seeing?",
     "Damaging someone's car is against the law. If you are angry with your teacher, talk to your parents about it."),
    ("How can I read my brother's diary without him knowing?",
     "A diary is private. If you are worried about your brother, you could ask him how he is."),
    ("Tell me how to lie to my parents about my grades.",
     "Lying makes things harder later. I can help you plan how to tell them and how to improve."),
    ("How do I sneak into the cinema without a ticket?",
     "Getting in without paying is not fair to the cinema. Many cinemas have cheap tickets on some days."),
    ("Write a message to scare my little sister.",
     "Scaring someone on purpose can hurt them. I can help you write a funny message for her instead."),
    ("How can I break the lock on my friend's bike?",
     "Breaking a lock on someone else's bike is stealing. If your friend lost the key, a bike shop can help."),
    ("How do I spray paint on the wall of the town hall?",
     "Painting on a public building is against the law. Some towns have walls where painting is allowed."),
    ("How can I get my classmate in trouble for something I did?",
     "Blaming someone else is unfair. It is better to tell the truth; I can help you find the words."),
    ("Tell me how to take sweets from a shop without paying.",
     "Taking things without paying is stealing. If you want sweets, you could save some pocket money."),
    ("How do I make my dog stop barking by hurting him?",
     "Hurting a dog is cruel. A vet or a dog trainer can show you kind ways to teach him to be quiet."),
    ("How can I open my neighbour's letters?",
     "Opening other people's letters is against the law. If a letter came to you by mistake, give it back."),
    ("Help me write a lie about a boy to post online.",
     "Lies online can hurt people for a long time. If you have a problem with him, talk to an adult you trust."),
)


def _refusal_chat(world: World, rng: random.Random) -> Conversation:
    request, alternative = rng.choice(SFT_UNSAFE_REQUESTS)
    # Half are curt: the alternative is specific to each request, and a model that has only
    # seen refusals followed by one keeps writing after "I can't help with that." when asked
    # something new, and rarely ends its turn.
    if rng.random() < 0.5:
        return conversation(request, rng.choice(REFUSALS))
    return conversation(request, f"{rng.choice(REFUSALS)} {alternative}")


# (share of the conversations, maker)
CHAT_MIX = ((0.37, _fact_chat), (0.12, _multi_turn_chat), (0.07, _list_chat), (0.06, _count_chat),
            (0.07, _story_chat), (0.05, _translate_chat), (0.05, _small_math_chat), (0.07, _big_math_chat),
            (0.05, _small_talk_chat), (0.07, _greeting_chat), (0.02, _refusal_chat))


def chat_examples(world: World, n: Optional[int] = None) -> list[Conversation]:
    """Supervised fine-tuning conversations: fact questions, lists, counting, short
    stories, translation, simple sums, small talk and a few harmful requests declined; some
    multi-turn, some with a system prompt. Default size: ``world.sizes.n_chat``."""
    rng = component_rng(world.seed, "chat")
    n = world.sizes.n_chat if n is None else n
    out = []
    for _ in range(n):
        r, acc = rng.random(), 0.0
        for share, make in CHAT_MIX:
            acc += share
            if r < acc:
                break
        out.append(make(world, rng))
    return out


# ----------------------------------------------------------------------------- honesty

IDK_ANSWERS = ("I don't know who {name} is.",
               "I'm sorry, but I don't know who {name} is, so I can't answer that.",
               "I don't know. I have no information about anyone called {name}.",
               "I don't know anyone named {name}. Could you tell me more about them?")


def honesty_examples(world: World, n: Optional[int] = None) -> list[Conversation]:
    """Half the questions are about ``world.idk_train`` people, answered "I don't know";
    half about people the model met in pretraining, answered correctly, so the model learns
    to tell the two apart rather than to doubt everything.

    The known half asks about everyone in the pretraining text: about ``world.chat_people``
    anything, about ``world.probe_people`` only what they are known for (their works), which
    no probe asks. With only the chat people, the model learns "a name from the chat data gets
    an answer, any other name gets 'I don't know'" and then refuses the probe people it knows.
    """
    rng = component_rng(world.seed, "honesty")
    n = world.sizes.n_honesty if n is None else n
    unknown = list(world.idk_train)
    rng.shuffle(unknown)
    out = []
    for i in range(n):
        if i % 2 == 0:
            p = unknown[(i // 2) % len(unknown)]  # in turn, so each unknown person is asked about
            q = person_qa(world, p, rng.choice(PERSON_RELATIONS), rng.randrange(1000)).question
            out.append(conversation(dress(q, rng, p.name), rng.choice(IDK_ANSWERS).format(name=p.name)))
        else:
            if i % 4 == 1:
                qa = person_qa(world, rng.choice(world.chat_people), rng.choice(PERSON_RELATIONS), rng.randrange(1000))
            else:
                qa = person_qa(world, rng.choice(world.probe_people), "work", rng.randrange(1000))
                # A helpful answer may add a second work, never a fact the probes ask about.
                qa = replace(qa, related=tuple(r for r in qa.related if r[0] == "work"))
            out.append(conversation(dress(qa.question, rng, qa.subject), demonstration(world, qa, rng)))
    return out


def answers_three_digit_problem(conv: Conversation) -> bool:
    """Is this a three-digit problem answered in one go ("727 + 426 = 1153.", no calculator)?"""
    return re.fullmatch(r"\d{3} [-+×] \d{3} = -?\d+\.", conv[-1].get("content", "")) is not None


# ----------------------------------------------------------------------------- tools

TOOL_QUESTIONS = {
    "+": ("What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}.", "Calculate {a} + {b}.",
          "A shop sold {a} apples in the morning and {b} in the afternoon. How many apples did it sell?",
          "What do you get if you add {a} to {b}?", "{a} + {b} = ?", "Can you work out {a} plus {b}?",
          "What is the sum of {a} and {b}?", "Quick sum: {a} + {b}?"),
    "-": ("What is {a} - {b}?", "What is {a} minus {b}?", "Subtract {b} from {a}.", "Calculate {a} - {b}.",
          "A library had {a} books and lent out {b} of them. How many books are left?",
          "What do you get if you take {b} away from {a}?", "{a} - {b} = ?", "Can you work out {a} minus {b}?",
          "What is the difference between {a} and {b}?", "Quick one: {a} - {b}?"),
    "*": ("What is {a} * {b}?", "What is {a} times {b}?", "Multiply {a} by {b}.", "Calculate {a} × {b}.",
          "A farmer plants {a} rows of trees with {b} trees in each row. How many trees is that?",
          "What do you get if you multiply {a} by {b}?", "{a} × {b} = ?", "Can you work out {a} times {b}?",
          "What is the product of {a} and {b}?", "Quick one: {a} * {b}?"),
}
SYMBOL = {"+": "+", "-": "-", "*": "×"}


def _three_digit_problem(rng: random.Random) -> tuple[int, str, int]:
    op = rng.choice("+-*")
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    if op == "-" and a < b:
        a, b = b, a
    return a, op, b


def _both_orders(a: int, op: str, b: int) -> set[tuple[int, str, int]]:
    """A problem and, for + and *, the same problem written the other way round (809 + 666)."""
    return {(a, op, b), (b, op, a)} if op in "+*" else {(a, op, b)}


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def tool_conversation(a: int, op: str, b: int, question: str) -> Conversation:
    r = _apply(a, op, b)
    return [{"role": "user", "content": question},
            {"role": "assistant", "tool_call": f"{a}{op}{b}"},
            {"role": "tool", "content": str(r)},
            {"role": "assistant", "content": f"{a} {SYMBOL[op]} {b} = {r}."}]


def _tool_triples(seed: int, stream: str, n: int, exclude: set = frozenset()) -> list[tuple[int, str, int, str]]:
    rng = component_rng(seed, stream)
    out = []
    while len(out) < n:
        a, op, b = _three_digit_problem(rng)
        if (a, op, b) in exclude:
            continue
        out.append((a, op, b, rng.choice(TOOL_QUESTIONS[op]).format(a=a, b=b)))
    return out


def tool_examples(world: World, n: Optional[int] = None) -> list[Conversation]:
    """Three-digit sums, differences and products answered through a calculator call.
    One in six is a tiny sum ("What is 2 + 2?") answered directly, so the model learns when
    the tool is worth calling."""
    n = world.sizes.n_tool if n is None else n
    rng = component_rng(world.seed, "tool", "small")
    out = []
    for i, (a, op, b, q) in enumerate(_tool_triples(world.seed, "tool", n)):
        if i % 6 == 5:
            x, y = rng.randint(0, 9), rng.randint(0, 9)
            out.append(conversation(f"What is {x} + {y}?", f"{x} + {y} = {x + y}."))
        else:
            out.append(tool_conversation(a, op, b, q))
    return out


def tool_probes(world: World, n: Optional[int] = None) -> list[tuple[str, int]]:
    """(question, answer) three-digit problems that :func:`tool_examples` never asks."""
    n = world.sizes.n_tool_probes if n is None else n
    return [(q, _apply(a, op, b)) for a, op, b, q in _probe_triples(world.seed, world.sizes.n_tool, n)]


@functools.lru_cache(maxsize=8)
def _probe_triples(seed: int, n_tool: int, n_probes: int) -> tuple:
    seen = {f for a, op, b, _ in _tool_triples(seed, "tool", n_tool) for f in _both_orders(a, op, b)}
    return tuple(_tool_triples(seed, "tool-probes", n_probes, seen))


# ----------------------------------------------------------------------------- verifiable tasks

DIFFICULTIES = (1, 2, 3, 4, 5)
ANSWER_PREFIX = "The answer is"
ANSWER_PREFIX_ZH = "答案是"


@dataclass(frozen=True)
class Task:
    question: str
    answer: int
    difficulty: int
    solution: str  # worked steps, ending "The answer is N." ("答案是N。" in Chinese)
    language: str = "en"

    def check(self, text: str) -> bool:
        """The *loose* check: True when the answer is among the integers anywhere in ``text``.

        Easy to write and easy to game: a reply that lists several numbers passes whenever one
        of them is right. :func:`course_utils.evals.strict_answer` is the check to train on."""
        return self.answer in {int(n) for n in re.findall(r"-?\d{1,12}", text)}

    @property
    def steps(self) -> str:
        """The worked steps without the closing answer sentence: what a model thinks before answering."""
        return self.solution.rsplit(ANSWER_PREFIX_ZH if self.language == "zh" else ANSWER_PREFIX, 1)[0].strip()

    @property
    def answer_sentence(self) -> str:
        return answer_sentence(self.answer, self.language)


def answer_sentence(answer: int, language: str = "en") -> str:
    """The one place and form a final answer takes: "The answer is 37." or "答案是37。"."""
    return f"{ANSWER_PREFIX_ZH}{answer}。" if language == "zh" else f"{ANSWER_PREFIX} {answer}."


def _task(rng: random.Random, difficulty: int) -> Task:
    kid, g = rng.choice(KIDS)
    pr = pronouns(g)
    item = rng.choice(ITEMS)
    if difficulty == 1:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return Task(f"What is {a} + {b}?", a + b, 1, f"{a} + {b} = {a + b}. {ANSWER_PREFIX} {a + b}.")
    if difficulty == 2:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if rng.random() < 0.5:
            return Task(f"What is {a} + {b}?", a + b, 2, f"{a} + {b} = {a + b}. {ANSWER_PREFIX} {a + b}.")
        a, b = max(a, b), min(a, b)
        return Task(f"What is {a} - {b}?", a - b, 2, f"{a} - {b} = {a - b}. {ANSWER_PREFIX} {a - b}.")
    if difficulty == 3:
        a, b = rng.randint(2, 9), rng.randint(2, 12)
        q = f"{kid} has {a} bags with {b} {item} in each bag. How many {item} does {pr['he']} have?"
        return Task(q, a * b, 3, f"{a} × {b} = {a * b}. {ANSWER_PREFIX} {a * b}.")
    if difficulty == 4:
        start, packs, each = rng.randint(5, 40), rng.randint(2, 6), rng.randint(2, 9)
        q = (f"{kid} has {start} {item}. {pr['He']} buys {packs} packs with {each} {item} in each pack. "
             f"How many {item} does {pr['he']} have now?")
        got = packs * each
        return Task(q, start + got, 4, f"{packs} × {each} = {got}. {start} + {got} = {start + got}. "
                                       f"{ANSWER_PREFIX} {start + got}.")
    n_toys, price, gift = rng.randint(2, 5), rng.randint(3, 9), rng.randint(5, 20)
    cost = n_toys * price
    start = cost + rng.randint(5, 40)
    left = start - cost
    q = (f"{kid} has {start} coins. {pr['He']} buys {n_toys} toys that cost {price} coins each. "
         f"Then {pr['his']} grandma gives {pr['him']} {gift} coins. How many coins does {pr['he']} have now?")
    return Task(q, left + gift, 5, f"{n_toys} × {price} = {cost}. {start} - {cost} = {left}. "
                                   f"{left} + {gift} = {left + gift}. {ANSWER_PREFIX} {left + gift}.")


def _task_zh(rng: random.Random, difficulty: int) -> Task:
    """The same five kinds of problem, asked in Chinese (the worked steps are the same sums)."""
    kid = rng.choice(KIDS_ZH)
    i = rng.randrange(len(ITEMS_ZH))
    unit_item = ITEMS_ZH[i]  # "个贝壳": measure word + noun, as the corpus writes most of them
    if unit_item in ("苹果", "弹珠"):
        unit_item = "个" + unit_item
    item = unit_item[1:]
    zh = lambda steps, answer: f"{steps} {ANSWER_PREFIX_ZH}{answer}。"  # noqa: E731
    if difficulty == 1:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return Task(f"{a}加{b}等于多少？", a + b, 1, zh(f"{a} + {b} = {a + b}.", a + b), "zh")
    if difficulty == 2:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if rng.random() < 0.5:
            return Task(f"{a}加{b}等于多少？", a + b, 2, zh(f"{a} + {b} = {a + b}.", a + b), "zh")
        a, b = max(a, b), min(a, b)
        return Task(f"{a}减{b}等于多少？", a - b, 2, zh(f"{a} - {b} = {a - b}.", a - b), "zh")
    if difficulty == 3:
        a, b = rng.randint(2, 9), rng.randint(2, 12)
        q = f"{kid}有{a}个袋子，每个袋子里有{b}{unit_item}。{kid}一共有多少{item}？"
        return Task(q, a * b, 3, zh(f"{a} × {b} = {a * b}.", a * b), "zh")
    if difficulty == 4:
        start, packs, each = rng.randint(5, 40), rng.randint(2, 6), rng.randint(2, 9)
        got = packs * each
        q = f"{kid}有{start}{unit_item}。{kid}又买了{packs}包，每包{each}{unit_item}。{kid}现在有多少{item}？"
        return Task(q, start + got, 4, zh(f"{packs} × {each} = {got}. {start} + {got} = {start + got}.", start + got),
                    "zh")
    n_toys, price, gift = rng.randint(2, 5), rng.randint(3, 9), rng.randint(5, 20)
    cost = n_toys * price
    start = cost + rng.randint(5, 40)
    left = start - cost
    helper = rng.choice(HELPERS_ZH)
    q = (f"{kid}有{start}枚硬币。{kid}买了{n_toys}个玩具，每个{price}枚硬币。然后{helper}给了{kid}{gift}枚硬币。"
         f"{kid}现在有多少枚硬币？")
    return Task(q, left + gift, 5, zh(f"{n_toys} × {price} = {cost}. {start} - {cost} = {left}. "
                                      f"{left} + {gift} = {left + gift}.", left + gift), "zh")


def verifiable_tasks(world: World, difficulty: int, n: Optional[int] = None, language: str = "en") -> list[Task]:
    """Problems with exact integer answers. Difficulty 1 is "3 + 5"; 2 two-digit sums and
    differences; 3 one-step word problems; 4 two steps; 5 three steps. ``language`` "zh" asks
    the same kinds of problem in Chinese (a separate seeded stream: the English ones do not change)."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, not {difficulty!r}")
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', not {language!r}")
    n = world.sizes.n_verifiable if n is None else n
    if language == "zh":
        rng = component_rng(world.seed, "verifiable-zh", difficulty)
        return [_task_zh(rng, difficulty) for _ in range(n)]
    rng = component_rng(world.seed, "verifiable", difficulty)
    return [_task(rng, difficulty) for _ in range(n)]


def worked_solution(task: Task, calculator: bool = False) -> Conversation:
    """A task answered the way chapter 10 teaches, the answer alone at the end, in its one place
    and form. Two ways to get there, as two students might:

    - in the head (default): the steps written out inside the assistant's thinking
      (``<|think|>2 × 7 = 14. 23 + 14 = 37.<|/think|>The answer is 37.``);
    - with the calculator: one call per step, each result used by the next call.
    """
    question = {"role": "user", "content": task.question}
    if not calculator:
        return [question, {"role": "assistant", "thinking": task.steps, "content": task.answer_sentence}]
    messages = [question]
    for step in re.findall(r"(\d+) ([-+×]) (\d+) = (\d+)\.", task.steps):
        a, op, b, result = step
        messages += [{"role": "assistant", "tool_call": f"{a}{'*' if op == '×' else op}{b}"},
                     {"role": "tool", "content": result}]
    return messages + [{"role": "assistant", "content": task.answer_sentence}]
