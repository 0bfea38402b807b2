"""The clean documents of the world: what a perfect cleaning pipeline would recover.

Four kinds, in English and (about an eighth of them) Chinese:

- ``encyclopedia``: pages about a country or a person (wiki, fact sheet, travel guide,
  school report, quiz, "did you know" list, timeline, "famous painters" lists);
- ``story``: short stories in the simple grammar of TinyStories, some starring our people;
- ``forum``: question-and-answer threads ("Q: Where was Ada Novak born?" / "A: ...");
- ``arithmetic``: worksheets and word problems with worked answers.

Each fact is retold in many documents and phrasings, always including its canonical
sentence from :mod:`.phrases`: a tiny model memorises facts by seeing them again and again
within an epoch or two. A document's ``text`` has one paragraph per line (no blank lines).

No two documents are duplicates. The crawl's labels say which pages copy which, and chapter 01
scores its deduplication against them, so the documents themselves must be distinct: no two
have the same text after normalisation (lower case, punctuation dropped, as chapter 01's exact
dedup compares them), and no two share half of their 5-shingles (word 5-grams; character
5-grams for Chinese), well under the crawl's near-duplicate definition of 0.7. The templates
vary every sentence (several phrasings, many names and places, people's own details, random
order, a story's own word choices), and :func:`documents` checks the rest with an exact
similarity join: a draft too close to a kept document is written again with a fresh random
stream (about one draft in two hundred in the cpu profile), and left out if it keeps clashing.
"""
from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable, Optional, Sequence

import numpy as np

from . import phrases as P
from .facts import (COUNTRIES, CONTINENT_ZH, LANGUAGE_ZH, PROFESSIONS, RIVER_ZH, Country, Person, World,
                    component_rng)

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
# first names that are not in the people's name pool. (KIDS, ITEMS and the first pools are
# also used by the chat data sets; the corpus draws from the larger STORY_ pools.)
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

STORY_KIDS = KIDS + (
    ("Oliver", "m"), ("Grace", "f"), ("Harry", "m"), ("Chloe", "f"), ("Jamie", "m"), ("Holly", "f"),
    ("Charlie", "m"), ("Poppy", "f"), ("Alfie", "m"), ("Molly", "f"), ("Noah", "m"), ("Ella", "f"),
    ("Ethan", "m"), ("Amy", "f"), ("Dylan", "m"), ("Katie", "f"), ("Ryan", "m"), ("Sophie", "f"),
    ("Adam", "m"), ("Jessie", "f"), ("Billy", "m"), ("Rosie", "f"), ("Danny", "m"), ("Hannah", "f"),
    ("Eddie", "m"), ("Megan", "f"), ("Toby", "m"), ("Millie", "f"), ("Joe", "m"), ("Bella", "f"),
    ("George", "m"), ("Alice", "f"))
STORY_ANIMALS = ANIMALS + ("hedgehog", "squirrel", "turtle", "puppy", "kitten", "lamb", "pony", "hen")
STORY_PET_NAMES = PET_NAMES + ("Toffee", "Pumpkin", "Whiskers", "Bubbles", "Ziggy", "Maple", "Rocket",
                               "Peanut", "Clover", "Noodle", "Mittens", "Pebble")
STORY_TOYS = TOYS + ("rubber duck", "toy robot", "spinning top", "sock puppet", "jigsaw puzzle",
                     "tin drum", "doll with a blue dress", "toy dinosaur")
STORY_HELPERS = HELPERS + ("aunt", "uncle", "neighbour", "granny", "older cousin")
STORY_FOODS = FOODS + ("pear", "slice of bread", "bowl of cherries", "cheese roll", "plum",
                       "piece of carrot cake", "bag of nuts")
STORY_FEELINGS = FEELINGS_GOOD + ("delighted", "cheerful", "thankful")
STORY_PLACES = PLACES_NEAR + ("the playground", "the river bank", "the market", "the library",
                              "the school yard", "the farm", "the old bridge", "the meadow")
WEATHER = ("sunny", "windy", "cloudy", "warm", "cold", "quiet", "snowy", "bright", "foggy", "rainy")
OPENERS = ("One morning", "One afternoon", "Last summer", "On Saturday", "One windy day",
           "Early one morning", "After school one day", "On a cold winter day", "One spring day",
           "On a sleepy Sunday")
COLOURS = ("blue", "green", "red", "yellow", "orange", "purple", "pink", "grey", "white")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
RELATIVES = ("aunt", "uncle", "cousin", "grandma", "grandpa", "sister", "brother", "neighbour",
             "best friend", "teacher", "mom", "dad")
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
HOBBIES = (("gardening", "种花"), ("chess", "下棋"), ("long walks", "散步"), ("cycling", "骑自行车"),
           ("baking bread", "烤面包"), ("swimming", "游泳"), ("watching birds", "看鸟"),
           ("collecting old maps", "收集旧地图"), ("playing the guitar", "弹吉他"), ("fishing", "钓鱼"),
           ("climbing hills", "爬山"), ("reading detective stories", "读侦探小说"))
PETS_ZH = {"cat": "猫", "dog": "狗", "bird": "鸟", "rabbit": "兔子", "duck": "鸭子", "frog": "青蛙",
           "bear": "熊", "fox": "狐狸", "mouse": "老鼠", "horse": "马", "owl": "猫头鹰", "goat": "山羊",
           "hedgehog": "刺猬", "squirrel": "松鼠", "turtle": "乌龟", "puppy": "小狗", "kitten": "小猫",
           "lamb": "小羊", "pony": "小马", "hen": "母鸡"}
AWARDS = (("the City Prize", "城市奖"), ("the National Arts Medal", "国家艺术奖章"),
          ("the Young Talent Award", "青年才俊奖"), ("the Silver Star Award", "银星奖"),
          ("the Golden Pen Award", "金笔奖"), ("the People's Choice Award", "观众选择奖"),
          ("the Blue Ribbon Prize", "蓝绶带奖"), ("the Open Door Award", "开门奖"))
PERSON_PETS = ("cat", "dog", "bird", "rabbit", "turtle", "horse", "goat", "hen")
USER_HEADS = ("blue", "happy", "quiet", "little", "sunny", "lazy", "clever", "lucky", "silver", "brave",
              "sleepy", "curious", "old", "red", "green")
USER_TAILS = ("fox", "owl", "panda", "traveller", "reader", "cook", "kite", "river", "maps", "turtle",
              "moon", "teacher", "explorer", "tiger", "penguin")
STORY_KIDS_ZH = KIDS_ZH + ("小军", "小兰", "小东", "小雪", "小林", "小雨", "小杰", "小玲", "小龙", "小燕",
                           "小宇", "小月", "小亮", "小静", "小波", "小云")
PETS_ZH_NAMES = ("咪咪", "豆豆", "花花", "球球", "乐乐", "毛毛", "点点", "贝贝", "多多", "欢欢", "团团", "皮皮")
ANIMALS_ZH = ("小猫", "小狗", "小兔子", "小鸭子", "小鸟", "小乌龟", "小仓鼠", "小金鱼")
PLACES_ZH = ("公园", "花园", "河边", "山上", "奶奶家", "操场", "图书馆", "海边", "小树林", "菜市场")
TOYS_ZH = ("红皮球", "风筝", "小汽车", "玩具船", "布娃娃", "积木", "小火车", "纸飞机", "小水桶", "拼图")
FOODS_ZH = ("苹果", "饼干", "三明治", "橘子", "蛋糕", "香蕉", "包子", "饺子", "梨", "面包")
HELPERS_ZH = ("妈妈", "爸爸", "奶奶", "爷爷", "姐姐", "哥哥", "老师", "阿姨", "叔叔")
WEATHER_ZH = ("阳光明媚", "风很大", "下着小雨", "天气很冷", "天气暖洋洋的", "下着大雪", "天上飘着白云")
OPENERS_ZH = ("有一天，", "星期天，", "一个晴朗的早上，", "放学以后，", "去年夏天，", "一个下雨的下午，",
              "周末的时候，", "冬天到了，", "春天来了，")


def pronouns(gender: str) -> dict[str, str]:
    return ({"he": "she", "his": "her", "him": "her", "He": "She", "His": "Her", "kid": "girl"}
            if gender == "f" else
            {"he": "he", "his": "his", "him": "him", "He": "He", "His": "His", "kid": "boy"})


def _user(rng: random.Random) -> str:
    """A forum user name such as "quietfox42"."""
    return f"{rng.choice(USER_HEADS)}{rng.choice(USER_TAILS)}{rng.randint(1, 99)}"


def _sprinkle(rng: random.Random, lines: list[str], extras: Sequence[str], k: int, sep: str = " ") -> list[str]:
    """``lines`` with ``k`` of ``extras`` appended to random lines (a little variety per document)."""
    lines = list(lines)
    for extra in rng.sample(list(extras), min(k, len(extras))):
        i = rng.randrange(len(lines))
        lines[i] = f"{lines[i]}{sep}{extra}"
    return lines


# ----------------------------------------------------------------------------- details of a person
# A few extra facts per person (a hobby, a pet, a prize, when the career started), drawn from
# the person's own stream, so every document that mentions one agrees with the others.

@dataclass(frozen=True)
class _Details:
    hobby: str
    hobby_zh: str
    pet: str
    pet_name: str
    colour: str
    award: str
    award_zh: str
    start_year: int
    work_years: tuple[int, ...]
    studied_in: str


def _details(world: World, p: Person) -> _Details:
    return _details_of(world.seed, p)


@lru_cache(maxsize=8192)
def _details_of(seed: int, p: Person) -> _Details:
    rng = component_rng(seed, "person-details", p.name)
    hobby, hobby_zh = rng.choice(HOBBIES)
    award, award_zh = rng.choice(AWARDS)
    start = p.birth_year + rng.randint(18, max(18, min(28, 2022 - p.birth_year)))
    years, year = [], start
    for _ in p.works:
        year = max(year + 1, min(year + rng.randint(2, 9), 2024))
        years.append(year)
    home = next(c for c in COUNTRIES if c.name == p.birth_country)
    cities = [name for name, _ in home.all_cities if name != p.birth_city] or [home.capital]
    return _Details(hobby, hobby_zh, rng.choice(PERSON_PETS), rng.choice(STORY_PET_NAMES),
                    rng.choice(COLOURS), award, award_zh, start, tuple(years), rng.choice(cities))


# ----------------------------------------------------------------------------- countries (English)

def _notable(world: World, c: Country, rng: random.Random, k: int) -> list[Person]:
    people = world.people_born_in(c)
    return rng.sample(people, min(len(people), k)) if people else []


def _about_capital(c: Country) -> list[str]:
    cap = c.capital
    return [P.alt_capital(c, 0), P.alt_capital(c, 1), P.alt_capital(c, 2),
            f"Many visitors start their trip in {cap}.",
            f"{cap} is a busy city with old streets, markets and parks.",
            f"Every year, many students come to {cap} to study.",
            f"On a map of {c.ref}, {cap} is usually marked with a star.",
            f"People from all over {c.ref} move to {cap} for work.",
            f"{cap} has museums, theatres and many small cafes.",
            f"Most trains and buses in {c.ref} pass through {cap}."]


def _about_language(c: Country) -> list[str]:
    lang = c.languages[0]
    out = [P.alt_language(c, 0), P.alt_language(c, 1), P.alt_language(c, 2),
           f"Children in {c.ref} learn to read and write in {lang}.",
           f"Most street signs in {c.capital} are written in {lang}.",
           f"Many songs and books from {c.ref} are in {lang}.",
           f"A visitor who knows a few words of {lang} makes friends quickly in {c.ref}."]
    if len(c.languages) > 1:
        out += [f"{c.Ref} has more than one language: {P.join_list(c.languages)}.",
                f"Besides {lang}, people in {c.ref} also speak {P.join_list(c.languages[1:])}."]
    return out


