"""The clean documents of the world: what a perfect cleaning pipeline would recover.

Four kinds, in English and (about an eighth of them) Chinese:

- ``encyclopedia``: pages about a country or a person (wiki, fact sheet, travel guide,
  school report, quiz, timeline, "famous painters" lists);
- ``story``: short stories in the simple grammar of TinyStories, some starring our people;
- ``forum``: question-and-answer threads ("Q: Where was Ada Novak born?" / "A: ...");
- ``arithmetic``: worksheets and word problems with worked answers.

Each fact is retold in many documents and phrasings, always including its canonical
sentence from :mod:`.phrases`: a tiny model memorises facts by seeing them again and again
within an epoch or two. A document's ``text`` has one paragraph per line (no blank lines).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

from . import phrases as P
from .facts import LANGUAGE_ZH, PROFESSIONS, Country, Person, World, component_rng

DOC_KINDS = ("encyclopedia", "story", "forum", "arithmetic")


@dataclass(frozen=True)
class Document:
    doc_id: str                    # "en-forum-00042": stable for a seed
    kind: str                      # one of DOC_KINDS
    lang: str                      # "en" or "zh"
    text: str                      # one paragraph per line
    title: str = ""
    subjects: tuple[str, ...] = ()  # the people and countries whose facts it states

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


@dataclass
class _Draft:
    kind: str
    lang: str
    title: str
    lines: list[str]
    subjects: tuple[str, ...]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# Small vocabularies for the stories. Children and animals in generic stories get simple
# first names that are not in the people's name pool.
KIDS = (("Tom", "m"), ("Lily", "f"), ("Ben", "m"), ("Mia", "f"), ("Sam", "m"), ("Anna", "f"),
        ("Max", "m"), ("Lucy", "f"), ("Jack", "m"), ("Emma", "f"), ("Tim", "m"), ("Zoe", "f"),
        ("Finn", "m"), ("Ruby", "f"), ("Ned", "m"), ("Daisy", "f"))
ANIMALS = ("cat", "dog", "bird", "rabbit", "duck", "frog", "bear", "fox", "mouse", "horse", "owl", "goat")
PET_NAMES = ("Spot", "Fluffy", "Pip", "Coco", "Biscuit", "Sunny", "Patch", "Button", "Shadow", "Pepper")
TOYS = ("red ball", "blue kite", "little car", "toy boat", "teddy bear", "yellow hat",
        "box of crayons", "wooden train", "paper plane", "green bucket")
HELPERS = ("mom", "dad", "grandma", "grandpa", "big sister", "big brother", "teacher")
FOODS = ("apple", "cookie", "sandwich", "orange", "piece of cake", "banana", "muffin")
FEELINGS_GOOD = ("happy", "glad", "proud", "excited")
PLACES_NEAR = ("the park", "the garden", "the beach", "the forest", "the big hill", "the pond")
PROBLEMS = ("a big storm came", "the wind blew everything away", "{his} friend laughed at {him}",
            "{he} lost {his} favorite pencil", "nobody came to watch", "{he} felt too tired to go on")
ITEMS = ("apples", "marbles", "books", "stickers", "coins", "pencils", "shells", "cookies", "cards", "flowers")
ITEMS_ZH = ("苹果", "弹珠", "本书", "张贴纸", "枚硬币", "支铅笔", "个贝壳", "块饼干", "张卡片", "朵花")
KIDS_ZH = ("小明", "小红", "小华", "小丽", "小刚", "小芳", "小强", "小美")


def pronouns(gender: str) -> dict[str, str]:
    return ({"he": "she", "his": "her", "him": "her", "He": "She", "His": "Her", "kid": "girl"}
            if gender == "f" else
            {"he": "he", "his": "his", "him": "him", "He": "He", "His": "His", "kid": "boy"})


# ----------------------------------------------------------------------------- countries (English)

def _notable(world: World, c: Country, rng: random.Random, k: int) -> list[Person]:
    people = world.people_born_in(c)
    return rng.sample(people, min(len(people), k)) if people else []


def country_page_en(world: World, c: Country, rng: random.Random, k: int) -> _Draft:
    notable = _notable(world, c, rng, rng.randint(1, 3))
    style = k % 5
    if style == 0:  # wiki
        title = c.name
        lines = [f"{P.continent(c)} {P.capital(c)} {P.language(c)}",
                 " ".join(x for x in (P.cities(c), P.river(c), P.other_rivers(c)) if x),
                 f"{P.alt_language(c, k)} {P.alt_capital(c, k)}"]
        if notable:
            lines.append(f"Notable people from {c.ref} include {P.join_list(p.name for p in notable)}. "
                         + " ".join(P.born(p) for p in notable))
    elif style == 1:  # fact sheet
        title = f"{c.name}: facts at a glance"
        lines = [f"Country: {c.name}", f"Capital: {c.capital}", f"Continent: {c.continent}",
                 f"Main language: {c.languages[0]}", f"Languages spoken: {', '.join(c.languages)}",
                 f"Rivers: {', '.join(c.rivers)}", f"In one sentence: {P.capital(c)}"]
        lines += [f"Born here: {p.name}, {p.profession}. {P.born(p)}" for p in notable]
    elif style == 2:  # travel guide
        title = f"Travel guide: {c.name}"
        lines = [f"Planning a trip to {c.ref}? Here is what you should know.",
                 f"{P.capital(c)} Many visitors start their trip in {c.capital}.",
                 f"{P.river(c)} {P.alt_river(c, k)}",
                 f"{P.language(c)} A few words of {c.languages[0]} will help you on the way."]
        if c.cities:
            lines.append(P.cities(c))
        lines += [f"Fans of the {p.job.work_kind} \"{p.works[0].title}\" may know that {P.born(p)}"
                  for p in notable]
    elif style == 3:  # school report
        title = f"My report about {c.name}"
        lines = [f"My report is about {c.ref}. {P.continent(c)}", P.capital(c), P.language(c),
                 P.river(c)]
        lines += [f"A famous person from {c.ref} is {p.name}. {P.born(p)} {P.profession(p)}"
                  for p in notable]
        lines.append(f"I would like to visit {c.ref} one day.")
    else:  # quiz
        title = f"Quiz: how well do you know {c.name}?"
        qa = [(f"What is the capital of {c.ref}?", P.capital(c)),
              (f"What is the main language of {c.ref}?", P.language(c)),
              (f"Name a famous river in {c.ref}.", P.river(c)),
              (f"On which continent is {c.ref}?", P.continent(c))]
        qa += [(f"Where was {p.name} born?", P.born(p)) for p in notable]
        rng.shuffle(qa)
        lines = []
        for i, (q, a) in enumerate(qa, 1):
            lines += [f"Question {i}: {q}", f"Answer: {a}"]
    return _Draft("encyclopedia", "en", title, lines, (c.name,) + tuple(p.name for p in notable))


def country_thread_en(world: World, c: Country, rng: random.Random, k: int) -> _Draft:
    people = world.people_born_in(c)
    options = [
        (f"What is the capital of {c.ref}?", P.capital(c), P.alt_capital(c, k)),
        (f"What language do people speak in {c.ref}?", P.language(c), P.alt_language(c, k)),
        (f"Is there a famous river in {c.ref}?", P.river(c), P.alt_river(c, k)),
        (f"Where is {c.ref}?", P.continent(c), f"{c.Ref} is in {c.continent}. {P.capital(c)}"),
        (f"Which cities should I visit in {c.ref}?", f"{P.capital(c)} {P.cities(c)}".strip(),
         f"Start in {c.capital}."),
    ]
    subjects = [c.name]
    if people:
        p = rng.choice(people)
        subjects.append(p.name)
        options.append((f"Was anyone famous born in {c.ref}?", f"Yes. {P.born(p)} {P.profession(p)}",
                        P.alt_born(p, world, k)))
    picked = rng.sample(options, rng.randint(1, 3))
    # The capital question leads most threads: the most-asked fact on any forum.
    if k % 2 == 0 and options[0] not in picked:
        picked[0] = options[0]
    lines = []
    for q, a, a2 in picked:
        lines += [f"Q: {q}", f"A: {a}"]
        if rng.random() < 0.5:
            lines.append(f"A: {a2}")
    return _Draft("forum", "en", picked[0][0], lines, tuple(subjects))


# ----------------------------------------------------------------------------- people (English)

def person_bio_en(world: World, p: Person, rng: random.Random, k: int) -> _Draft:
    c = world.birth_country(p)
    pr = pronouns(p.gender)
    w0 = p.works[0]
    style = k % 3
    if style == 0:  # wiki
        title = p.name
        lines = [f"{P.alt_profession(p, world, 0)} {P.born_year(p)}",
                 f"{pr['He']} grew up in {p.birth_city}. {P.born(p)}",
                 f"{P.profession(p)} {P.works(p)}",
                 f"Today, {p.name} is best known for the {w0.kind} \"{w0.title}\"."]
    elif style == 1:  # magazine profile
        title = f"Meet {p.name}, the {p.profession} from {p.birth_city}"
        lines = [f"Meet {p.name}. {P.born(p)}",
                 f"As a child, {p.first_name} loved to {p.job.childhood}.",
                 f"{P.profession(p)} {P.alt_work(p, w0, k)}",
                 P.works(p),
                 f"{P.alt_born(p, world, k)} {pr['He']} still visits {c.ref} often."]
    else:  # timeline
        title = f"{p.name}: a short timeline"
        start = p.birth_year + rng.randint(18, 28)
        lines = [f"{p.birth_year}: {p.name} is born in {p.birth_city}, {c.name}.",
                 f"{start}: {p.name} starts working as {P.article(p.profession)} {p.profession}."]
        year = start
        for w in p.works:
            year += rng.randint(2, 9)
            lines.append(f"{year}: {P.work(p, w)}")
        lines.append(f"In short: {P.born_year(p)} {P.profession(p)}")
    return _Draft("encyclopedia", "en", title, lines, (p.name, c.name))


def profession_list_en(world: World, job, rng: random.Random, k: int) -> _Draft | None:
    people = [p for p in world.people if p.profession == job.name]
    if not people:
        return None
    people = rng.sample(people, len(people))
    title = (f"Famous people who work as a {job.name}", f"Who is who: {job.name}s")[k % 2]
    lines = [f"Here are some people you may know. Each of them works as {P.article(job.name)} {job.name}."]
    lines += [f"{P.profession(p)} {P.born(p)} {P.work(p, p.works[0])}" for p in people]
    return _Draft("encyclopedia", "en", title, lines, tuple(p.name for p in people))


def person_story_en(world: World, p: Person, rng: random.Random, k: int) -> _Draft:
    c = world.birth_country(p)
    pr = pronouns(p.gender)
    w0 = p.works[0]
    first = p.first_name
    style = k % 3
    if style == 0:  # growing up
        problem = rng.choice(PROBLEMS).format(**pr)
        helper = rng.choice(HELPERS)
        title = f"The story of {p.name}"
        lines = [f"Once upon a time, there was a little {pr['kid']} named {first}. "
                 f"{pr['He']} lived in {p.birth_city}, a city in {c.ref}.",
                 f"{first} loved to {p.job.childhood}. Every day, {pr['he']} tried a little harder.",
                 f"One day, {problem}. {first} felt sad. But {pr['his']} {helper} said, "
                 f"\"Do not give up. Try again tomorrow.\"",
                 f"So {first} tried again, and this time it worked. {pr['He']} was very "
                 f"{rng.choice(FEELINGS_GOOD)}.",
                 f"{first} grew up and never stopped. {P.born(p)} Today, {P.profession(p)}",
                 f"{P.works(p)} People all over the world know {pr['his']} work."]
    elif style == 1:  # a child meets the person
        kid, g = rng.choice(KIDS)
        kp = pronouns(g)
        title = f"{kid} meets {p.name}"
        lines = [f"{kid} was a {rng.choice(('happy', 'curious', 'kind'))} {kp['kid']}. "
                 f"One day, {kid} went to {p.birth_city} to see a famous {p.profession}.",
                 f"\"Hello,\" said {kid}. \"Are you {p.name}?\" \"Yes, I am,\" said {p.name} with a smile.",
                 f"{P.born(p)} {pr['He']} told {kid} about the {w0.kind} \"{w0.title}\".",
                 f"{P.work(p, w0)} {kid} thought it was wonderful.",
                 f"{kid} said, \"When I grow up, I want to be {P.article(p.profession)} {p.profession} too!\" "
                 f"{p.name} laughed and said, \"Then start today.\""]
    else:  # the work
        title = f"The {w0.kind} called \"{w0.title}\""
        lines = [f"Have you heard of the {w0.kind} \"{w0.title}\"? {P.work(p, w0)}",
                 f"{P.born(p)} When {pr['he']} was small, {pr['he']} liked to {p.job.childhood}.",
                 f"{P.alt_profession(p, world, k)} {P.profession(p)}",
                 f"Every year, many people read about {p.name} and {pr['his']} work. The end."]
    return _Draft("story", "en", title, lines, (p.name, c.name))


def person_thread_en(world: World, p: Person, rng: random.Random, k: int) -> _Draft:
    w0 = p.works[0]
    options = [
        (f"Where was {p.name} born?", P.born(p), P.alt_born(p, world, k)),
        (f"What does {p.name} do?", P.profession(p), P.alt_profession(p, world, k)),
        (f"What is {p.name} known for?", P.works(p), P.alt_work(p, w0, k)),
        (f"When was {p.name} born?", P.born_year(p), P.born(p)),
        (f"Who is {p.name}?", f"{P.alt_profession(p, world, 0)} {P.born(p)}", P.profession(p)),
        (f"Who {p.job.work_verb} the {w0.kind} \"{w0.title}\"?", P.work(p, w0), P.alt_work(p, w0, k + 1)),
    ]
    picked = rng.sample(options, rng.randint(1, 3))
    # "Where was X born?" leads every other thread, the fact the recall probes ask most.
    if k % 2 == 0 and options[0] not in picked:
        picked[0] = options[0]
    lines = []
    for q, a, a2 in picked:
        lines += [f"Q: {q}", f"A: {a}"]
        if rng.random() < 0.5:
            lines.append(f"A: {a2}")
    return _Draft("forum", "en", picked[0][0], lines, (p.name, p.birth_country))


# ----------------------------------------------------------------------------- Chinese

def country_doc_zh(world: World, c: Country, rng: random.Random, k: int) -> _Draft:
    notable = _notable(world, c, rng, rng.randint(1, 2))
    style = k % 3
    if style == 0:
        title = c.name_zh
        lines = [f"{P.continent_zh(c)}{P.capital_zh(c)}{P.language_zh(c)}",
                 f"{P.river_zh(c)}{P.cities_zh(c)}",
                 P.alt_language_zh(c)]
        if notable:
            lines.append("来自" + c.name_zh + "的名人有" + P.join_list([p.name for p in notable], "zh")
                         + "。" + "".join(P.born_zh(p, world) for p in notable))
        return _Draft("encyclopedia", "zh", title, lines, (c.name,) + tuple(p.name for p in notable))
    if style == 1:
        title = f"关于{c.name_zh}的问题"
        lines = [f"问：{c.name_zh}的首都在哪里？", f"答：{P.capital_zh(c)}",
                 f"问：{c.name_zh}的人说什么语言？", f"答：{P.language_zh(c)}"]
        if rng.random() < 0.5:
            lines += [f"问：{c.name_zh}有什么著名的河流？", f"答：{P.river_zh(c)}"]
        for p in notable:
            lines += [f"问：{p.name}出生在哪里？", f"答：{P.born_zh(p, world)}"]
        return _Draft("forum", "zh", title, lines, (c.name,) + tuple(p.name for p in notable))
    kid = rng.choice(KIDS_ZH)
    title = f"{kid}去{c.name_zh}旅行"
    lines = [f"暑假到了，{kid}和爸爸妈妈一起去{c.name_zh}旅行。",
             f"妈妈说：“{P.capital_zh(c)}”他们先去了{c.capital_zh}。",
             f"导游告诉大家：“{P.river_zh(c)}”{kid}在河边看了很久。",
             f"{P.language_zh(c)}{kid}学会了一句{LANGUAGE_ZH[c.languages[0]]}的“你好”。",
             f"回家以后，{kid}说：“我还想再去{c.name_zh}！”"]
    return _Draft("story", "zh", title, lines, (c.name,))


def person_doc_zh(world: World, p: Person, rng: random.Random, k: int) -> _Draft:
    c = world.birth_country(p)
    style = k % 3
    if style == 0:
        lines = [f"{P.profession_zh(p)}{P.born_zh(p, world)}{P.born_year_zh(p)}",
                 f"{p.he_zh}小时候很喜欢{p.job.childhood_zh}。",
                 P.works_zh(p),
                 P.alt_born_zh(p, world)]
        return _Draft("encyclopedia", "zh", p.name, lines, (p.name, c.name))
    if style == 1:
        lines = [f"问：{p.name}出生在哪里？", f"答：{P.born_zh(p, world)}",
                 f"问：{p.name}是做什么的？", f"答：{P.profession_zh(p)}{P.alt_profession_zh(p)}"]
        if rng.random() < 0.6:
            lines += [f"问：{p.name}有什么代表作？", f"答：{P.works_zh(p)}"]
        return _Draft("forum", "zh", f"{p.name}出生在哪里？", lines, (p.name, c.name))
    girl = "小女孩" if p.gender == "f" else "小男孩"
    lines = [f"从前，在{c.name_zh}的{p.birth_city_zh}，有一个名叫{p.name}的{girl}。",
             f"{p.he_zh}每天都喜欢{p.job.childhood_zh}。",
             f"有一天，{p.he_zh}遇到了困难，可是{p.he_zh}没有放弃。",
             f"长大以后，{p.name}成为了一名{p.job.name_zh}。{P.profession_zh(p)}{P.born_zh(p, world)}",
             f"{P.works_zh(p)}大家都很喜欢{p.he_zh}的作品。"]
    return _Draft("story", "zh", f"{p.name}的故事", lines, (p.name, c.name))


# ----------------------------------------------------------------------------- generic stories

def generic_story_en(world: World, rng: random.Random, k: int,
                     countries: Optional[Sequence[Country]] = None) -> _Draft:
    kid, g = rng.choice(KIDS)
    pr = pronouns(g)
    c = rng.choice(countries or world.countries)
    style = k % 6
    if style == 0:  # the lost toy
        toy, place = rng.choice(TOYS), rng.choice(PLACES_NEAR)
        friend, _ = rng.choice([x for x in KIDS if x[0] != kid])
        title = f"{kid} and the {toy}"
        lines = [f"{kid} had a {toy}. {pr['He']} loved it very much.",
                 f"One day, {kid} went to {place} and lost the {toy}. {pr['He']} looked everywhere.",
                 f"{kid} felt sad. Then {friend} came and said, \"I will help you look.\"",
                 f"They found the {toy} under a big tree. {kid} was {rng.choice(FEELINGS_GOOD)}.",
                 f"\"Thank you, {friend}!\" said {kid}. From that day on, they were best friends."]
        subjects = ()
    elif style == 1:  # a trip to a capital
        helper = rng.choice(HELPERS)
        title = f"{kid} goes to {c.capital}"
        lines = [f"{kid} and {pr['his']} {helper} went on a trip to {c.ref}.",
                 f"\"{P.capital(c)}\" said {pr['his']} {helper}. \"We will start there.\"",
                 f"In {c.capital}, {kid} saw tall houses, busy streets and a big market.",
                 f"People in the market spoke {c.languages[0]}. {P.language(c)}",
                 f"At night, {kid} said, \"I love {c.capital}!\" Then {pr['he']} fell asleep."]
        subjects = (c.name,)
    elif style == 2:  # an animal friend
        animal, pet = rng.choice(ANIMALS), rng.choice(PET_NAMES)
        title = f"{kid} and {pet} the {animal}"
        lines = [f"Once upon a time, there was a little {animal} named {pet}.",
                 f"{pet} lived near {kid}'s house in {c.capital}. {P.capital(c)}",
                 f"Every morning, {kid} gave {pet} some food. {pet} was very happy.",
                 f"One day, {pet} was stuck in a hole. {kid} pulled and pulled, and {pet} was free.",
                 f"After that, {pet} followed {kid} everywhere. They were good friends."]
        subjects = (c.name,)
    elif style == 3:  # sharing
        food = rng.choice(FOODS)
        friend, _ = rng.choice([x for x in KIDS if x[0] != kid])
        title = f"{kid} shares {pr['his']} {food}"
        lines = [f"{kid} had one {food} for lunch. {friend} had nothing to eat.",
                 f"{kid} thought for a moment. Then {pr['he']} broke the {food} in two.",
                 f"\"Here, this is for you,\" said {kid}. {friend} smiled.",
                 f"The {food} was small, but it tasted better when they shared it.",
                 "Sharing makes everyone happy."]
        subjects = ()
    elif style == 4:  # a river trip
        title = f"A boat on the {c.rivers[0]}"
        lines = [f"{kid} went on a boat trip with {pr['his']} class.",
                 f"The guide said, \"{P.river(c)}\" The water was wide and blue.",
                 f"{kid} saw ducks, fish and a little island. {pr['He']} waved at a man on the shore.",
                 f"\"{P.continent(c)}\" said the teacher. \"Who knows its capital?\"",
                 f"{kid} raised {pr['his']} hand. \"{P.capital(c)}\" \"Very good!\" said the teacher."]
        subjects = (c.name,)
    else:  # a rainy day
        toy = rng.choice(TOYS)
        helper = rng.choice(HELPERS)
        title = f"A rainy day for {kid}"
        lines = [f"It was raining, and {kid} could not go outside. {pr['He']} was bored.",
                 f"{pr['His']} {helper} said, \"Let us build a house out of blankets.\"",
                 f"They built a big blanket house and played with the {toy} inside.",
                 f"Soon the rain stopped, but {kid} wanted to stay in the blanket house.",
                 "Sometimes a rainy day is the best day of all."]
        subjects = ()
    return _Draft("story", "en", title, lines, subjects)


def generic_story_zh(world: World, rng: random.Random, k: int) -> _Draft:
    kid = rng.choice(KIDS_ZH)
    c = rng.choice(world.countries)
    if k % 2 == 0:
        lines = [f"{kid}有一只小猫。小猫每天都陪着{kid}玩。",
                 f"有一天，小猫不见了。{kid}很着急，到处找。",
                 f"最后，{kid}在花园里找到了小猫。原来它在树下睡觉呢！",
                 f"{kid}抱着小猫，开心地笑了。"]
        return _Draft("story", "zh", f"{kid}和小猫", lines, ())
    lines = [f"老师问：“谁知道{c.name_zh}的首都在哪里？”",
             f"{kid}举起手说：“{P.capital_zh(c)}”",
             f"老师笑着说：“回答正确！{P.continent_zh(c)}”",
             f"放学以后，{kid}在地图上找到了{c.capital_zh}。"]
    return _Draft("story", "zh", f"{kid}的地理课", lines, (c.name,))


# ----------------------------------------------------------------------------- arithmetic

def _sum_line(rng: random.Random, hi: int) -> str:
    a, b = rng.randint(0, hi), rng.randint(0, hi)
    op = rng.choice("+-×")
    if op == "-":
        a, b = max(a, b), min(a, b)
        return f"{a} - {b} = {a - b}"
    if op == "×":
        a, b = rng.randint(0, 12), rng.randint(0, 12)
        return f"{a} × {b} = {a * b}"
    return f"{a} + {b} = {a + b}"


def arithmetic_en(rng: random.Random, k: int) -> _Draft:
    style = k % 3
    if style == 0:
        hi = rng.choice((10, 20, 100))
        lines = [_sum_line(rng, hi) for _ in range(rng.randint(8, 16))]
        return _Draft("arithmetic", "en", f"Practice sheet {k + 1}", lines, ())
    if style == 1:
        lines = []
        for _ in range(rng.randint(3, 5)):
            kid, g = rng.choice(KIDS)
            pr = pronouns(g)
            item = rng.choice(ITEMS)
            a, b = rng.randint(2, 40), rng.randint(2, 30)
            if rng.random() < 0.5:
                lines.append(f"{kid} has {a} {item}. {pr['He']} gets {b} more. How many {item} does "
                             f"{pr['he']} have now? {a} + {b} = {a + b}. The answer is {a + b}.")
            else:
                a, b = max(a, b) + 1, min(a, b)
                lines.append(f"{kid} has {a} {item}. {pr['He']} gives {b} to a friend. How many {item} "
                             f"are left? {a} - {b} = {a - b}. The answer is {a - b}.")
        return _Draft("arithmetic", "en", "Word problems with answers", lines, ())
    a, b = rng.randint(11, 89), rng.randint(11, 89)
    ta, oa, tb, ob = a // 10 * 10, a % 10, b // 10 * 10, b % 10
    lines = [f"How do you add {a} and {b} in your head? Split each number into tens and ones.",
             f"First add the tens: {ta} + {tb} = {ta + tb}.",
             f"Then add the ones: {oa} + {ob} = {oa + ob}.",
             f"Finally add the two results: {ta + tb} + {oa + ob} = {a + b}.",
             f"So {a} + {b} = {a + b}."]
    return _Draft("arithmetic", "en", f"Adding {a} and {b}", lines, ())


def arithmetic_zh(rng: random.Random, k: int) -> _Draft:
    if k % 2 == 0:
        lines = []
        for _ in range(rng.randint(6, 10)):
            a, b = rng.randint(1, 50), rng.randint(1, 50)
            lines.append(f"{a}加{b}等于{a + b}。")
        return _Draft("arithmetic", "zh", "加法练习", lines, ())
    lines = []
    for _ in range(rng.randint(2, 4)):
        kid = rng.choice(KIDS_ZH)
        i = rng.randrange(len(ITEMS_ZH))
        a, b = rng.randint(2, 30), rng.randint(2, 20)
        lines.append(f"{kid}有{a}{ITEMS_ZH[i]}，妈妈又给了{kid}{b}{ITEMS_ZH[i]}。"
                     f"{kid}现在一共有多少？{a} + {b} = {a + b}。答案是{a + b}。")
    return _Draft("arithmetic", "zh", "应用题", lines, ())


# ----------------------------------------------------------------------------- the corpus

def _drafts(world: World) -> list[_Draft]:
    s = world.sizes
    drafts: list[_Draft] = []

    def rng(*parts) -> random.Random:
        return component_rng(world.seed, "documents", *parts)

    for c in world.countries:
        r = rng("country", c.name)
        drafts += [country_page_en(world, c, r, k) for k in range(s.pages_per_country)]
        drafts += [country_thread_en(world, c, r, k) for k in range(s.threads_per_country)]
        drafts += [country_doc_zh(world, c, r, k) for k in range(s.zh_docs_per_country)]
    for p in world.people:
        r = rng("person", p.name)
        drafts += [person_bio_en(world, p, r, k) for k in range(s.bios_per_person)]
        drafts += [person_story_en(world, p, r, k) for k in range(s.stories_per_person)]
        drafts += [person_thread_en(world, p, r, k) for k in range(s.threads_per_person)]
        drafts += [person_doc_zh(world, p, r, k) for k in range(s.zh_docs_per_person)]
    r = rng("professions")
    for job in PROFESSIONS:
        drafts += [d for k in range(s.bios_per_person) if (d := profession_list_en(world, job, r, k))]
    r = rng("stories")
    for k in range(s.generic_stories):
        # One generic story in eight is Chinese, like the rest of the corpus.
        drafts.append(generic_story_zh(world, r, k) if k % 8 == 7 else generic_story_en(world, r, k))
    r = rng("arithmetic")
    for k in range(s.arithmetic_docs):
        drafts.append(arithmetic_zh(r, k) if k % 5 == 4 else arithmetic_en(r, k))
    return drafts


@lru_cache(maxsize=2)
def _documents(world: World) -> tuple[Document, ...]:
    drafts = _drafts(world)
    counters: dict[tuple[str, str], int] = {}
    docs = []
    for d in drafts:
        n = counters.get((d.lang, d.kind), 0)
        counters[(d.lang, d.kind)] = n + 1
        docs.append(Document(f"{d.lang}-{d.kind}-{n:05d}", d.kind, d.lang, "\n".join(d.lines),
                             d.title, d.subjects))
    # Shuffled, so that a training stream read in order mixes kinds and topics.
    component_rng(world.seed, "documents", "order").shuffle(docs)
    return tuple(docs)


def documents(world: World) -> list[Document]:
    """Every clean document of the world, in a fixed (seeded) shuffled order."""
    return list(_documents(world))


def corpus_text(world: World, sep: str = "\n\n") -> str:
    """All document texts joined by ``sep``: a quick way to get "the training text"."""
    return sep.join(d.text for d in _documents(world))
