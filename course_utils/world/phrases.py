"""The canonical sentences that state each fact, in English and Chinese.

A tiny model memorises a fact as a *phrasing*: it learns that "The capital of France is" is
followed by " Paris". So every fact has one canonical sentence, built here from a
``(prompt, answer)`` pair, and every document, chat answer and cloze probe uses these same
functions. The fact-recall evaluation can then ask with exactly the words the model read.

Rules that keep the cloze probes unambiguous (the tests check them on every document):

- a cloze prompt is always followed by its answer: nothing else ever continues
  "Ada Novak was born in" except " Lyon" (the birth year has its own prompt,
  "Ada Novak was born in Lyon, France, in");
- in English the answer follows the prompt after one space; in Chinese, directly.

Other phrasings of the same facts (for variety) live in the ``alt_`` functions; they must
never start with a cloze prompt.
"""
from __future__ import annotations

from .facts import CONTINENT_ZH, LANGUAGE_ZH, RIVER_ZH, Country, Person, Work, World

# The separator between a cloze prompt and its answer, per language.
CLOZE_SEPARATOR = {"en": " ", "zh": ""}


def join_list(items, lang: str = "en") -> str:
    """"a", "a and b", "a, b and c" (or 、 and 和 in Chinese)."""
    items = list(items)
    if lang == "zh":
        return items[0] if len(items) == 1 else "、".join(items[:-1]) + "和" + items[-1]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


# ----------------------------------------------------------------------------- cloze pairs
# Each returns (prompt, answer); the canonical sentence is prompt + separator + answer + tail.

def capital_cloze(c: Country) -> tuple[str, str]:
    return f"The capital of {c.ref} is", c.capital


def language_cloze(c: Country) -> tuple[str, str]:
    return f"The main language of {c.ref} is", c.languages[0]


def river_cloze(c: Country) -> tuple[str, str]:
    return f"A famous river in {c.ref} is the", c.rivers[0]


def continent_cloze(c: Country) -> tuple[str, str]:
    return f"{c.Ref} is a country in", c.continent


def birth_city_cloze(p: Person) -> tuple[str, str]:
    return f"{p.name} was born in", p.birth_city


def birth_year_cloze(p: Person) -> tuple[str, str]:
    return f"{p.name} was born in {p.birth_city}, {p.birth_country}, in", str(p.birth_year)


def profession_cloze(p: Person) -> tuple[str, str]:
    return f"{p.name} works as a", p.profession  # every profession starts with a consonant


def work_cloze(p: Person) -> tuple[str, str]:
    job = p.job
    return f"{p.name} {job.work_verb} the {job.work_kind}", f'"{p.works[0].title}"'


def capital_cloze_zh(c: Country) -> tuple[str, str]:
    return f"{c.name_zh}的首都是", c.capital_zh


def language_cloze_zh(c: Country) -> tuple[str, str]:
    return f"{c.name_zh}的主要语言是", LANGUAGE_ZH[c.languages[0]]


def river_cloze_zh(c: Country) -> tuple[str, str]:
    return f"{c.name_zh}最著名的河流之一是", RIVER_ZH[c.rivers[0]]


def continent_cloze_zh(c: Country) -> tuple[str, str]:
    return f"{c.name_zh}位于", CONTINENT_ZH[c.continent]


def birth_city_cloze_zh(p: Person, world: World) -> tuple[str, str]:
    return f"{p.name}出生于{world.birth_country(p).name_zh}", p.birth_city_zh


def birth_year_cloze_zh(p: Person) -> tuple[str, str]:
    return f"{p.name}生于", str(p.birth_year)


def profession_cloze_zh(p: Person) -> tuple[str, str]:
    return f"{p.name}是一位", p.job.name_zh


def work_cloze_zh(p: Person) -> tuple[str, str]:
    return f"{p.name}的代表作是{p.job.work_kind_zh}", f"《{p.works[0].title_zh}》"


# ----------------------------------------------------------------------------- canonical sentences

def capital(c: Country) -> str:
    p, a = capital_cloze(c)
    return f"{p} {a}."


def language(c: Country) -> str:
    p, a = language_cloze(c)
    return f"{p} {a}."


def river(c: Country) -> str:
    p, a = river_cloze(c)
    return f"{p} {a}."


def continent(c: Country) -> str:
    p, a = continent_cloze(c)
    return f"{p} {a}."


def born(p: Person) -> str:
    """ "Ada Novak was born in Lyon, France." """
    q, a = birth_city_cloze(p)
    return f"{q} {a}, {p.birth_country}."