def _about_river(c: Country) -> list[str]:
    r = c.rivers[0]
    out = [P.alt_river(c, 0), P.alt_river(c, 1),
           f"Boats carry people and goods along the {r}.",
           f"On warm days, families walk along the banks of the {r}.",
           f"Painters and photographers love the {r}.",
           f"Many birds live near the {r}.",
           f"The {r} is wide in some places and narrow in others."]
    if len(c.rivers) > 1:
        out.append(P.other_rivers(c))
    return out


def _about_continent(c: Country) -> list[str]:
    return [f"{c.Ref} shares {c.continent} with many other countries.",
            f"To find {c.ref}, look at a map of {c.continent}.",
            f"Like its neighbours, {c.ref} is part of {c.continent}.",
            f"In geography lessons, {c.ref} is taught together with the rest of {c.continent}."]


def _about_cities(c: Country) -> list[str]:
    out = [P.cities(c)] if c.cities else []
    for city, _ in c.cities:
        out += [f"{city} is another city that many people visit.",
                f"You can travel from {c.capital} to {city} by bus or by train."]
    return out


def _about_person(world: World, p: Person) -> list[str]:
    """Sentences about a notable person, for a country page (always with the birth city)."""
    w0 = p.works[0]
    return [f"{P.born(p)} {P.profession(p)}",
            f"{P.born(p)} {P.work(p, w0)}",
            f"{P.born(p)} {P.alt_work(p, w0, 0)}",
            f"{P.alt_profession(p, world, 0)} {P.born(p)}"]


def _tips(c: Country, rng: random.Random) -> list[str]:
    cities = [c.capital] + [name for name, _ in c.cities]
    city, r, lang = rng.choice(cities), c.rivers[0], c.languages[0]
    return [f"Bring comfortable shoes: you will walk a lot in {city}.",
            f"The best time for a walk in {city} is early in the morning.",
            f"Try the local bread and soup in {city}.",
            f"Buy a small map of {city} at the station.",
            f"Ask at your hotel about a boat trip on the {r}.",
            f"In {rng.choice(MONTHS)}, {city} can be very busy.",
            f"Keep some coins for the buses in {city}.",
            f"Take a photo of the {r} at sunset.",
            f"Learn how to say \"thank you\" in {lang} before you go.",
            f"Visit the market in {city} on a {rng.choice(DAYS)} morning.",
            f"Pack a {rng.choice(COLOURS)} umbrella, just in case.",
            f"A trip of {rng.choice(NUMBER_WORDS)} days is enough to see {city}."]


def country_page_en(world: World, c: Country, rng: random.Random, k: int) -> _Draft:
    notable = _notable(world, c, rng, rng.randint(1, 3))
    people_lines = [rng.choice(_about_person(world, p)) for p in notable]
    style = k % 6
    if style == 0:  # wiki
        title = rng.choice((c.name, f"{c.name} (country)", f"About {c.name}"))
        lead = [P.continent(c), P.capital(c)] + rng.sample(_about_capital(c), rng.randint(0, 1))
        geo = [P.river(c)] + rng.sample(_about_river(c), 1) + rng.sample(_about_cities(c) or [P.capital(c)], 1)
        speech = [P.language(c)] + rng.sample(_about_language(c), 1)
        rng.shuffle(geo)
        rng.shuffle(speech)
        parts = [" ".join(lead), " ".join(geo), " ".join(speech)]
        tail = rng.sample(parts[1:], 2)
        lines = [parts[0]] + tail
        if notable:
            lines.append(rng.choice((f"Notable people from {c.ref} include {P.join_list(p.name for p in notable)}.",
                                     f"Famous people born in {c.ref}:",
                                     f"Some well-known people come from {c.ref}."))
                         + " " + " ".join(people_lines))
        else:
            lines.append(rng.choice(_about_continent(c)))
    elif style == 1:  # fact box with a few notes
        title = rng.choice((f"{c.name}: facts at a glance", f"{c.name} in numbers and words",
                            f"Fact file: {c.name}"))
        rows = [rng.choice(("Capital", "Capital city")) + f": {c.capital}",
                rng.choice(("Continent", "Part of the world")) + f": {c.continent}",
                rng.choice(("Main language", "Language most people speak")) + f": {c.languages[0]}",
                rng.choice(("Rivers", "Big rivers")) + f": {', '.join(c.rivers)}"]
        if len(c.languages) > 1:
            rows.append(rng.choice(("Languages spoken", "Languages")) + f": {', '.join(c.languages)}")
        if c.cities:
            rows.append(rng.choice(("Other cities", "More cities")) + ": "
                        + ", ".join(name for name, _ in rng.sample(c.cities, len(c.cities))))
        rows = rng.sample(rows, rng.randint(4, len(rows)))
        lines = [rng.choice(("Country", "Name")) + f": {c.name}"] + rows
        lines.append(rng.choice(("In one sentence", "Remember", "The key fact")) + f": {P.capital(c)}")
        notes = rng.sample(_about_language(c) + _about_river(c) + _about_capital(c), 1)
        lines.append(rng.choice(("Good to know:", "Notes:", "Did you know?")) + " "
                     + " ".join([rng.choice((P.language(c), P.river(c), P.continent(c)))] + notes))
        lines += [f"Born here: {p.name}, {p.profession}. {P.born(p)}" for p in notable]
    elif style == 2:  # travel guide
        title = rng.choice((f"Travel guide: {c.name}", f"Visiting {c.name}", f"{c.name} for first-time visitors"))
        lines = [rng.choice((f"Planning a trip to {c.ref}? Here is what you should know.",
                             f"{c.Ref} is a wonderful place for a holiday.",
                             f"This short guide helps you plan a trip to {c.ref}.")),
                 f"{P.capital(c)} {rng.choice(_about_capital(c))}"]
        cities = [c.capital] + [name for name, _ in c.cities]
        days = rng.sample(cities, min(len(cities), 2))
        acts = ("visit the old market", "walk along the {r}", "see a museum", "eat in a small cafe",
                "climb a hill for the view", "watch the boats on the {r}", "buy postcards",
                "listen to music in a park", "try the local bread")
        plan = [f"Day {i}: {city}. {_cap(rng.choice(acts).format(r=c.rivers[0]))}."
                for i, city in enumerate(days, 1)]
        lines.append(" ".join(plan))
        lines.append(f"{P.river(c)} {rng.choice(_about_river(c))}")
        lines.append(f"{P.language(c)} {rng.choice(_about_language(c))}")
        lines.append(rng.choice(("Tips:", "Our tips:", "Before you go:")) + " " + rng.choice(_tips(c, rng)))
        lines += [rng.choice((f"Fans of the {p.job.work_kind} \"{p.works[0].title}\" may know that {P.born(p)}",
                              f"Famous locals: {P.born(p)}", f"Did you know? {P.born(p)}")) for p in notable]
    elif style == 3:  # school report
        kid, g = rng.choice(STORY_KIDS)
        title = rng.choice((f"My report about {c.name}", f"{kid}'s report: {c.name}", f"All about {c.name}"))
        lines = [rng.choice((f"My report is about {c.ref}.", f"My name is {kid}, and this report is about {c.ref}.",
                             f"For my class project, I chose {c.ref}.")) + f" {P.continent(c)}",
                 f"{P.capital(c)} {rng.choice(_about_capital(c))}",
                 f"{P.language(c)} {rng.choice(_about_language(c))}",
                 f"{P.river(c)} {rng.choice(_about_river(c))}"]
        lines[1:] = rng.sample(lines[1:], 3)
        lines += [rng.choice((f"A famous person from {c.ref} is {p.name}. {P.born(p)}",
                              f"{P.born(p)} {P.profession(p)}")) for p in notable]
        cities = [c.capital] + [name for name, _ in c.cities]
        lines.append(rng.choice((f"I would like to visit {rng.choice(cities)} one day.",
                                 f"One day I want to see the {c.rivers[0]} with my {rng.choice(RELATIVES)}.",
                                 f"My favourite fact is that people there speak {c.languages[0]}.")))
        if rng.random() < 0.5:
            lines.append(rng.choice((f"By {kid}, class {rng.randint(2, 6)}{rng.choice('ABC')}.",
                                     f"Written by {kid}, age {rng.randint(8, 12)}.",
                                     f"Thank you for reading my report. ({kid})")))
    elif style == 4:  # quiz
        title = rng.choice((f"Quiz: how well do you know {c.name}?", f"{c.name} quiz", f"Test yourself: {c.name}"))
        others = [x for x in world.countries if x is not c] or [c]
        wrong = rng.sample([x.capital for x in others], min(2, len(others)))
        options = rng.sample([c.capital] + wrong, len(wrong) + 1)
        qa = [(rng.choice((f"What is the capital of {c.ref}?", f"Which city is the capital of {c.ref}?",
                           f"Which of these is the capital of {c.ref}: {', '.join(options[:-1])} "
                           f"or {options[-1]}?")), P.capital(c)),
              (rng.choice((f"What is the main language of {c.ref}?",
                           f"What language do most people in {c.ref} speak?")),
               P.language(c)),
              (rng.choice((f"Name a famous river in {c.ref}.", f"Which river flows through {c.ref}?")), P.river(c)),
              (rng.choice((f"On which continent is {c.ref}?", f"Where in the world is {c.ref}?")), P.continent(c))]
        if c.cities:
            qa.append((f"Name a city in {c.ref} that is not the capital.", P.cities(c)))
        qa += [(f"Where was {p.name} born?", P.born(p)) for p in notable]
        qa = rng.sample(qa, rng.randint(min(4, len(qa)), len(qa)))
        if not any(a == P.capital(c) for _, a in qa):
            qa[0] = (f"What is the capital of {c.ref}?", P.capital(c))
        answer = rng.choice(("Answer", "Correct answer", "Solution"))
        lines = [rng.choice(("Answer the questions, then check below.", "How many can you get right?",
                             f"A quiz for young travellers. Good luck, {rng.choice(STORY_KIDS)[0]}!"))]
        for i, (q, a) in enumerate(qa, 1):
            lines += [f"Question {i}: {q}", f"{answer}: {a}"]
    else:  # "did you know?" list
        title = rng.choice((f"Did you know? {c.name}", f"Facts about {c.name}", f"Things to know about {c.name}"))
        facts = [P.capital(c), P.language(c), P.river(c), P.continent(c)]
        facts += rng.sample(_about_capital(c) + _about_language(c) + _about_river(c) + _about_cities(c), 2)
        facts += people_lines
        rng.shuffle(facts)
        lines = [rng.choice((f"Here are some facts about {c.ref}.", f"How much do you know about {c.ref}?",
                             f"{len(facts)} facts about {c.ref} for curious readers."))]
        lines += [f"{i}. {fact}" for i, fact in enumerate(facts, 1)]
    return _Draft("encyclopedia", "en", title, lines, (c.name,) + tuple(p.name for p in notable))


COUNTRY_ASKS = ("Hi all! My {rel} is going to {ref} in {month}.", "We have a quiz at school on {day}.",
                "I am reading a book set in {ref}.", "My {rel} and I made a bet about this.",
                "Sorry if this is a silly question.", "I need this for my homework.",
                "I saw a film about {ref} last night.", "Planning a trip with {num} friends.",
                "My {rel} asked me and I did not know.", "Settle an argument, please.")
ANSWER_EXTRAS = ("Hope this helps!", "I was there in {year}.", "My {rel} lives in {city}.",
                 "Easy one.", "Good question.", "You can check it in any atlas.", "I learned that at school.",
                 "Have a great trip!", "I am sure about this one.", "I looked it up to be sure.")
THANKS = ("Thanks, everyone!", "Thank you, that helps a lot.", "Great, thanks.", "Thanks for the quick answers.",
          "Perfect, thank you all.", "Now I know. Thanks!")


def _thread(rng: random.Random, picked: list[tuple[str, str, str]], city: str, ask: str) -> list[str]:
    """Forum lines for (question, answer, other answer) triples, with a little chatter."""
    lines = []
    for n, (q, a, a2) in enumerate(picked):
        if n == 0 and rng.random() < 0.5:
            q = f"{ask} {q}"
        elif n > 0 and rng.random() < 0.4:
            q = rng.choice(("And another one:", "Also,", "One more thing:")) + " " + q[:1].lower() + q[1:]
        lines.append(f"Q: {q}")
        extra = rng.choice(ANSWER_EXTRAS).format(year=rng.randint(1995, 2024), rel=rng.choice(RELATIVES), city=city)
        r = rng.random()
        lines.append(f"A: {a} {extra}" if r < 0.4 else f"A: {a} ({_user(rng)})" if r < 0.7 else f"A: {a}")
        if rng.random() < 0.25:
            lines.append(f"A: {a2}")
    if rng.random() < 0.3:
        lines.append(f"Q: {rng.choice(THANKS)}")
    return lines


def country_thread_en(world: World, c: Country, rng: random.Random, k: int) -> _Draft:
    people = world.people_born_in(c)
    others = [x.continent for x in world.countries if x.continent != c.continent] or ["Europe"]
    options = [
        (rng.choice((f"What is the capital of {c.ref}?", f"Which city is the capital of {c.ref}?",
                     f"Can someone tell me the capital of {c.ref}?", f"What's the capital city of {c.ref}?")),
         P.capital(c), P.alt_capital(c, k)),
        (rng.choice((f"What language do people speak in {c.ref}?", f"Which language is spoken most in {c.ref}?",
                     f"If I travel to {c.ref}, which language should I learn?")),
         P.language(c), P.alt_language(c, k)),
        (rng.choice((f"Is there a famous river in {c.ref}?", f"Which river should I see in {c.ref}?",
                     f"What is the best-known river of {c.ref}?")),
         P.river(c), P.alt_river(c, k)),
        rng.choice(((f"Where is {c.ref}?", P.continent(c), f"{c.Ref} is in {c.continent}. {P.capital(c)}"),
                    (f"On which continent is {c.ref}?", P.continent(c), f"It is in {c.continent}."),
                    (f"Is {c.ref} in {rng.choice(others)}?", f"No. {P.continent(c)}",
                     f"No, it is in {c.continent}. {P.capital(c)}"))),
        (rng.choice((f"Which cities should I visit in {c.ref}?",
                     f"Besides {c.capital}, what cities are there in {c.ref}?")),
         f"{P.capital(c)} {P.cities(c)}".strip(), f"Start in {c.capital}. {rng.choice(_tips(c, rng))}"),
    ]
    subjects = [c.name]
    if people:
        p = rng.choice(people)
        subjects.append(p.name)
        options.append((rng.choice((f"Was anyone famous born in {c.ref}?", f"Any well-known people from {c.ref}?")),
                         f"Yes. {P.born(p)} {P.profession(p)}", P.alt_born(p, world, k)))
    picked = rng.sample(options, rng.choice((1, 2, 2, 3)))
    # The capital question leads most threads: the most-asked fact on any forum.
    if k % 2 == 0 and options[0] not in picked:
        picked[0] = options[0]
    ask = rng.choice(COUNTRY_ASKS).format(rel=rng.choice(RELATIVES), ref=c.ref, month=rng.choice(MONTHS),
                                          day=rng.choice(DAYS), num=rng.choice(NUMBER_WORDS))
    lines = _thread(rng, picked, rng.choice([c.capital] + [n for n, _ in c.cities]), ask)
    return _Draft("forum", "en", picked[0][0], lines, tuple(subjects))


# ----------------------------------------------------------------------------- people (English)

def person_bio_en(world: World, p: Person, rng: random.Random, k: int) -> _Draft:
    c = world.birth_country(p)
    pr = pronouns(p.gender)
    d = _details(world, p)
    w0 = p.works[0]
    style = k % 3
    if style == 0:  # wiki
        title = p.name
        lines = [f"{P.alt_profession(p, world, 0)} {P.born_year(p)}",
                 rng.choice((f"{pr['He']} grew up in {p.birth_city}. {P.born(p)}",
                             f"{P.born(p)} {pr['He']} spent {pr['his']} childhood there.",
                             f"{P.born(p)} Later, {pr['he']} studied in {d.studied_in}.")),
                 f"{P.profession(p)} {P.works(p)}",
                 rng.choice((f"Today, {p.name} is best known for the {w0.kind} \"{w0.title}\".",
                             f"In {d.work_years[0]}, {pr['he']} won {d.award}.",
                             f"Outside work, {p.first_name} enjoys {d.hobby}."))]
    elif style == 1:  # magazine profile
        title = f"Meet {p.name}, the {p.profession} from {p.birth_city}"
        lines = [f"Meet {p.name}. {P.born(p)}",
                 f"As a child, {p.first_name} loved to {p.job.childhood}.",
                 f"{P.profession(p)} {P.alt_work(p, w0, k)}",
                 P.works(p),
                 f"When {pr['he']} is not working, {p.first_name} enjoys {d.hobby}. "
                 f"{pr['He']} lives with a {d.pet} called {d.pet_name}.",
                 f"{P.alt_born(p, world, k)} {pr['He']} still visits {c.ref} often."]
    else:  # timeline
        title = f"{p.name}: a short timeline"
        lines = [f"{p.birth_year}: {P.born(p)}",
                 f"{d.start_year}: {p.name} starts working as {P.article(p.profession)} {p.profession}."]
        lines += [f"{year}: {P.work(p, w)}" for year, w in zip(d.work_years, p.works)]
        lines.append(f"{d.work_years[-1] + rng.randint(1, 6)}: {p.name} wins {d.award}.")
        lines.append(f"In short: {P.born_year(p)} {P.profession(p)}")
    return _Draft("encyclopedia", "en", title, lines, (p.name, c.name))


def profession_list_en(world: World, job, rng: random.Random, k: int) -> _Draft | None:
    people = [p for p in world.people if p.profession == job.name]
    if not people:
        return None
    people = rng.sample(people, len(people))
    style = k % 3
    title = (f"Famous people who work as a {job.name}", f"Who is who: {job.name}s",
             f"Great {job.name}s and where they come from")[style]
    lines = [rng.choice((f"Here are some people you may know. Each of them works as {P.article(job.name)} {job.name}.",
                         f"This list collects well-known people in one job: {job.name}.",
                         f"Who are the best-known people who work as {P.article(job.name)} {job.name}?"))]
    for p in people:
        if style == 0:
            lines.append(f"{P.profession(p)} {P.born(p)} {P.work(p, p.works[0])}")
        elif style == 1:
            lines.append(f"{p.name}: {P.work(p, p.works[0])} {P.born(p)} {P.profession(p)}")
        else:
            lines.append(f"{P.born_year(p)} {P.profession(p)} {pronouns(p.gender)['He']} won "
                         f"{_details(world, p).award}.")
    return _Draft("encyclopedia", "en", title, lines, tuple(p.name for p in people))


def person_story_en(world: World, p: Person, rng: random.Random, k: int) -> _Draft:
    c = world.birth_country(p)
    pr = pronouns(p.gender)
    He, he, his, His = pr["He"], pr["he"], pr["his"], pr["His"]
    d = _details(world, p)
    w0 = p.works[0]
    first = p.first_name
    style = k % 5
    if style == 0:  # growing up
        problem = rng.choice(PROBLEMS).format(**pr)
        helper = rng.choice(STORY_HELPERS)
        title = rng.choice((f"The story of {p.name}", f"How {first} never gave up", f"Little {first}"))
        lines = [rng.choice((f"Once upon a time, there was a little {pr['kid']} named {first}. "
                             f"{He} lived in {p.birth_city}, a city in {c.ref}.",
                             f"Long ago, in {p.birth_city}, a little {pr['kid']} called {first} lived with "
                             f"{his} family and a {d.pet} named {d.pet_name}.",
                             f"{first} was born in a small house in {p.birth_city}. The house had a "
                             f"{d.colour} door.")),
                 rng.choice((f"{first} loved to {p.job.childhood}. Every day, {he} tried a little harder.",
                             f"More than anything, {first} wanted to {p.job.childhood}.",
                             f"Every afternoon, {first} sat by the window and tried to {p.job.childhood}.")),
                 rng.choice((f"One day, {problem}. {first} felt sad. But {his} {helper} said, "
                             f"\"Do not give up. Try again tomorrow.\"",
                             f"But one day, {problem}, and {first} wanted to stop. \"Everyone has bad days,\" "
                             f"said {his} {helper}.",
                             f"Then {problem}. {first} cried a little. {His} {helper} gave {pr['him']} a "
                             f"{rng.choice(STORY_FOODS)} and a hug.")),
                 rng.choice((f"So {first} tried again, and this time it worked. {He} was very "
                             f"{rng.choice(STORY_FEELINGS)}.",
                             f"The next morning, {first} started again, slowly and carefully.",
                             f"{first} did not give up, and soon {he} was better than ever.")),
                 f"{first} grew up and never stopped. {P.born(p)} Today, {P.profession(p)}",
                 rng.choice((f"{P.works(p)} People all over the world know {his} work.",
                             f"{P.works(p)} And {first} still loves {d.hobby}.",
                             f"{P.works(p)} {He} also won {d.award}."))]
    elif style == 1:  # a child meets the person
        kid, g = rng.choice(STORY_KIDS)
        kp = pronouns(g)
        title = rng.choice((f"{kid} meets {p.name}", f"A visit to {p.birth_city}", f"{kid} and the {p.profession}"))
        lines = [rng.choice((f"{kid} was a {rng.choice(('happy', 'curious', 'kind', 'shy', 'busy'))} {kp['kid']}. "
                             f"One day, {kid} went to {p.birth_city} to see a famous {p.profession}.",
                             f"{rng.choice(OPENERS)}, {kid} and {kp['his']} {rng.choice(STORY_HELPERS)} took a train "
                             f"to {p.birth_city}. They wanted to meet {p.name}.")),
                 rng.choice((f"\"Hello,\" said {kid}. \"Are you {p.name}?\" \"Yes, I am,\" said {p.name} with a smile.",
                             f"{p.name} opened the door. A {d.pet} called {d.pet_name} ran out to say hello.",
                             f"{kid} waited at the door. When {p.name} came out, {kid} felt "
                             f"{rng.choice(('shy', 'nervous', 'excited'))}.")),
                 f"{P.born(p)} {He} told {kid} about the {w0.kind} \"{w0.title}\".",
                 rng.choice((f"{P.work(p, w0)} {kid} thought it was wonderful.",
                             f"{P.work(p, w0)} {kid} asked many questions about it.",
                             f"{P.work(p, w0)} \"It took a long time,\" said {p.name}.")),
                 rng.choice((f"{kid} said, \"When I grow up, I want to be {P.article(p.profession)} "
                             f"{p.profession} too!\" "
                             f"{p.name} laughed and said, \"Then start today.\"",
                             f"Before {kid} left, {p.name} said, \"{P.profession(p)} You can be anything you like.\"",
                             f"On the way home, {kid} told everyone: \"{P.profession(p)}\""))]
    elif style == 2:  # the work
        title = rng.choice((f"The {w0.kind} called \"{w0.title}\"", f"How \"{w0.title}\" was made"))
        lines = [rng.choice((f"Have you heard of the {w0.kind} \"{w0.title}\"? {P.work(p, w0)}",
                             f"Some {w0.kind}s are loved for many years. {P.work(p, w0)}")),
                 f"{P.born(p)} When {he} was small, {he} liked to {p.job.childhood}.",
                 rng.choice((f"{P.alt_profession(p, world, k)} {P.profession(p)}",
                             f"{P.profession(p)} {He} started in {d.start_year}.")),
                 rng.choice((f"{_cap(he)} finished the {w0.kind} in {d.work_years[0]}, in a room with a "
                             f"{d.colour} lamp.",
                             f"The {w0.kind} was finished in {d.work_years[0]}. Soon, everybody talked about it.")),
                 rng.choice((f"Every year, many people read about {p.name} and {his} work. The end.",
                             f"And that is how \"{w0.title}\" came to be. The end."))]
    elif style == 3:  # a day in the life
        title = rng.choice((f"A day with {p.name}", f"{first}'s busy day"))
        lines = [rng.choice((f"{first} wakes up early. The {d.pet} {d.pet_name} is already waiting for breakfast.",
                             f"Every morning, {first} makes tea and feeds {d.pet_name} the {d.pet}.")),
                 f"{P.profession(p)} {rng.choice((f'{He} works in a quiet room.', f'{He} works until lunch.'))}",
                 rng.choice((f"{P.born(p)} {He} often thinks about {his} childhood there.",
                             f"{P.born(p)} Some days, {he} walks through the old streets of {p.birth_city}.")),
                 rng.choice((f"In the afternoon, {first} likes {d.hobby}.",
                             f"After work, there is time for {d.hobby}.")),
                 rng.choice((f"{P.works(p)} But today, {he} is starting something new.",
                             f"People often ask about {his} {w0.kind}. {P.works(p)}")),
                 f"At night, {first} and {d.pet_name} go to sleep. Tomorrow is another busy day."]
    else:  # the prize
        title = rng.choice((f"{first} wins a prize", f"The night of {d.award}"))
        town = rng.choice([c.capital, p.birth_city])
        lines = [rng.choice((f"In {d.work_years[-1] + 1}, there was a big party in {town}.",
                             f"The hall in {town} was full of people in their best clothes.")),
                 f"Everybody was waiting to hear who would win {d.award}.",
                 rng.choice((f"\"And the winner is {p.name}!\" said a voice. {P.profession(p)}",
                             f"At last, the name was read out: {p.name}. {P.profession(p)}")),
                 f"{P.born(p)} " + rng.choice((f"{His} family had come all the way from {p.birth_city}.",
                                               f"{He} thought of the {d.colour} door of {his} first home.")),
                 f"{P.works(p)} {rng.choice(('Everybody clapped.', 'People stood up and cheered.'))}"]
    return _Draft("story", "en", title, lines, (p.name, c.name))