def born_year(p: Person) -> str:
    """ "Ada Novak was born in Lyon, France, in 1954." """
    q, a = birth_year_cloze(p)
    return f"{q} {a}."


def profession(p: Person) -> str:
    q, a = profession_cloze(p)
    return f"{q} {a}."


def work(p: Person, w: Work) -> str:
    """The first work is canonical; a second one is told with "also", so that
    "Ada Novak wrote the book" is always followed by the first title."""
    job = p.job
    if w == p.works[0]:
        q, a = work_cloze(p)
        return f"{q} {a}."
    return f'{p.name} also {job.work_verb} the {job.work_kind} "{w.title}".'


def works(p: Person) -> str:
    return " ".join(work(p, w) for w in p.works)


def capital_zh(c: Country) -> str:
    return "".join(capital_cloze_zh(c)) + "。"


def language_zh(c: Country) -> str:
    return "".join(language_cloze_zh(c)) + "。"


def river_zh(c: Country) -> str:
    return "".join(river_cloze_zh(c)) + "。"


def continent_zh(c: Country) -> str:
    return "".join(continent_cloze_zh(c)) + "。"


def born_zh(p: Person, world: World) -> str:
    return "".join(birth_city_cloze_zh(p, world)) + "。"


def born_year_zh(p: Person) -> str:
    return "".join(birth_year_cloze_zh(p)) + "年。"


def profession_zh(p: Person) -> str:
    return "".join(profession_cloze_zh(p)) + "。"


def work_zh(p: Person, w: Work) -> str:
    if w == p.works[0]:
        return "".join(work_cloze_zh(p)) + "。"
    return f"{p.name}还创作了{p.job.work_kind_zh}《{w.title_zh}》。"


def works_zh(p: Person) -> str:
    return "".join(work_zh(p, w) for w in p.works)


# ----------------------------------------------------------------------------- other phrasings

def alt_capital(c: Country, k: int) -> str:
    return (f"{c.capital} is the capital of {c.ref}.",
            f"{c.capital} is the capital city of {c.ref}.",
            f"{c.Ref} has its capital in {c.capital}.")[k % 3]


def alt_language(c: Country, k: int) -> str:
    return (f"People in {c.ref} speak {join_list(c.languages)}.",
            f"In {c.ref}, most people speak {c.languages[0]}.",
            f"{c.languages[0]} is the language you hear most in {c.ref}.")[k % 3]


def alt_river(c: Country, k: int) -> str:
    r = c.rivers[0]
    return (f"The {r} flows through {c.ref}.",
            f"The {r} is one of the best-known rivers of {c.ref}.")[k % 2]


def other_rivers(c: Country) -> str:
    return " ".join(f"The {r} also flows through {c.ref}." for r in c.rivers[1:])


def cities(c: Country) -> str:
    if not c.cities:
        return ""
    return f"Other cities in {c.ref} include {join_list(name for name, _ in c.cities)}."


def alt_born(p: Person, world: World, k: int) -> str:
    c = world.birth_country(p)
    return (f"{p.name} comes from {p.birth_city}, a city in {c.ref}.",
            f"{p.name}'s hometown is {p.birth_city}, in {c.ref}.",
            f"Born in {p.birth_year}, {p.name} grew up in {p.birth_city}.")[k % 3]


def alt_profession(p: Person, world: World, k: int) -> str:
    c = world.birth_country(p)
    job = p.profession
    return (f"{p.name} is {article(job)} {job} from {c.ref}.",
            f"As {article(job)} {job}, {p.name} is known in many countries.",
            f"{p.name} has been {article(job)} {job} for many years.")[k % 3]


def alt_work(p: Person, w: Work, k: int) -> str:
    return (f'"{w.title}" is {article(w.kind)} {w.kind} by {p.name}.',
            f'{p.name} is famous for the {w.kind} "{w.title}".')[k % 2]


def alt_capital_zh(c: Country) -> str:
    return f"{c.capital_zh}是{c.name_zh}的首都。"


def alt_language_zh(c: Country) -> str:
    return f"在{c.name_zh}，人们说{join_list([LANGUAGE_ZH[x] for x in c.languages], 'zh')}。"


def alt_born_zh(p: Person, world: World) -> str:
    return f"{p.name}来自{world.birth_country(p).name_zh}的{p.birth_city_zh}。"


def alt_profession_zh(p: Person) -> str:
    return f"作为一名{p.job.name_zh}，{p.name}很有名。"


def cities_zh(c: Country) -> str:
    if not c.cities:
        return ""
    return f"{c.name_zh}的其他城市还有{join_list([zh for _, zh in c.cities], 'zh')}。"