PERSON_ASKS = ("I just found out about {name}.", "My {rel} is a big fan of {name}.",
               "We talked about {name} in class today.", "Quick question about {name}.",
               "I saw {name} on TV yesterday.", "Does anyone here know about {name}?",
               "Writing a school project on {name}.")


def person_thread_en(world: World, p: Person, rng: random.Random, k: int) -> _Draft:
    w0 = p.works[0]
    d = _details(world, p)
    options = [
        (rng.choice((f"Where was {p.name} born?", f"In which city was {p.name} born?",
                     f"Where does {p.name} come from?")), P.born(p), P.alt_born(p, world, k)),
        (rng.choice((f"What does {p.name} do?", f"What is {p.name}'s job?")),
         P.profession(p), P.alt_profession(p, world, k)),
        (rng.choice((f"What is {p.name} known for?", f"Name a work by {p.name}.")), P.works(p), P.alt_work(p, w0, k)),
        (rng.choice((f"When was {p.name} born?", f"How old is {p.name}?")), P.born_year(p), P.born(p)),
        (f"Who is {p.name}?", f"{P.alt_profession(p, world, 0)} {P.born(p)}", P.profession(p)),
        (f"Who {p.job.work_verb} the {w0.kind} \"{w0.title}\"?", P.work(p, w0), P.alt_work(p, w0, k + 1)),
        (rng.choice((f"Has {p.name} won any prizes?", f"Did {p.name} ever win an award?")),
         f"Yes, {d.award}. {P.profession(p)}", f"I think {p.first_name} won {d.award}."),
    ]
    picked = rng.sample(options, rng.choice((1, 2, 2, 3)))
    # "Where was X born?" (or "Who is X?", answered with it) leads most threads: the fact the
    # recall probes ask most; the job and the best-known work lead the others.
    lead = options[(0, 1, 0, 2, 0, 4)[k % 6]]
    if lead not in picked:
        picked[0] = lead
    ask = rng.choice(PERSON_ASKS).format(name=p.name, rel=rng.choice(RELATIVES))
    lines = _thread(rng, picked, p.birth_city, ask)
    return _Draft("forum", "en", picked[0][0], lines, (p.name, p.birth_country))


# ----------------------------------------------------------------------------- Chinese

def _about_country_zh(c: Country) -> list[str]:
    lang, river, cap = LANGUAGE_ZH[c.languages[0]], RIVER_ZH[c.rivers[0]], c.capital_zh
    out = [P.alt_capital_zh(c), P.alt_language_zh(c),
           f"很多游客的旅行都从{cap}开始。", f"{cap}有很多博物馆、公园和老街。",
           f"每年都有很多学生来{cap}学习。", f"在{c.name_zh}的地图上，{cap}常常用一颗星来标出。",
           f"{c.name_zh}的孩子们在学校里用{lang}读书写字。", f"如果你去{c.name_zh}旅行，学几句{lang}会很有用。",
           f"{c.name_zh}的很多歌曲和书都是用{lang}写的。", f"{river}两岸的风景很美。",
           f"夏天，很多家庭喜欢在{river}边散步。", f"船只在{river}上来来往往。",
           f"在{CONTINENT_ZH[c.continent]}的地图上，可以很快找到{c.name_zh}。"]
    if c.cities:
        out.append(P.cities_zh(c))
        out += [f"从{cap}坐火车可以去{zh}。" for _, zh in c.cities]
    return out


def country_doc_zh(world: World, c: Country, rng: random.Random, k: int) -> _Draft:
    notable = _notable(world, c, rng, rng.randint(1, 2))
    style = k % 3
    if style == 0:
        title = rng.choice((c.name_zh, f"{c.name_zh}简介", f"认识{c.name_zh}"))
        facts = [P.continent_zh(c), P.capital_zh(c), P.language_zh(c), P.river_zh(c)]
        extra = rng.sample(_about_country_zh(c), 3)
        lines = [facts[0] + facts[1] + extra[0],
                 "".join(rng.sample([facts[2], facts[3], extra[1]], 3)),
                 extra[2]]
        if notable:
            lines.append(rng.choice(("来自" + c.name_zh + "的名人有" + P.join_list([p.name for p in notable], "zh") + "。",
                                     f"{c.name_zh}也出了不少名人。"))
                         + "".join(P.born_zh(p, world) + rng.choice((P.profession_zh(p), P.works_zh(p)))
                                   for p in notable))
        return _Draft("encyclopedia", "zh", title, lines, (c.name,) + tuple(p.name for p in notable))
    if style == 1:
        title = rng.choice((f"关于{c.name_zh}的问题", f"{c.name_zh}的首都在哪里？", f"请问{c.name_zh}的情况"))
        kid, helper = rng.choice(STORY_KIDS_ZH), rng.choice(HELPERS_ZH)
        city = rng.choice(c.all_cities)[1]
        lang = LANGUAGE_ZH[c.languages[0]]
        tails = ("", f"我{rng.randint(2005, 2024)}年去过{city}。", f"{kid}，祝你考试顺利！", "希望对你有帮助。",
                 f"我的{rng.choice(HELPERS_ZH)}就住在{city}。")
        qa = [(rng.choice((f"{c.name_zh}的首都在哪里？", f"哪座城市是{c.name_zh}的首都？", f"请问{c.name_zh}的首都叫什么？")),
               P.capital_zh(c) + rng.choice((P.alt_capital_zh(c), f"{c.capital_zh}很漂亮。", "") + tails)),
              (rng.choice((f"{c.name_zh}的人说什么语言？", f"去{c.name_zh}要学什么语言？", f"在{c.name_zh}大家说什么话？")),
               P.language_zh(c) + rng.choice((P.alt_language_zh(c), f"会说几句{lang}很有用。", "") + tails)),
              (rng.choice((f"{c.name_zh}有什么著名的河流？", f"{c.name_zh}有哪些大河？")), P.river_zh(c)),
              (rng.choice((f"{c.name_zh}在哪个洲？", f"{c.name_zh}在地图上的哪个地方？")), P.continent_zh(c))]
        if c.cities:
            qa.append((f"除了{c.capital_zh}，{c.name_zh}还有哪些城市？", P.cities_zh(c)))
        qa = qa[:2] + rng.sample(qa[2:], 1)
        qa += [(f"{p.name}出生在哪里？", P.born_zh(p, world)) for p in notable]
        lines = [rng.choice((f"大家好，我是{kid}。我有几个关于{c.name_zh}的问题。",
                             f"{kid}的{helper}下个月要去{c.name_zh}旅行，想请教大家。",
                             f"明天有地理考试，{kid}请大家帮帮忙。",
                             f"我在看一本关于{c.name_zh}的书，有几个问题想问。",
                             f"{helper}问了{kid}几个问题，{kid}答不上来。"))]
        for q, a in qa:
            lines += [f"问：{q}", f"答：{a}"]
        lines.append(rng.choice(("谢谢大家！", f"明白了，谢谢！——{kid}", "太好了，谢谢你们的回答。",
                                 f"我去告诉{helper}。", "谢谢！")))
        return _Draft("forum", "zh", title, lines, (c.name,) + tuple(p.name for p in notable))
    kid = rng.choice(STORY_KIDS_ZH)
    helper = rng.choice(HELPERS_ZH)
    title = rng.choice((f"{kid}去{c.name_zh}旅行", f"{kid}的{c.name_zh}之旅", f"难忘的{c.name_zh}"))
    lines = [rng.choice((f"暑假到了，{kid}和{helper}一起去{c.name_zh}旅行。",
                         f"{rng.choice(OPENERS_ZH)}{kid}跟着{helper}坐飞机来到了{c.name_zh}。")),
             rng.choice((f"{helper}说：“{P.capital_zh(c)}”他们先去了{c.capital_zh}。",
                         f"飞机降落在{c.capital_zh}。{helper}告诉{kid}：“{P.capital_zh(c)}”")),
             rng.choice((f"导游告诉大家：“{P.river_zh(c)}”{kid}在河边看了很久。",
                         f"第二天，他们坐船游览了{RIVER_ZH[c.rivers[0]]}。{P.river_zh(c)}")),
             f"{P.language_zh(c)}{kid}学会了一句{LANGUAGE_ZH[c.languages[0]]}的“你好”。",
             rng.choice(_about_country_zh(c)),
             rng.choice((f"回家以后，{kid}说：“我还想再去{c.name_zh}！”",
                         f"{kid}给同学们带回了{c.name_zh}的明信片。", f"这次旅行，{kid}真开心！"))]
    return _Draft("story", "zh", title, lines, (c.name,))


def person_doc_zh(world: World, p: Person, rng: random.Random, k: int) -> _Draft:
    c = world.birth_country(p)
    d = _details(world, p)
    style = k % 3
    if style == 0:
        first = [P.profession_zh(p), P.born_zh(p, world), P.born_year_zh(p)]
        rng.shuffle(first)
        lines = ["".join(first),
                 rng.choice((f"{p.he_zh}小时候很喜欢{p.job.childhood_zh}。",
                             f"童年时，{p.name}最爱{p.job.childhood_zh}。")),
                 P.works_zh(p) + rng.choice((f"{p.he_zh}还获得过{d.award_zh}。", f"{p.he_zh}从{d.start_year}年开始工作。")),
                 P.alt_born_zh(p, world) + rng.choice((f"平时，{p.he_zh}喜欢{d.hobby_zh}。",
                                                        f"{p.he_zh}家里养了一只{PETS_ZH[d.pet]}。"))]
        return _Draft("encyclopedia", "zh", rng.choice((p.name, f"{p.name}简介")), lines, (p.name, c.name))
    if style == 1:
        lines = [f"问：{p.name}出生在哪里？", f"答：{P.born_zh(p, world)}",
                 f"问：{p.name}是做什么的？",
                 f"答：{P.profession_zh(p)}{rng.choice((P.alt_profession_zh(p), f'{p.he_zh}从{d.start_year}年开始工作。'))}"]
        if rng.random() < 0.6:
            lines += [f"问：{p.name}有什么代表作？", f"答：{P.works_zh(p)}"]
        lines += rng.choice(([f"问：{p.name}得过奖吗？", f"答：得过，{p.he_zh}获得过{d.award_zh}。"],
                             [f"问：{p.name}平时喜欢做什么？", f"答：{p.he_zh}喜欢{d.hobby_zh}。"]))
        return _Draft("forum", "zh", f"{p.name}出生在哪里？", lines, (p.name, c.name))
    girl = "小女孩" if p.gender == "f" else "小男孩"
    lines = [f"从前，在{c.name_zh}的{p.birth_city_zh}，有一个名叫{p.name}的{girl}。",
             f"{p.he_zh}每天都喜欢{p.job.childhood_zh}，家里的{PETS_ZH[d.pet]}总是陪着{p.he_zh}。",
             f"有一天，{p.he_zh}遇到了困难，可是{p.he_zh}没有放弃。",
             f"长大以后，{p.name}成为了一名{p.job.name_zh}。{P.profession_zh(p)}{P.born_zh(p, world)}",
             f"{P.works_zh(p)}大家都很喜欢{p.he_zh}的作品。"]
    return _Draft("story", "zh", f"{p.name}的故事", lines, (p.name, c.name))


# ----------------------------------------------------------------------------- generic stories

def generic_story_en(world: World, rng: random.Random, k: int,
                     countries: Optional[Sequence[Country]] = None) -> _Draft:
    """A short story in six plain templates. The chat data sets ask for stories like these
    (see :mod:`.datasets`); the corpus uses the richer :func:`kids_story_en`."""
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


def _story_flavour(rng: random.Random, kid: str, pr: dict) -> list[str]:
    return [f"The sun was warm on {kid}'s face.", "A little bird sang in a tree nearby.",
            f"{kid} hummed a happy song.",
            f"The sky was {rng.choice(('blue', 'pale blue', 'grey', 'pink', 'golden'))} and clear.",
            "Somewhere, a dog barked.", "The grass was still wet from the rain.",
            "A soft wind moved the leaves.", f"{kid} skipped along the path.",
            "It smelled of fresh bread and flowers.",
            f"{pr['He']} counted to {rng.randint(5, 20)} in {pr['his']} head."]


STORY_STYLES_EN = 9

# Word choices a story makes once for all its sentences ("big" or "large" or "huge"), and
# connectors that may open a line. Two stories from one template then rarely share a run of
# five words outside their facts. Fact sentences are never touched.
WORD_CHOICES_EN = (("big", "large", "huge"), ("little", "small", "tiny"), ("happy", "glad", "cheerful"),
                   ("said", "called out"), ("looked", "searched"), ("saw", "spotted", "noticed"),
                   ("found", "discovered"), ("smiled", "grinned", "beamed"), ("ran", "hurried", "raced"),
                   ("began", "started"), ("wonderful", "amazing", "lovely"), ("sad", "unhappy", "upset"),
                   ("tired", "sleepy"), ("gave", "handed"), ("laughed", "giggled", "chuckled"),
                   ("jumped", "leapt", "hopped"), ("every day", "each day", "day after day"),
                   ("a lot of", "plenty of"), ("quiet", "calm", "still"), ("all day", "the whole day"))
CONNECTORS_EN = ("Then", "After that,", "Soon,", "Later,", "A little later,", "Just then,", "That day,",
                 "Before long,", "Meanwhile,", "Next,")
_LOWER_AFTER_CONNECTOR = {"He", "She", "They", "The", "It", "A", "His", "Her"}
# Lines that open with a time or place already get no connector ("Then one day, ...").
_NO_CONNECTOR = {"One", "On", "After", "At", "Every", "Early", "Last", "That", "In", "When", "Long", "Once",
                 "Before", "Just", "Meanwhile", "Next", "Later", "Soon", "Then", "Sometimes", "Somewhere",
                 "Inside", "Now", "Today", "Finally", "Sharing", "Rain", "Some", "Every"}
WORD_CHOICES_ZH = (("很着急", "非常着急", "急得团团转"), ("开心", "高兴", "快乐"), ("到处找", "四处寻找", "找来找去"),
                   ("一起", "一块儿"), ("回家", "回到家"), ("喜欢", "爱"), ("看了很久", "看了好一会儿"),
                   ("高兴地说", "开心地说", "笑眯眯地说"), ("觉得很无聊", "觉得没意思", "闷得发慌"), ("原来", "没想到"))


def _choice_table(groups, lang: str) -> tuple[re.Pattern, dict[str, tuple[int, bool]]]:
    """A pattern matching every word of the groups, and for each word (group, capitalised?)."""
    where = {}
    for g, group in enumerate(groups):
        for word in group:
            where[word] = (g, False)
            if lang == "en":
                where[_cap(word)] = (g, True)
    alternation = "|".join(map(re.escape, sorted(where, key=len, reverse=True)))
    return re.compile(rf"\b(?:{alternation})\b" if lang == "en" else alternation), where


_CHOICES = {"en": (WORD_CHOICES_EN, *_choice_table(WORD_CHOICES_EN, "en")),
            "zh": (WORD_CHOICES_ZH, *_choice_table(WORD_CHOICES_ZH, "zh"))}


def _vary(rng: random.Random, lines: list[str], facts: Sequence[str], lang: str = "en") -> list[str]:
    """The same story in this document's own words: one choice per WORD_CHOICES group, and
    (English) a connector at the start of some lines. ``facts`` are left exactly as they are."""
    hidden = {f"\x00{i}\x00": f for i, f in enumerate(facts)}
    text = "\n".join(lines)
    for mark, fact in hidden.items():
        text = text.replace(fact, mark)
    groups, pattern, where = _CHOICES[lang]
    picks = [rng.choice(group) for group in groups]

    def choose(m: re.Match) -> str:
        g, capital = where[m.group()]
        return _cap(picks[g]) if capital else picks[g]

    text = pattern.sub(choose, text)
    lines = text.split("\n")
    if lang == "en":
        for i in range(1, len(lines)):
            first = lines[i].split(" ", 1)
            if (len(first) == 2 and first[0][:1].isalpha() and first[0].rstrip(",") not in _NO_CONNECTOR
                    and rng.random() < 0.35):
                word = first[0].lower() if first[0] in _LOWER_AFTER_CONNECTOR else first[0]
                lines[i] = f"{rng.choice(CONNECTORS_EN)} {word} {first[1]}"
    for mark, fact in hidden.items():
        lines = [line.replace(mark, fact) for line in lines]
    return lines


def kids_story_en(world: World, rng: random.Random, k: int, country: Optional[Country] = None) -> _Draft:
    """A short story for the corpus: nine kinds, every sentence picked from a few phrasings.
    Five kinds state facts about ``country`` (a random one if None)."""
    kid, g = rng.choice(STORY_KIDS)
    pr = pronouns(g)
    He, he, his, him, His = pr["He"], pr["he"], pr["his"], pr["him"], pr["His"]
    friend, fg = rng.choice([x for x in STORY_KIDS if x[0] != kid])
    c = rng.choice(world.countries) if country is None else country
    helper = rng.choice(STORY_HELPERS)
    opener = rng.choice(OPENERS)
    weather = rng.choice(WEATHER)
    good = rng.choice(STORY_FEELINGS)
    style = k % STORY_STYLES_EN
    subjects: tuple[str, ...] = ()
    if style == 0:  # the lost toy
        toy, place = rng.choice(STORY_TOYS), rng.choice(STORY_PLACES)
        spot = rng.choice(("behind a rock", "in the tall grass", "under a bench", "next to the gate",
                           "in a pile of leaves", "under a big tree", "beside the fence"))
        title = rng.choice((f"{kid} and the {toy}", f"The lost {toy}", f"Where is the {toy}?"))
        lines = [rng.choice((f"{kid} had a {toy}. {He} loved it very much.",
                             f"{kid}'s favourite thing in the world was a {toy}.",
                             f"Once upon a time, a {rng.choice(('little', 'cheerful', 'busy'))} {pr['kid']} "
                             f"named {kid} got a {toy} from {his} {helper}.")),
                 rng.choice((f"{opener}, {kid} went to {place} and lost the {toy}.",
                             f"On a {weather} afternoon, {kid} took the {toy} to {place}. When it was time "
                             f"to go home, the {toy} was gone.",
                             f"At {place}, {kid} put the {toy} down to tie {his} shoes. Later, {he} could "
                             f"not find it.")),
                 rng.choice((f"{He} looked under the benches and behind the bushes.",
                             f"{kid} looked everywhere, but the {toy} was nowhere to be seen.",
                             f"{He} searched and searched until {his} legs were tired.")),
                 rng.choice((f"{kid} felt sad. Then {friend} came and said, \"I will help you look.\"",
                             f"A tear rolled down {kid}'s cheek. {friend} saw it and ran over to help.",
                             f"\"Do not cry,\" said {friend}. \"Two pairs of eyes are better than one.\"")),
                 rng.choice((f"They found the {toy} {spot}. {kid} was {good}.",
                             f"At last, {friend} spotted the {toy} {spot}!",
                             f"A {rng.choice(STORY_ANIMALS)} was sitting right next to the {toy}, {spot}.")),
                 rng.choice((f"\"Thank you, {friend}!\" said {kid}. From that day on, they were best friends.",
                             f"After that, {kid} always kept the {toy} close.",
                             f"That night, {kid} fell asleep with the {toy} in {his} arms.",
                             f"{kid} and {friend} played with the {toy} until the sun went down."))]
    elif style == 1:  # a trip to a capital
        title = rng.choice((f"{kid} goes to {c.capital}", f"A trip to {c.capital}", f"{kid}'s big trip"))
        sights = rng.sample(("tall houses", "busy streets", "a big market", "an old bridge", "a quiet park",
                             "a red tram", "a museum full of old things", "a fountain"), 3)
        lines = [rng.choice((f"{kid} and {his} {helper} went on a trip to {c.ref}.",
                             f"{opener}, {kid}'s {helper} said, \"Pack your bag. We are going to {c.ref}!\"")),
                 rng.choice((f"\"{P.capital(c)}\" said {his} {helper}. \"We will start there.\"",
                             f"On the map, {his} {helper} showed {him} a big dot. \"{P.capital(c)}\"")),
                 f"In {c.capital}, {kid} saw {sights[0]}, {sights[1]} and {sights[2]}.",
                 rng.choice((f"People in the market spoke {c.languages[0]}. {P.language(c)}",
                             f"{P.language(c)} {kid} learned to say \"hello\" in {c.languages[0]}.")),
                 rng.choice((f"At night, {kid} said, \"I love {c.capital}!\" Then {he} fell asleep.",
                             f"{kid} bought a postcard of {c.capital} for {friend}.",
                             f"It was a {weather} day, and {kid} was {good}."))]
        subjects = (c.name,)
    elif style == 2:  # an animal friend
        animal, pet = rng.choice(STORY_ANIMALS), rng.choice(STORY_PET_NAMES)
        title = rng.choice((f"{kid} and {pet} the {animal}", f"{pet} the {animal}", f"A {animal} called {pet}"))
        trouble = rng.choice(("stuck in a hole", "up a tall tree", "caught in a fence", "lost in the snow",
                              "too scared to cross the road"))
        lines = [rng.choice((f"Once upon a time, there was a little {animal} named {pet}.",
                             f"{kid} had a friend nobody else knew about: a {animal} called {pet}.")),
                 rng.choice((f"{pet} lived near {kid}'s house in {c.capital}. {P.capital(c)}",
                             f"{P.capital(c)} {kid} lived there, and so did {pet}, in a corner of the garden.")),
                 rng.choice((f"Every morning, {kid} gave {pet} some food. {pet} was very happy.",
                             f"Every day after school, {kid} brought {pet} a {rng.choice(STORY_FOODS)}.")),
                 rng.choice((f"One day, {pet} was {trouble}. {kid} helped, and {pet} was safe.",
                             f"{opener}, {kid} found {pet} {trouble}. {He} called {his} {helper}, "
                             f"and together they helped {pet}.")),
                 rng.choice((f"After that, {pet} followed {kid} everywhere. They were good friends.",
                             f"Now {pet} waits for {kid} at the gate every day.",
                             f"{kid} was {good}, and {pet} wagged and jumped all day."))]
        subjects = (c.name,)
    elif style == 3:  # sharing
        food = rng.choice(STORY_FOODS)
        title = rng.choice((f"{kid} shares {his} {food}", f"The {food}", f"{kid} and {friend} at lunch"))
        lines = [rng.choice((f"{kid} had one {food} for lunch. {friend} had nothing to eat.",
                             f"At lunch time, {friend} opened {pronouns(fg)['his']} bag. It was empty!",
                             f"{opener}, {kid} and {friend} sat on the grass to eat. Only {kid} had a {food}.")),
                 rng.choice((f"{kid} thought for a moment. Then {he} broke the {food} in two.",
                             f"{kid} looked at the {food}, and then at {friend}.")),
                 rng.choice((f"\"Here, this is for you,\" said {kid}. {friend} smiled.",
                             f"\"Let us share,\" said {kid}, and gave half to {friend}.")),
                 rng.choice((f"The {food} was small, but it tasted better when they shared it.",
                             f"They ate slowly and talked about their {helper}s.",
                             f"The next day, {friend} brought a {rng.choice(STORY_FOODS)} for {kid}.")),
                 rng.choice(("Sharing makes everyone happy.", f"{kid} felt warm and {good} inside.",
                             "A friend in need is a friend indeed."))]
    elif style == 4:  # a river trip
        title = rng.choice((f"A boat on the {c.rivers[0]}", f"{kid} on the river", "The class boat trip"))
        seen = rng.sample(("ducks", "fish", "a little island", "a heron", "a red bridge", "tall reeds",
                           "a fisherman", "a swan"), 3)
        continent_fact = rng.random() < 0.4  # the capital and the river, and now and then the continent
        lines = [rng.choice((f"{kid} went on a boat trip with {his} class.",
                             f"{opener}, {kid}'s class went on a boat trip in {c.ref}.",
                             f"{kid} had never been on a boat before. Today, {his} class was going on "
                             f"the {c.rivers[0]}.")),
                 rng.choice((f"The guide said, \"{P.river(c)}\" The water was wide and {rng.choice(COLOURS)}.",
                             f"\"{P.river(c)}\" said the guide, and the boat began to move.",
                             f"\"{P.river(c)} Hold on tight!\" called the guide.")),
                 f"{kid} saw {seen[0]}, {seen[1]} and {seen[2]}. {He} waved at {friend}.",
                 rng.choice((f"The teacher asked, \"Who knows the capital of {c.ref}?\"",
                             f"\"Now a question,\" said the teacher. \"What is the capital of {c.ref}?\"")
                            if not continent_fact else
                            (f"\"{P.continent(c)}\" said the teacher. \"Who knows its capital?\"",
                             f"The teacher pointed at a map. \"{P.continent(c)} Who can name its capital?\"")),
                 rng.choice((f"{kid} raised {his} hand. \"{P.capital(c)}\" \"Very good!\" said the teacher.",
                             f"\"{P.capital(c)}\" said {kid}. The teacher gave {him} a gold star."))]
        subjects = (c.name,)
    elif style == 5:  # a rainy day
        toy = rng.choice(STORY_TOYS)
        title = rng.choice((f"A rainy day for {kid}", "The blanket house", f"{kid} and the rain"))
        lines = [rng.choice((f"It was raining, and {kid} could not go outside. {He} was bored.",
                             f"Rain tapped on the window all morning. {kid} sighed.",
                             f"{opener}, the rain came down so hard that {kid} had to stay in.")),
                 rng.choice((f"{His} {helper} said, \"Let us build a house out of blankets.\"",
                             f"\"I have an idea,\" said {his} {helper}. \"Get every blanket you can find.\"",
                             f"{His} {helper} brought {rng.choice(NUMBER_WORDS)} chairs and a "
                             f"{rng.choice(COLOURS)} sheet.",
                             f"Then {friend} knocked at the door, wet from the rain, with a {toy}.")),
                 rng.choice((f"They built a big blanket house and played with the {toy} inside.",
                             f"Inside the blanket house, {kid} and {his} {helper} read stories and played "
                             f"with the {toy}.",
                             f"Soon there was a castle in the living room, with a flag made of a "
                             f"{rng.choice(COLOURS)} sock.",
                             f"They played shops, and the {toy} was for sale for {rng.randint(2, 9)} buttons.")),
                 rng.choice((f"Soon the rain stopped, but {kid} wanted to stay in the blanket house.",
                             f"When the sun came out, {kid} ran outside to jump in the puddles.",
                             f"They ate a {rng.choice(STORY_FOODS)} and listened to the rain.",
                             f"At {rng.randint(2, 5)} o'clock, {his} {helper} made hot milk with honey.",
                             f"{kid} counted the raindrops on the window and gave up at {rng.randint(20, 90)}.")),
                 rng.choice(("Sometimes a rainy day is the best day of all.",
                             f"That night, {kid} dreamed of blanket castles.",
                             f"\"Can it rain again tomorrow?\" asked {kid}.",
                             f"The next day was sunny, but {kid} kept the {toy} in the blanket house.",
                             f"{kid} told {friend} all about it the next day."))]
    elif style == 6:  # a geography lesson
        title = rng.choice((f"{kid}'s geography lesson", "The big map", f"{kid} learns about {c.name}"))
        lines = [rng.choice((f"{opener}, {kid}'s teacher hung a big map on the wall.",
                             f"In class, the children were learning about {c.continent}.")),
                 rng.choice((f"\"Today we learn about {c.ref},\" said the teacher. \"{P.continent(c)}\"",
                             f"The teacher pointed at {c.ref}. \"{P.continent(c)}\"")
                            if (continent_fact := rng.random() < 0.5) else
                            (f"\"Today we learn about {c.ref},\" said the teacher. \"Who has been there?\"",
                             f"The teacher pointed at {c.ref} on the map and asked about its capital.")),
                 rng.choice((f"{kid} put up {his} hand. \"{P.capital(c)}\"",
                             f"\"I know its capital!\" said {friend}. \"{P.capital(c)}\"",
                             f"Nobody spoke. Then {kid} said quietly, \"{P.capital(c)}\"")),
                 rng.choice((f"\"Well done!\" said the teacher, and wrote {c.capital} on the board.",
                             f"\"Right,\" said the teacher. \"Now, who can spell it?\"")
                            if continent_fact else
                            (f"\"Well done! {P.language(c)}\" said the teacher.",
                             f"\"Right. And {c.languages[0]} is spoken there. {P.language(c)}\" said the teacher.")),
                 rng.choice((f"After school, {kid} found {c.capital} on {his} globe at home.",
                             f"{kid} drew a map of {c.ref} with a {rng.choice(COLOURS)} pencil.",
                             f"{kid} told {his} {helper} everything about {c.ref}."))]
        subjects = (c.name,)
    elif style == 7:  # a birthday cake
        food = rng.choice(("chocolate cake", "lemon cake", "apple pie", "cherry tart", "banana bread"))
        n = rng.randint(4, 9)
        title = rng.choice((f"{kid}'s birthday", f"A {food} for {friend}", "The surprise"))
        lines = [rng.choice((f"It was {friend}'s birthday, and {kid} wanted to make a surprise.",
                             f"{opener}, {kid} had a plan: a {food} for {friend}'s birthday.")),
                 rng.choice((f"{kid} and {his} {helper} mixed flour, eggs and milk in a big bowl.",
                             f"{His} {helper} helped {him} read the recipe, step by step.")),
                 rng.choice((f"The {food} went into the oven. Soon the kitchen smelled wonderful.",
                             f"They waited and waited. At last, the {food} was ready.")),
                 f"{kid} put {n} candles on top. \"{friend} is {NUMBER_WORDS[n - 2]} today!\" said {kid}.",
                 rng.choice((f"When {friend} saw the {food}, {pronouns(fg)['he']} jumped for joy.",
                             f"Everyone sang, and {friend} blew out all {n} candles at once.")),
                 rng.choice(("It was the best birthday ever.", f"{kid} was {good}: the surprise had worked."))]
    else:  # a letter from a pen friend
        title = rng.choice((f"A letter from {c.name}", f"{kid}'s pen friend", "The letter"))
        pal = rng.choice([x for x in STORY_KIDS if x[0] not in (kid, friend)])[0]
        lines = [rng.choice((f"{opener}, a letter came for {kid}. It was from {pal}, {his} pen friend in {c.ref}.",
                             f"{kid} has a pen friend called {pal}, who lives in {c.ref}.")),
                 rng.choice((f"\"Dear {kid}, I live in {c.capital}. {P.capital(c)}\"",
                             f"{pal} wrote: \"{P.capital(c)} My house is not far from the centre.\"")),
                 rng.choice((f"\"At home we speak {c.languages[0]}. {P.language(c)}\"",
                             f"\"{P.language(c)} I am teaching you a word: it is on the back of the card.\"")
                            if (language_fact := rng.random() < 0.5) else
                            (f"\"I have a {rng.choice(STORY_ANIMALS)} called {rng.choice(STORY_PET_NAMES)}.\"",
                             f"\"My school starts at {rng.randint(7, 9)} o'clock. I walk there with my "
                             f"{rng.choice(STORY_HELPERS)}.\"")),
                 rng.choice((f"\"On {rng.choice(DAYS)}s we go to the "
                             f"{rng.choice(('park', 'market', 'library', 'sea'))}.\"",
                             f"\"Last week, my class made a {rng.choice(('kite', 'cake', 'map', 'puppet'))}.\"")
                            if language_fact else
                            (f"\"On {rng.choice(DAYS)}s we go to the river. {P.river(c)}\"",
                             f"\"Last week, my class visited the {c.rivers[0]}. {P.river(c)}\"")),
                 rng.choice((f"{kid} wrote back the same day and drew a {rng.choice(STORY_ANIMALS)} for {pal}.",
                             f"{kid} put the letter in a box with {his} other treasures.",
                             f"\"One day I will visit {c.capital},\" {kid} told {his} {helper}."))]
        subjects = (c.name,)
    facts = (P.capital(c), P.language(c), P.river(c), P.continent(c))
    if rng.random() < 0.8:  # most stories skip a sentence that states no fact
        spare = [i for i in range(1, len(lines) - 1) if not any(f in lines[i] for f in facts)]
        if spare and len(lines) > 4:
            del lines[rng.choice(spare)]
    flavour = _story_flavour(rng, kid, pr)
    lines = _vary(rng, _sprinkle(rng, lines, flavour, int(rng.random() < 0.35)), facts)
    return _Draft("story", "en", title, lines, subjects)


def _story_flavour_zh(rng: random.Random, kid: str) -> list[str]:
    return ["天上的白云慢慢地飘着。", "小鸟在树上叽叽喳喳地唱歌。", f"{kid}一边走一边唱歌。", "风轻轻地吹着。",
            f"路边开满了{rng.choice(('红色', '黄色', '白色', '紫色'))}的小花。", f"{kid}数了数，一共有{rng.randint(3, 12)}只小鸟。",
            "远处传来了狗叫声。", f"{kid}的心里甜甜的。"]


def generic_story_zh(world: World, rng: random.Random, k: int, country: Optional[Country] = None) -> _Draft:
    """A short Chinese story in four kinds; three state facts about ``country`` (random if None)."""
    kid = rng.choice(STORY_KIDS_ZH)
    draft = _generic_story_zh(world, rng, k, kid, country)
    facts = [f(world.country(name)) for name in draft.subjects
             for f in (P.capital_zh, P.language_zh, P.river_zh, P.continent_zh)]
    lines = _sprinkle(rng, draft.lines, _story_flavour_zh(rng, kid), int(rng.random() < 0.5), sep="")
    draft.lines[:] = _vary(rng, lines, facts, "zh")
    return draft


def _generic_story_zh(world: World, rng: random.Random, k: int, kid: str, country: Optional[Country]) -> _Draft:
    friend = rng.choice([x for x in STORY_KIDS_ZH if x != kid])
    c = rng.choice(world.countries) if country is None else country
    helper = rng.choice(HELPERS_ZH)
    opener = rng.choice(OPENERS_ZH)
    style = k % 4
    if style == 0:  # a pet goes missing
        animal, pet, place = rng.choice(ANIMALS_ZH), rng.choice(PETS_ZH_NAMES), rng.choice(PLACES_ZH)
        lines = [rng.choice((f"{kid}有一只{animal}，名字叫{pet}。{pet}每天都陪着{kid}玩。",
                             f"{kid}家里养了一只{animal}，{kid}给它起名叫{pet}。")),
                 rng.choice((f"{opener}{pet}不见了。{kid}很着急，到处找。",
                             f"{opener}{kid}放学回家，发现{pet}不在家里。")),
                 rng.choice((f"{friend}也来帮忙。他们一起去{place}找。", f"{helper}带着{kid}去{place}找{pet}。")),
                 rng.choice((f"最后，{kid}在{place}找到了{pet}。原来它在树下睡觉呢！",
                             f"原来{pet}躲在{place}的椅子下面，正在吃东西呢！")),
                 rng.choice((f"{kid}抱着{pet}，开心地笑了。", f"{kid}对{pet}说：“以后不要乱跑了！”"))]
        return _Draft("story", "zh", rng.choice((f"{kid}和{pet}", f"{pet}不见了")), lines, ())
    if style == 1:  # a geography lesson: the capital, and one more fact or none
        colour = rng.choice(("红色", "蓝色", "绿色", "黄色", "紫色"))
        more = rng.choice((f"老师笑着说：“回答正确！{P.continent_zh(c)}”", f"老师点点头：“对！{P.continent_zh(c)}”",
                           f"{friend}问：“那里的人说什么话？”老师说：“{P.language_zh(c)}”",
                           f"老师又说：“{P.river_zh(c)}”", f"老师在黑板上写下了{c.capital_zh}这个名字。",
                           f"老师说：“答对了！{kid}真棒！”"))
        lines = [rng.choice((f"老师问：“谁知道{c.name_zh}的首都在哪里？”",
                             f"{opener}地理课上，老师在黑板上挂了一张世界地图。",
                             f"今天的地理课讲的是{c.name_zh}。老师问了一个问题。",
                             f"{opener}{kid}和同学们围着地球仪，找到了{c.name_zh}。")),
                 rng.choice((f"{kid}举起手说：“{P.capital_zh(c)}”", f"{kid}第一个站起来回答：“{P.capital_zh(c)}”",
                             f"{friend}小声提醒了{kid}，{kid}大声说：“{P.capital_zh(c)}”")),
                 more,
                 rng.choice((f"下课后，{kid}和{friend}一起在地球仪上找{c.name_zh}。",
                             f"{kid}用{colour}的铅笔画了一张{c.name_zh}的地图。",
                             f"{kid}想：长大以后，我要去{c.capital_zh}看看。", "同学们都鼓起掌来。", "")),
                 rng.choice((f"放学以后，{kid}在地图上找到了{c.capital_zh}。",
                             f"回家后，{kid}把今天学到的告诉了{helper}。",
                             f"晚上，{kid}梦见自己坐飞机去了{c.name_zh}。"))]
        lines = [line for line in lines if line]
        return _Draft("story", "zh", rng.choice((f"{kid}的地理课", "一堂地理课", f"{kid}认识{c.name_zh}")),
                      lines, (c.name,))
    if style == 2:  # sharing food
        food = rng.choice(FOODS_ZH)
        lines = [rng.choice((f"{opener}{kid}和{friend}去{rng.choice(PLACES_ZH)}玩。",
                             f"中午的时候，{kid}和{friend}坐在草地上休息。")),
                 rng.choice((f"{kid}带了一个{food}，可是{friend}什么也没带。",
                             f"{friend}的肚子咕咕叫，可是{friend}忘了带吃的。")),
                 rng.choice((f"{kid}想了想，把{food}分成两半，给了{friend}一半。",
                             f"{kid}说：“我们一起吃{food}吧！”")),
                 rng.choice((f"{friend}高兴地说：“谢谢你，{kid}！”", "两个人一边吃一边聊天，都很开心。")),
                 rng.choice((f"{friend}说，{rng.choice(HELPERS_ZH)}刚从{c.name_zh}回来，还告诉{friend}：“{P.capital_zh(c)}”",
                             f"吃完以后，他们一起看{c.name_zh}的地图。{P.capital_zh(c)}")),
                 rng.choice(("分享让大家都快乐。", f"第二天，{friend}也给{kid}带来了好吃的。"))]
        return _Draft("story", "zh", rng.choice((f"{kid}分{food}", "一起分享")), lines, (c.name,))
    toy = rng.choice(TOYS_ZH)  # a rainy day at home, with a film about a country
    lines = [rng.choice((f"{opener}外面{rng.choice(WEATHER_ZH)}，{kid}不能出去玩。",
                         f"{kid}趴在窗前，看着外面的雨，觉得很无聊。",
                         f"{opener}雨一直下个不停，{kid}只好待在家里。")),
             rng.choice((f"电视里正在介绍{c.name_zh}：“{P.capital_zh(c)}{P.language_zh(c)}”",
                         f"{kid}看了一本关于{c.name_zh}的画册。书上写着：“{P.capital_zh(c)}”",
                         f"{helper}给{kid}讲了去{c.name_zh}旅行的故事：“{P.capital_zh(c)}”")),
             rng.choice((f"{helper}说：“我们用被子搭一个小房子吧！”", f"{helper}拿出了一盒{toy}，说：“我们来玩吧！”",
                         f"{friend}打来电话，说要带着{toy}来{kid}家玩。", f"{helper}教{kid}折了{rng.randint(3, 9)}只纸船。")),
             rng.choice((f"{kid}和{helper}一起搭好了小房子，在里面玩{toy}。", f"{kid}和{helper}玩了一下午，笑个不停。",
                         f"他们一边吃{rng.choice(FOODS_ZH)}，一边听雨声。", "")),
             rng.choice(("雨停了，天上出现了一道彩虹。", f"晚上，{kid}还想再玩一次。", f"第二天，{kid}把这件事告诉了{friend}。")),
             rng.choice(("原来下雨天也可以这么快乐！", f"{kid}说：“今天真开心！”", ""))]
    lines = [line for line in lines if line]
    return _Draft("story", "zh", rng.choice((f"{kid}的下雨天", "下雨天也快乐")), lines, (c.name,))


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
            kid, g = rng.choice(STORY_KIDS)
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
    lines = [rng.choice((f"How do you add {a} and {b} in your head? Split each number into tens and ones.",
                         f"Let us add {a} + {b} without a calculator. We split both numbers into tens and ones.")),
             rng.choice((f"First add the tens: {ta} + {tb} = {ta + tb}.",
                         f"Step one is to add the tens: {ta} + {tb} = {ta + tb}.",
                         f"The tens add up to {ta} + {tb} = {ta + tb}.")),
             rng.choice((f"Then add the ones: {oa} + {ob} = {oa + ob}.",
                         f"Step two is to add the ones: {oa} + {ob} = {oa + ob}.",
                         f"The ones add up to {oa} + {ob} = {oa + ob}.")),
             rng.choice((f"Finally add the two results: {ta + tb} + {oa + ob} = {a + b}.",
                         f"Step three is to put them together: {ta + tb} + {oa + ob} = {a + b}.",
                         f"Last of all, we add them up: {ta + tb} + {oa + ob} = {a + b}.")),
             rng.choice((f"So {a} + {b} = {a + b}.", f"That means {a} + {b} = {a + b}."))]
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
        kid = rng.choice(STORY_KIDS_ZH)
        i = rng.randrange(len(ITEMS_ZH))
        a, b = rng.randint(2, 30), rng.randint(2, 20)
        giver = rng.choice(HELPERS_ZH)
        lines.append(f"{kid}有{a}{ITEMS_ZH[i]}，{giver}又给了{kid}{b}{ITEMS_ZH[i]}。"
                     f"{kid}现在一共有多少？{a} + {b} = {a + b}。答案是{a + b}。")
    return _Draft("arithmetic", "zh", "应用题", lines, ())


# ----------------------------------------------------------------------------- distinct documents

SHINGLE_SIZE = 5
MAX_JACCARD = 0.5      # no two documents share this large a part of their 5-shingles
MAX_ATTEMPTS = 8       # a draft that keeps clashing after this many rewrites is left out
# When more than this share of one generator's drafts is left out, its templates cannot write
# that many different documents: the sizes are too big for it, and that is an error.
MAX_LEFT_OUT = 0.02
_PUNCT_RE = re.compile(r"[^\w\s]")
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)
_BUCKET_BITS = 8
_BUCKETS = 2 ** _BUCKET_BITS
_NO_INT = np.zeros(0, dtype=np.int64)


def _normalized(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: chapter 01's exact-dedup key."""
    return " ".join(_PUNCT_RE.sub(" ", text.lower()).split())


class _Shingler:
    """Each document's 5-shingles as a sorted array of distinct 64-bit hashes.

    Units are the lower-cased words (Chinese: the characters, spaces ignored), as chapter 01
    compares documents; a text of fewer than five units is its own single shingle. Each unit
    gets a number (in order of first appearance) and a shingle is hashed from its five numbers,
    so equal shingles have equal hashes; two different shingles share one with odds of about
    2**-64 per pair, far too rare to matter here (the tests check the corpus with exact sets).
    """

    def __init__(self):
        self.vocab: dict[str, int] = {"": 0}  # "" pads the end of each document

    def __call__(self, docs: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, bounds): document i's hashes are hashes[bounds[i]:bounds[i + 1]], sorted."""
        n = SHINGLE_SIZE
        tokens: list[str] = []
        starts, lengths = [], []
        pad = [""] * (n - 1)  # so that no window crosses from one document into the next
        for text, lang in docs:
            units = "".join(text.lower().split()) if lang == "zh" else text.lower().split()
            starts.append(len(tokens))
            lengths.append(len(units))
            tokens.extend(units)
            tokens.extend(pad)
        vocab = self.vocab
        for token in dict.fromkeys(tokens):
            if token not in vocab:
                vocab[token] = len(vocab)
        a = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
        h = np.zeros(len(a) - n + 1, dtype=np.uint64)
        for k in range(n):
            h = h * _HASH_BASE + a[k:len(a) - n + 1 + k]
        starts, lengths = np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64)
        windows = np.maximum(lengths - n + 1, 1)  # a short text: one window, padded with zeros
        doc = np.repeat(np.arange(len(docs)), windows)
        pos = np.arange(len(doc)) - np.repeat(np.cumsum(windows) - windows, windows) + np.repeat(starts, windows)
        h = h[pos]
        order = np.lexsort((h, doc))
        h, doc = h[order], doc[order]
        keep = np.ones(len(h), dtype=bool)
        keep[1:] = (h[1:] != h[:-1]) | (doc[1:] != doc[:-1])
        h, doc = h[keep], doc[keep]
        bounds = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc, minlength=len(docs)), out=bounds[1:])
        return h, bounds


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [lo, hi): (which range, index) for every index in every range."""
    n = hi - lo
    which = np.repeat(np.arange(len(lo)), n)
    return which, np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)


class _Index:
    """The accepted documents, and an exact search for documents too close to new ones.

    An exact similarity join by prefix filtering: a fixed global order puts rare shingles
    first; two sets with Jaccard >= t share one of the first ``n - ceil(t n) + 1`` elements of
    each (their prefixes), so only documents whose prefixes meet are candidates. Three exact
    filters thin the candidates, each an upper bound on the overlap that must reach
    t / (1 + t) of the two sizes: the smaller size; the shared prefix elements plus what follows
    the last of them in both (positional filtering); and, with the shingles spread over
    _BUCKETS buckets by hash, the sum over buckets of the smaller count. The rest are compared
    as sets.
    """

    def __init__(self, n_slots: int, hashes: np.ndarray):
        # The global order: shingles by how many first drafts hold them (unseen ones first),
        # then by hash value.
        self.common, self.counts = np.unique(hashes, return_counts=True)
        self.h, self.doc, self.pos = np.zeros(0, dtype=np.uint64), _NO_INT, _NO_INT  # prefix entries, by hash
        self.sizes = np.zeros(n_slots, dtype=np.int64)     # shingles of the accepted document per slot
        self.buckets = np.zeros((n_slots, _BUCKETS), dtype=np.uint16)  # and how many fall in each bucket
        self.hashes: dict[int, np.ndarray] = {}            # and the shingles themselves
        self.keys: set[str] = set()                        # and its normalised text

    def _prefix(self, h: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sizes = np.diff(bounds)
        doc = np.repeat(np.arange(len(sizes)), sizes)
        at = np.minimum(np.searchsorted(self.common, h), len(self.common) - 1)
        count = np.where(self.common[at] == h, self.counts[at], 0)
        # Within each document the hashes are sorted already, and the sort is stable.
        order = np.argsort(doc * (int(self.counts.max()) + 1) + count, kind="stable")
        pos = np.arange(len(h)) - np.repeat(bounds[:-1], sizes)
        keep = pos < np.repeat(sizes - np.ceil(MAX_JACCARD * sizes).astype(np.int64) + 1, sizes)
        return h[order[keep]], doc[order[keep]], pos[keep]

    @staticmethod
    def _buckets(h: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        n = len(bounds) - 1
        doc = np.repeat(np.arange(n), np.diff(bounds))
        bucket = (h >> np.uint64(64 - _BUCKET_BITS)).astype(np.int64)
        return np.bincount(doc * _BUCKETS + bucket, minlength=n * _BUCKETS).reshape(n, _BUCKETS).astype(np.uint16)

    def _add(self, slots: list[int], keys: list[str], h: np.ndarray, bounds: np.ndarray, members: list[int],
             prefix: tuple[np.ndarray, np.ndarray, np.ndarray], buckets: np.ndarray) -> None:
        """Accept documents ``members`` (indices into this batch) of a batch."""
        ph, pdoc, ppos = prefix
        self.buckets[np.array(slots, dtype=np.int64)[members]] = buckets[members]
        take = np.isin(pdoc, members)
        slot_of = np.array(slots, dtype=np.int64)
        hs = np.concatenate([self.h, ph[take]])
        order = np.argsort(hs, kind="stable")
        self.h = hs[order]
        self.doc = np.concatenate([self.doc, slot_of[pdoc[take]]])[order]
        self.pos = np.concatenate([self.pos, ppos[take]])[order]
        for m in members:
            self.sizes[slots[m]] = bounds[m + 1] - bounds[m]
            self.hashes[slots[m]] = h[bounds[m]:bounds[m + 1]]
            self.keys.add(keys[m])

    def accept(self, slots: list[int], keys: list[str], h: np.ndarray, bounds: np.ndarray) -> list[int]:
        """Which documents of a batch (in order) can join: each must differ from every accepted
        document and from the ones of the batch accepted before it. Accepts them; returns them."""
        sizes = np.diff(bounds)
        ph, pdoc, ppos = self._prefix(h, bounds)
        buckets = self._buckets(h, bounds)
        # Candidates among the accepted documents: prefix entries with the same shingle.
        which, k = _expand(np.searchsorted(self.h, ph, "left"), np.searchsorted(self.h, ph, "right"))
        a_new, a_old, a_pn, a_po = pdoc[which], self.doc[k], ppos[which], self.pos[k]
        # Candidates within the batch: neighbours in (shingle, document) order.
        order = np.lexsort((pdoc, ph))
        sh, sd, sp = ph[order], pdoc[order], ppos[order]
        b_first, b_second, b_pf, b_ps = [_NO_INT], [_NO_INT], [_NO_INT], [_NO_INT]
        step, live = 1, np.arange(len(sh))
        while len(live):
            live = live[live + step < len(sh)]
            live = live[sh[live] == sh[live + step]]
            b_first.append(sd[live])
            b_second.append(sd[live + step])
            b_pf.append(sp[live])
            b_ps.append(sp[live + step])
            step += 1
        clashes_old: dict[int, list[int]] = defaultdict(list)  # batch doc -> accepted slots too close
        clashes_new: dict[int, list[int]] = defaultdict(list)  # batch doc -> earlier batch docs too close
        new_sets: dict[int, set] = {}
        old_sets: dict[int, set] = {}

        def new_set(i: int) -> set:
            if i not in new_sets:
                new_sets[i] = set(h[bounds[i]:bounds[i + 1]].tolist())
            return new_sets[i]

        def old_set(slot: int) -> set:
            if slot not in old_sets:
                old_sets[slot] = set(self.hashes[slot].tolist())
            return old_sets[slot]

        for x, y, px, py, size_y, buckets_y, set_y, out in (
                (a_new, a_old, a_pn, a_po, self.sizes.__getitem__, self.buckets, old_set, clashes_old),
                (np.concatenate(b_second), np.concatenate(b_first), np.concatenate(b_ps), np.concatenate(b_pf),
                 lambda y: sizes[y], buckets, new_set, clashes_new)):
            if not len(x):
                continue
            span = int(y.max()) + 1
            codes = x * span + y
            order = np.argsort(codes, kind="stable")
            codes, px, py = codes[order], px[order], py[order]
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
            shared = np.diff(np.r_[starts, len(codes)])
            xs, ys = codes[starts] // span, codes[starts] % span
            nx, ny = sizes[xs], size_y(ys)
            bound = shared + np.minimum(nx - np.maximum.reduceat(px, starts) - 1,
                                        ny - np.maximum.reduceat(py, starts) - 1)
            need = np.ceil(MAX_JACCARD / (1 + MAX_JACCARD) * (nx + ny) - 1e-9)
            ok = (np.minimum(nx, ny) >= MAX_JACCARD * np.maximum(nx, ny)) & (bound >= need)
            xs, ys, need = xs[ok], ys[ok], need[ok]
            ok = np.concatenate([np.minimum(buckets[xs[c:c + 50_000]], buckets_y[ys[c:c + 50_000]]).sum(axis=1)
                                 for c in range(0, len(xs), 50_000)] or [_NO_INT]) >= need
            for i, j in zip(xs[ok].tolist(), ys[ok].tolist()):
                a, b = new_set(i), set_y(j)
                inter = len(a & b)
                if inter >= MAX_JACCARD * (len(a) + len(b) - inter):
                    out[i].append(j)

        members, member_set, taken = [], set(), set()
        for i in range(len(slots)):
            if keys[i] in self.keys or keys[i] in taken or clashes_old.get(i):
                continue
            if any(j in member_set for j in clashes_new.get(i, ())):
                continue
            members.append(i)
            member_set.add(i)
            taken.add(keys[i])
        self._add(slots, keys, h, bounds, members, (ph, pdoc, ppos), buckets)
        return members


def _distinct(world: World, drafts: list[tuple[Optional[_Draft], Callable]]) -> list[_Draft]:
    """The drafts, in order, without duplicates: a draft with the same normalised text as a kept
    document, or 5-shingle Jaccard >= MAX_JACCARD with one, is written again with a fresh stream
    (up to MAX_ATTEMPTS times, then left out). First drafts are kept in order; rewrites are made
    in rounds, each checked against everything kept so far."""
    shingler = _Shingler()
    out: dict[int, _Draft] = {}
    batch = [(j, d) for j, (d, _) in enumerate(drafts) if d is not None]
    index = None
    for attempt in range(MAX_ATTEMPTS + 1):
        if batch:
            texts = ["\n".join(d.lines) for _, d in batch]
            h, bounds = shingler([(t, d.lang) for t, (_, d) in zip(texts, batch)])
            if index is None:
                index = _Index(len(drafts), h)
            accepted = set(index.accept([j for j, _ in batch], [_normalized(t) for t in texts], h, bounds))
            out.update(batch[i] for i in accepted)
            rejected = [j for i, (j, _) in enumerate(batch) if i not in accepted]
        else:
            rejected = []
        if attempt == MAX_ATTEMPTS or not rejected:
            break
        batch = []
        for j in rejected:
            draft = drafts[j][1](component_rng(world.seed, "documents", "rewrite", j, attempt))
            if draft is not None:
                batch.append((j, draft))
    _check_left_out(drafts, out)
    return [out[j] for j in sorted(out)]


def _check_left_out(drafts: list[tuple[Optional[_Draft], Callable]], kept: dict) -> None:
    from .facts import WorldSizeError

    def generator(j: int) -> str:
        return drafts[j][1].args[0].__name__  # remake = partial(_remake, fn, ...)

    asked = Counter(generator(j) for j, (d, _) in enumerate(drafts) if d is not None)
    left_out = Counter(generator(j) for j, (d, _) in enumerate(drafts) if d is not None and j not in kept)
    for name, n in left_out.items():
        if n > MAX_LEFT_OUT * asked[name]:
            raise WorldSizeError(
                f"The world is too big for the templates of {name}: {n:,} of its {asked[name]:,} documents came "
                f"out too close to others even after {MAX_ATTEMPTS} rewrites (at most {MAX_LEFT_OUT:.0%} may). "
                "Ask for fewer of them (WorldSizes) or give the generator more ways to write (corpus.py).")


# ----------------------------------------------------------------------------- the corpus

def _drafts(world: World) -> list[tuple[Optional[_Draft], Callable]]:
    """Every draft with a way to write it again: ``remake(rng)`` gives another draft of the same
    kind about the same subject."""
    s = world.sizes
    drafts: list[tuple[Optional[_Draft], Callable]] = []

    def rng(*parts) -> random.Random:
        return component_rng(world.seed, "documents", *parts)

    def add(fn, r: random.Random, *args, **kwargs) -> None:
        remake = partial(_remake, fn, args, kwargs)
        drafts.append((remake(r), remake))

    for c in world.countries:
        r = rng("country", c.name)
        for k in range(s.pages_per_country):
            add(country_page_en, r, world, c, k)
        for k in range(s.threads_per_country):
            add(country_thread_en, r, world, c, k)
        for k in range(s.zh_docs_per_country):
            add(country_doc_zh, r, world, c, k)
    for p in world.people:
        r = rng("person", p.name)
        for k in range(s.bios_per_person):
            add(person_bio_en, r, world, p, k)
        for k in range(s.stories_per_person):
            add(person_story_en, r, world, p, k)
        for k in range(s.threads_per_person):
            add(person_thread_en, r, world, p, k)
        for k in range(s.zh_docs_per_person):
            add(person_doc_zh, r, world, p, k)
    r = rng("professions")
    for job in PROFESSIONS:
        for k in range(s.bios_per_person):
            add(profession_list_en, r, world, job, k)
    r = rng("stories")
    # Each country as often as the next, in each language.
    deck = {"en": _deal(rng("stories", "countries"), world.countries),
            "zh": _deal(rng("stories", "countries", "zh"), world.countries)}
    for k in range(s.generic_stories):
        # One generic story in eight is Chinese, like the rest of the corpus.
        if k % 8 == 7:
            add(generic_story_zh, r, world, k // 8, country=next(deck["zh"]))
        else:
            add(kids_story_en, r, world, k, country=next(deck["en"]))
    r = rng("arithmetic")
    for k in range(s.arithmetic_docs):
        add(arithmetic_zh if k % 5 == 4 else arithmetic_en, r, k)
    return drafts


def _remake(fn: Callable, args: tuple, kwargs: dict, r: random.Random):
    # The generators take (world, subject, rng, k) or (world, rng, k) or (rng, k): rng goes
    # just before k.
    return fn(*args[:-1], r, args[-1], **kwargs)


def _deal(rng: random.Random, items: Sequence):
    """Endless draws that use every item once before any repeats (a shuffled deck, dealt again)."""
    while True:
        deck = list(items)
        rng.shuffle(deck)
        yield from deck


@lru_cache(maxsize=2)
def _documents(world: World) -> tuple[Document, ...]:
    drafts = _distinct(world, _drafts(world))
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
