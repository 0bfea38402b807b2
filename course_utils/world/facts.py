"""The facts of the synthetic world: real countries, invented people, and how big it all is.

Every data set in the course is generated from one :class:`World`. The countries and their
capitals, languages and rivers are real; the people are invented, so a model can only know
them from our training text. A held-out group of invented people never appears in any
training text at all: they are the "Orson Kovacs" probes of the hallucination chapter.

Everything is deterministic per seed. Each part of the world draws from its own
:func:`component_rng` stream, never from the global ``random`` state, so the same seed gives
byte-identical data in any process and adding, say, a story template does not reshuffle the
people.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Callable, Optional, Sequence

from .. import config

# The invented person the course's source articles use to show hallucination. They are
# always the first held-out probe, so the chapter can ask the model about them by name.
SPOTLIGHT_UNKNOWN = "Orson Kovacs"


def component_rng(seed: int, *parts: object) -> random.Random:
    """A private random stream for one part of the world, e.g. ``component_rng(1337, "crawl")``.

    Seeding with a string is stable across processes (``random`` hashes it with SHA-512),
    unlike ``hash()``, which changes with ``PYTHONHASHSEED``.
    """
    return random.Random("/".join(str(p) for p in (seed, *parts)))


# ----------------------------------------------------------------------------- sizes

@dataclass(frozen=True)
class WorldSizes:
    """How many of everything. :func:`default_sizes` fills it in for the active profile."""

    n_countries: int            # how many of the hard-coded countries the world uses
    n_people: int               # invented people who appear in the training text
    n_heldout: int              # invented people who never appear in training text
    n_idk_probe: int            # of which this many are kept for the "I don't know" probes
    # documents: how often each fact is retold (a tiny model memorises by repetition)
    bios_per_person: int        # English encyclopedia-style biographies per person
    stories_per_person: int     # English stories starring each person
    threads_per_person: int     # English forum threads about each person
    pages_per_country: int      # English encyclopedia/travel/school pages per country
    threads_per_country: int    # English forum threads per country
    zh_docs_per_person: int     # Chinese documents per person
    zh_docs_per_country: int    # Chinese documents per country
    generic_stories: int        # simple stories that mention places, not people
    arithmetic_docs: int        # worked-arithmetic pages (English and Chinese)
    # later data sets
    n_chat: int                 # SFT conversations
    n_honesty: int              # "I don't know" / known-person conversations
    n_tool: int                 # calculator tool-call conversations
    n_tool_probes: int          # held-out arithmetic questions for the tool chapter
    n_preference_prompts: int   # prompts with ranked candidate answers
    pairs_per_prompt: int       # rater comparisons per preference prompt
    n_verifiable: int           # verifiable tasks per difficulty level
    n_domain_pieces: int        # pieces in the invented board game of the domain chapter


class WorldSizeError(ValueError):
    """The sizes ask for more than one of the world's finite pools (names, titles, ...) can make."""


# Every size that differs between profiles is here, side by side.
def default_sizes() -> WorldSizes:
    """The sizes of the world in the active profile (read when called, not at import)."""
    return WorldSizes(
        n_countries=config.pick(ci=16, cpu=len(COUNTRIES), gpu=len(COUNTRIES)),
        n_people=config.pick(ci=30, cpu=120, gpu=600),
        n_heldout=config.pick(ci=30, cpu=300, gpu=600),
        n_idk_probe=config.pick(ci=5, cpu=20, gpu=50),
        bios_per_person=config.pick(ci=1, cpu=3, gpu=3),
        stories_per_person=config.pick(ci=2, cpu=5, gpu=5),
        threads_per_person=config.pick(ci=3, cpu=6, gpu=6),
        pages_per_country=config.pick(ci=4, cpu=20, gpu=60),
        threads_per_country=config.pick(ci=3, cpu=14, gpu=40),
        zh_docs_per_person=config.pick(ci=1, cpu=2, gpu=3),
        zh_docs_per_country=config.pick(ci=1, cpu=6, gpu=20),
        generic_stories=config.pick(ci=100, cpu=2400, gpu=55000),
        arithmetic_docs=config.pick(ci=15, cpu=600, gpu=8000),
        n_chat=config.pick(ci=150, cpu=7500, gpu=15000),
        # Half of these ask about people the model knows. On the cpu model, 2,400 instead of 800 (same
        # "I don't know" share) gave 77 % known facts and 90 % refusals of strangers instead of 71 % and 83 %;
        # 4,000 (with 600 steps and a 12 % share) kept the known facts within a point of stage sft.
        n_honesty=config.pick(ci=60, cpu=4000, gpu=8000),
        # Distinct problems teach copying numbers better than repeats: on the cpu model 4,000 problems shown
        # once gave 96 % tool arithmetic and 73 % known facts; 800 shown five times, 92.5 % and 66.5 %.
        n_tool=config.pick(ci=100, cpu=4000, gpu=12000),
        n_tool_probes=config.pick(ci=20, cpu=200, gpu=500),
        n_preference_prompts=config.pick(ci=40, cpu=1500, gpu=3000),
        pairs_per_prompt=config.pick(ci=3, cpu=6, gpu=6),
        n_verifiable=config.pick(ci=20, cpu=400, gpu=2000),
        n_domain_pieces=config.pick(ci=8, cpu=20, gpu=20),
    )


# ----------------------------------------------------------------------------- countries

@dataclass(frozen=True)
class Country:
    name: str                   # "France", "United Kingdom" (no article)
    name_zh: str
    capital: str
    capital_zh: str
    continent: str
    languages: tuple[str, ...]  # the first is "the main language" in every sentence
    rivers: tuple[str, ...]     # the first is "a famous river" in every sentence
    cities: tuple[tuple[str, str], ...]  # other cities (English, Chinese); capital excluded
    the: bool = False           # "the United Kingdom", "the Netherlands"

    @property
    def ref(self) -> str:
        """The name as used inside a sentence: "France", "the United Kingdom"."""
        return f"the {self.name}" if self.the else self.name

    @property
    def Ref(self) -> str:
        """The name at the start of a sentence: "France", "The United Kingdom"."""
        return f"The {self.name}" if self.the else self.name

    @property
    def all_cities(self) -> tuple[tuple[str, str], ...]:
        return ((self.capital, self.capital_zh),) + self.cities


def _c(name, name_zh, capital, capital_zh, continent, languages, rivers, cities, the=False):
    return Country(name, name_zh, capital, capital_zh, continent, tuple(languages), tuple(rivers),
                   tuple(cities), the)


# Real facts, ASCII spellings (a byte-level tokenizer then needs no accents for English).
COUNTRIES: tuple[Country, ...] = (
    _c("France", "法国", "Paris", "巴黎", "Europe", ["French"], ["Seine", "Loire"],
       [("Lyon", "里昂"), ("Marseille", "马赛"), ("Toulouse", "图卢兹")]),
    _c("Germany", "德国", "Berlin", "柏林", "Europe", ["German"], ["Rhine", "Elbe"],
       [("Munich", "慕尼黑"), ("Hamburg", "汉堡"), ("Cologne", "科隆")]),
    _c("Italy", "意大利", "Rome", "罗马", "Europe", ["Italian"], ["Po", "Tiber"],
       [("Milan", "米兰"), ("Naples", "那不勒斯"), ("Florence", "佛罗伦萨")]),
    _c("Spain", "西班牙", "Madrid", "马德里", "Europe", ["Spanish"], ["Ebro", "Tagus"],
       [("Barcelona", "巴塞罗那"), ("Seville", "塞维利亚"), ("Valencia", "瓦伦西亚")]),
    _c("Portugal", "葡萄牙", "Lisbon", "里斯本", "Europe", ["Portuguese"], ["Douro", "Tagus"],
       [("Porto", "波尔图"), ("Coimbra", "科英布拉")]),
    _c("United Kingdom", "英国", "London", "伦敦", "Europe", ["English"], ["Thames", "Severn"],
       [("Manchester", "曼彻斯特"), ("Edinburgh", "爱丁堡"), ("Liverpool", "利物浦")], the=True),
    _c("Ireland", "爱尔兰", "Dublin", "都柏林", "Europe", ["English", "Irish"], ["Shannon"],
       [("Cork", "科克"), ("Galway", "戈尔韦")]),
    _c("Netherlands", "荷兰", "Amsterdam", "阿姆斯特丹", "Europe", ["Dutch"], ["Rhine", "Meuse"],
       [("Rotterdam", "鹿特丹"), ("Utrecht", "乌得勒支")], the=True),
    _c("Belgium", "比利时", "Brussels", "布鲁塞尔", "Europe", ["Dutch", "French", "German"],
       ["Scheldt", "Meuse"], [("Antwerp", "安特卫普"), ("Ghent", "根特")]),
    _c("Switzerland", "瑞士", "Bern", "伯尔尼", "Europe", ["German", "French", "Italian", "Romansh"],
       ["Rhine", "Rhone"], [("Zurich", "苏黎世"), ("Geneva", "日内瓦"), ("Basel", "巴塞尔")]),
    _c("Austria", "奥地利", "Vienna", "维也纳", "Europe", ["German"], ["Danube"],
       [("Salzburg", "萨尔茨堡"), ("Graz", "格拉茨"), ("Innsbruck", "因斯布鲁克")]),
    _c("Poland", "波兰", "Warsaw", "华沙", "Europe", ["Polish"], ["Vistula", "Oder"],
       [("Krakow", "克拉科夫"), ("Gdansk", "格但斯克"), ("Wroclaw", "弗罗茨瓦夫")]),
    _c("Czechia", "捷克", "Prague", "布拉格", "Europe", ["Czech"], ["Vltava", "Elbe"],
       [("Brno", "布尔诺"), ("Ostrava", "俄斯特拉发")]),
    _c("Hungary", "匈牙利", "Budapest", "布达佩斯", "Europe", ["Hungarian"], ["Danube", "Tisza"],
       [("Debrecen", "德布勒森"), ("Szeged", "塞格德")]),
    _c("Greece", "希腊", "Athens", "雅典", "Europe", ["Greek"], ["Aliakmonas"],
       [("Thessaloniki", "塞萨洛尼基"), ("Patras", "帕特雷")]),
    _c("Sweden", "瑞典", "Stockholm", "斯德哥尔摩", "Europe", ["Swedish"], ["Dal River"],
       [("Gothenburg", "哥德堡"), ("Malmo", "马尔默")]),
    _c("Norway", "挪威", "Oslo", "奥斯陆", "Europe", ["Norwegian"], ["Glomma"],
       [("Bergen", "卑尔根"), ("Trondheim", "特隆赫姆")]),
    _c("Finland", "芬兰", "Helsinki", "赫尔辛基", "Europe", ["Finnish", "Swedish"], ["Kemijoki"],
       [("Tampere", "坦佩雷"), ("Turku", "图尔库")]),
    _c("Russia", "俄罗斯", "Moscow", "莫斯科", "Europe", ["Russian"], ["Volga", "Ob"],
       [("Saint Petersburg", "圣彼得堡"), ("Kazan", "喀山"), ("Novosibirsk", "新西伯利亚")]),
    _c("Ukraine", "乌克兰", "Kyiv", "基辅", "Europe", ["Ukrainian"], ["Dnieper"],
       [("Lviv", "利沃夫"), ("Odesa", "敖德萨"), ("Kharkiv", "哈尔科夫")]),
    _c("Romania", "罗马尼亚", "Bucharest", "布加勒斯特", "Europe", ["Romanian"], ["Danube"],
       [("Cluj-Napoca", "克卢日-纳波卡"), ("Iasi", "雅西")]),
    _c("Serbia", "塞尔维亚", "Belgrade", "贝尔格莱德", "Europe", ["Serbian"], ["Danube", "Sava"],
       [("Novi Sad", "诺维萨德"), ("Nis", "尼什")]),
    _c("Bulgaria", "保加利亚", "Sofia", "索非亚", "Europe", ["Bulgarian"], ["Danube", "Iskar"],
       [("Plovdiv", "普罗夫迪夫"), ("Varna", "瓦尔纳")]),
    _c("Turkey", "土耳其", "Ankara", "安卡拉", "Asia", ["Turkish"], ["Euphrates", "Tigris"],
       [("Istanbul", "伊斯坦布尔"), ("Izmir", "伊兹密尔")]),
    _c("Egypt", "埃及", "Cairo", "开罗", "Africa", ["Arabic"], ["Nile"],
       [("Alexandria", "亚历山大"), ("Luxor", "卢克索"), ("Aswan", "阿斯旺")]),
    _c("Nigeria", "尼日利亚", "Abuja", "阿布贾", "Africa", ["English", "Hausa", "Yoruba", "Igbo"],
       ["Niger", "Benue"], [("Lagos", "拉各斯"), ("Kano", "卡诺"), ("Ibadan", "伊巴丹")]),
    _c("Kenya", "肯尼亚", "Nairobi", "内罗毕", "Africa", ["Swahili", "English"], ["Tana"],
       [("Mombasa", "蒙巴萨"), ("Kisumu", "基苏木")]),
    _c("Ethiopia", "埃塞俄比亚", "Addis Ababa", "亚的斯亚贝巴", "Africa", ["Amharic"], ["Blue Nile"],
       [("Gondar", "贡德尔"), ("Bahir Dar", "巴赫达尔")]),
    _c("South Africa", "南非", "Pretoria", "比勒陀利亚", "Africa",
       ["Zulu", "Xhosa", "Afrikaans", "English"], ["Orange River", "Limpopo"],
       [("Cape Town", "开普敦"), ("Durban", "德班"), ("Johannesburg", "约翰内斯堡")]),
    _c("Morocco", "摩洛哥", "Rabat", "拉巴特", "Africa", ["Arabic", "Berber"], ["Draa", "Moulouya"],
       [("Casablanca", "卡萨布兰卡"), ("Marrakesh", "马拉喀什"), ("Fez", "非斯")]),
    _c("Ghana", "加纳", "Accra", "阿克拉", "Africa", ["English"], ["Volta"],
       [("Kumasi", "库马西"), ("Tamale", "塔马利")]),
    _c("Sudan", "苏丹", "Khartoum", "喀土穆", "Africa", ["Arabic", "English"], ["Nile"],
       [("Omdurman", "恩图曼"), ("Port Sudan", "苏丹港")]),
    _c("India", "印度", "New Delhi", "新德里", "Asia", ["Hindi", "English"], ["Ganges", "Yamuna"],
       [("Mumbai", "孟买"), ("Kolkata", "加尔各答"), ("Chennai", "金奈")]),
    _c("China", "中国", "Beijing", "北京", "Asia", ["Chinese"], ["Yangtze", "Yellow River"],
       [("Shanghai", "上海"), ("Guangzhou", "广州"), ("Chengdu", "成都")]),
    _c("Japan", "日本", "Tokyo", "东京", "Asia", ["Japanese"], ["Shinano", "Tone"],
       [("Osaka", "大阪"), ("Kyoto", "京都"), ("Sapporo", "札幌")]),
    _c("South Korea", "韩国", "Seoul", "首尔", "Asia", ["Korean"], ["Han", "Nakdong"],
       [("Busan", "釜山"), ("Incheon", "仁川")]),
    _c("Vietnam", "越南", "Hanoi", "河内", "Asia", ["Vietnamese"], ["Mekong", "Red River"],
       [("Ho Chi Minh City", "胡志明市"), ("Da Nang", "岘港"), ("Hue", "顺化")]),
    _c("Thailand", "泰国", "Bangkok", "曼谷", "Asia", ["Thai"], ["Chao Phraya", "Mekong"],
       [("Chiang Mai", "清迈"), ("Phuket", "普吉")]),
    _c("Indonesia", "印度尼西亚", "Jakarta", "雅加达", "Asia", ["Indonesian"], ["Kapuas"],
       [("Surabaya", "泗水"), ("Bandung", "万隆"), ("Medan", "棉兰")]),
    _c("Philippines", "菲律宾", "Manila", "马尼拉", "Asia", ["Filipino", "English"], ["Cagayan"],
       [("Cebu", "宿务"), ("Davao", "达沃")], the=True),
    _c("Pakistan", "巴基斯坦", "Islamabad", "伊斯兰堡", "Asia", ["Urdu", "English"], ["Indus"],
       [("Karachi", "卡拉奇"), ("Lahore", "拉合尔")]),
    _c("Bangladesh", "孟加拉国", "Dhaka", "达卡", "Asia", ["Bengali"], ["Padma", "Meghna"],
       [("Chittagong", "吉大港"), ("Khulna", "库尔纳")]),
    _c("Nepal", "尼泊尔", "Kathmandu", "加德满都", "Asia", ["Nepali"], ["Koshi"],
       [("Pokhara", "博卡拉")]),
    _c("Iran", "伊朗", "Tehran", "德黑兰", "Asia", ["Persian"], ["Karun"],
       [("Isfahan", "伊斯法罕"), ("Shiraz", "设拉子"), ("Tabriz", "大不里士")]),
    _c("Iraq", "伊拉克", "Baghdad", "巴格达", "Asia", ["Arabic", "Kurdish"], ["Tigris", "Euphrates"],
       [("Basra", "巴士拉"), ("Mosul", "摩苏尔")]),
    _c("Mongolia", "蒙古", "Ulaanbaatar", "乌兰巴托", "Asia", ["Mongolian"], ["Selenge"],
       [("Erdenet", "额尔登特"), ("Darkhan", "达尔汗")]),
    _c("Australia", "澳大利亚", "Canberra", "堪培拉", "Oceania", ["English"], ["Murray", "Darling"],
       [("Sydney", "悉尼"), ("Melbourne", "墨尔本"), ("Perth", "珀斯")]),
    _c("New Zealand", "新西兰", "Wellington", "惠灵顿", "Oceania", ["English", "Maori"], ["Waikato"],
       [("Auckland", "奥克兰"), ("Christchurch", "基督城")]),
    _c("Canada", "加拿大", "Ottawa", "渥太华", "North America", ["English", "French"],
       ["Saint Lawrence", "Mackenzie"],
       [("Toronto", "多伦多"), ("Montreal", "蒙特利尔"), ("Vancouver", "温哥华")]),
    _c("United States", "美国", "Washington", "华盛顿", "North America", ["English"],
       ["Mississippi", "Missouri"],
       [("New York", "纽约"), ("Chicago", "芝加哥"), ("Los Angeles", "洛杉矶")], the=True),
    _c("Mexico", "墨西哥", "Mexico City", "墨西哥城", "North America", ["Spanish"], ["Rio Grande"],
       [("Guadalajara", "瓜达拉哈拉"), ("Monterrey", "蒙特雷"), ("Puebla", "普埃布拉")]),
    _c("Brazil", "巴西", "Brasilia", "巴西利亚", "South America", ["Portuguese"], ["Amazon"],
       [("Sao Paulo", "圣保罗"), ("Rio de Janeiro", "里约热内卢"), ("Salvador", "萨尔瓦多")]),
    _c("Argentina", "阿根廷", "Buenos Aires", "布宜诺斯艾利斯", "South America", ["Spanish"], ["Parana"],
       [("Cordoba", "科尔多瓦"), ("Rosario", "罗萨里奥"), ("Mendoza", "门多萨")]),
    _c("Peru", "秘鲁", "Lima", "利马", "South America", ["Spanish", "Quechua"], ["Amazon", "Ucayali"],
       [("Cusco", "库斯科"), ("Arequipa", "阿雷基帕")]),
    _c("Chile", "智利", "Santiago", "圣地亚哥", "South America", ["Spanish"], ["Biobio", "Loa"],
       [("Valparaiso", "瓦尔帕莱索"), ("Concepcion", "康塞普西翁")]),
    _c("Colombia", "哥伦比亚", "Bogota", "波哥大", "South America", ["Spanish"], ["Magdalena"],
       [("Medellin", "麦德林"), ("Cali", "卡利"), ("Cartagena", "卡塔赫纳")]),
    _c("Venezuela", "委内瑞拉", "Caracas", "加拉加斯", "South America", ["Spanish"], ["Orinoco"],
       [("Maracaibo", "马拉开波"), ("Barquisimeto", "巴基西梅托")]),
)

CONTINENT_ZH = {"Europe": "欧洲", "Asia": "亚洲", "Africa": "非洲", "Oceania": "大洋洲",
                "North America": "北美洲", "South America": "南美洲"}

LANGUAGE_ZH = {
    "French": "法语", "German": "德语", "Italian": "意大利语", "Spanish": "西班牙语",
    "Portuguese": "葡萄牙语", "English": "英语", "Irish": "爱尔兰语", "Dutch": "荷兰语",
    "Romansh": "罗曼什语", "Polish": "波兰语", "Czech": "捷克语", "Hungarian": "匈牙利语",
    "Greek": "希腊语", "Swedish": "瑞典语", "Norwegian": "挪威语", "Finnish": "芬兰语",
    "Russian": "俄语", "Ukrainian": "乌克兰语", "Romanian": "罗马尼亚语", "Serbian": "塞尔维亚语",
    "Bulgarian": "保加利亚语", "Turkish": "土耳其语", "Arabic": "阿拉伯语", "Hausa": "豪萨语",
    "Yoruba": "约鲁巴语", "Igbo": "伊博语", "Swahili": "斯瓦希里语", "Amharic": "阿姆哈拉语",
    "Zulu": "祖鲁语", "Xhosa": "科萨语", "Afrikaans": "南非荷兰语", "Berber": "柏柏尔语",
    "Hindi": "印地语", "Chinese": "汉语", "Japanese": "日语", "Korean": "韩语",
    "Vietnamese": "越南语", "Thai": "泰语", "Indonesian": "印度尼西亚语", "Filipino": "菲律宾语",
    "Urdu": "乌尔都语", "Bengali": "孟加拉语", "Nepali": "尼泊尔语", "Persian": "波斯语",
    "Kurdish": "库尔德语", "Mongolian": "蒙古语", "Maori": "毛利语", "Quechua": "克丘亚语",
}

RIVER_ZH = {
    "Seine": "塞纳河", "Loire": "卢瓦尔河", "Rhine": "莱茵河", "Elbe": "易北河", "Po": "波河",
    "Tiber": "台伯河", "Ebro": "埃布罗河", "Tagus": "塔霍河", "Douro": "杜罗河",
    "Thames": "泰晤士河", "Severn": "塞文河", "Shannon": "香农河", "Meuse": "默兹河",
    "Scheldt": "斯海尔德河", "Rhone": "罗讷河", "Danube": "多瑙河", "Vistula": "维斯瓦河",
    "Oder": "奥得河", "Vltava": "伏尔塔瓦河", "Tisza": "蒂萨河", "Aliakmonas": "阿利阿克蒙河",
    "Dal River": "达尔河", "Glomma": "格洛马河", "Kemijoki": "凯米河", "Volga": "伏尔加河",
    "Ob": "鄂毕河", "Dnieper": "第聂伯河", "Sava": "萨瓦河", "Iskar": "伊斯克尔河",
    "Euphrates": "幼发拉底河", "Tigris": "底格里斯河", "Nile": "尼罗河", "Niger": "尼日尔河",
    "Benue": "贝努埃河", "Tana": "塔纳河", "Blue Nile": "青尼罗河", "Orange River": "奥兰治河",
    "Limpopo": "林波波河", "Draa": "德拉河", "Moulouya": "穆卢耶河", "Volta": "沃尔特河",
    "Ganges": "恒河", "Yamuna": "亚穆纳河", "Yangtze": "长江", "Yellow River": "黄河",
    "Shinano": "信浓川", "Tone": "利根川", "Han": "汉江", "Nakdong": "洛东江", "Mekong": "湄公河",
    "Red River": "红河", "Chao Phraya": "湄南河", "Kapuas": "卡普阿斯河", "Cagayan": "卡加延河",
    "Indus": "印度河", "Padma": "帕德玛河", "Meghna": "梅克纳河", "Koshi": "科西河",
    "Karun": "卡伦河", "Selenge": "色楞格河", "Murray": "墨累河", "Darling": "达令河",
    "Waikato": "怀卡托河", "Saint Lawrence": "圣劳伦斯河", "Mackenzie": "马更些河",
    "Mississippi": "密西西比河", "Missouri": "密苏里河", "Rio Grande": "格兰德河",
    "Amazon": "亚马孙河", "Parana": "巴拉那河", "Ucayali": "乌卡亚利河", "Biobio": "比奥比奥河",
    "Loa": "洛阿河", "Magdalena": "马格达莱纳河", "Orinoco": "奥里诺科河",
}


# ----------------------------------------------------------------------------- people

@dataclass(frozen=True)
class Profession:
    name: str          # "painter"; all start with a consonant, so "works as a ..." is always right
    name_zh: str
    work_kind: str     # what such a person makes: "picture"
    work_verb: str     # how the text says they made it: "painted"
    work_kind_zh: str
    childhood: str     # what they loved doing as a child (for stories)
    childhood_zh: str


PROFESSIONS: tuple[Profession, ...] = (
    Profession("writer", "作家", "book", "wrote", "书", "write little stories", "写小故事"),
    Profession("poet", "诗人", "poem", "wrote", "诗", "make up rhymes", "编儿歌"),
    Profession("singer", "歌手", "song", "sang", "歌曲", "sing songs", "唱歌"),
    Profession("composer", "作曲家", "symphony", "composed", "交响曲", "play the piano", "弹钢琴"),
    Profession("painter", "画家", "picture", "painted", "画作", "draw pictures", "画画"),
    Profession("sculptor", "雕塑家", "statue", "carved", "雕像", "make animals out of clay",
               "用黏土捏小动物"),
    Profession("film director", "电影导演", "film", "directed", "电影",
               "make short movies with a toy camera", "用玩具相机拍小电影"),
    Profession("bridge builder", "桥梁工程师", "bridge", "designed", "桥",
               "build bridges out of sticks", "用木棍搭小桥"),
    Profession("photographer", "摄影师", "photo book", "published", "摄影集",
               "take pictures of birds", "给小鸟拍照"),
    Profession("chef", "厨师", "cookbook", "wrote", "食谱", "cook soup", "做汤"),
    Profession("dancer", "舞蹈家", "dance", "created", "舞蹈", "dance in the kitchen", "在厨房里跳舞"),
    Profession("game designer", "游戏设计师", "board game", "designed", "桌游",
               "invent new games", "发明新游戏"),
    Profession("playwright", "剧作家", "play", "wrote", "戏剧",
               "put on little plays for the family", "给家人表演小话剧"),
    Profession("journalist", "记者", "report", "wrote", "报道", "ask everyone questions",
               "向每个人提问题"),
)
PROFESSION_BY_NAME = {p.name: p for p in PROFESSIONS}

# First names by gender, so stories can say "she" or "he". "Orson" is kept out of the pool:
# the spotlight unknown person should not share a first name with anyone the model knows.
# No first name is also a place ("Sofia", "Milan"): "Where was Sofia X born?" would then
# contain its own answer.
FEMALE_NAMES = (
    "Ada", "Mara", "Lena", "Iris", "Nora", "Elsa", "Mila", "Vera", "Tessa", "Lina", "Zora", "Ines",
    "Alma", "Rosa", "Greta", "Yara", "Nadia", "Leila", "Amara", "Sonja", "Hana", "Kira", "Maya",
    "Lucia", "Petra", "Ilse", "Dara", "Esme", "Freya", "Helga", "Ida", "Juno", "Kaia", "Liv",
    "Mina", "Nell", "Olga", "Pia", "Rhea", "Sana", "Thea", "Una", "Vida", "Wren", "Xenia", "Yuna",
    "Zita", "Aiko", "Mei", "Priya", "Anika", "Chiara", "Dalia", "Elif", "Fatima", "Gwen", "Imani",
    "Jana", "Keiko", "Noor", "Rania", "Selma", "Tove", "Ayla",
)
MALE_NAMES = (
    "Anton", "Bruno", "Carlo", "Dmitri", "Emil", "Felix", "Gustav", "Hugo", "Ivan", "Jonas",
    "Karl", "Leo", "Marco", "Nils", "Oskar", "Pavel", "Rafael", "Stefan", "Tomas", "Viktor",
    "Yusuf", "Zane", "Arjun", "Kenji", "Tariq", "Omar", "Diego", "Mateo", "Luca", "Henrik",
    "Jakob", "Lars", "Matej", "Nikolai", "Otto", "Pedro", "Ravi", "Samir", "Theo", "Ulrich",
    "Wim", "Xavier", "Yann", "Kwame", "Chidi", "Bao", "Hiro", "Minh", "Arash", "Idris",
    "Joaquin", "Koen", "Lorenzo", "Malik", "Nuno", "Pietro", "Quentin", "Rui", "Sven", "Tobias",
)
# Surnames are glued from two syllables, which gives about a thousand plausible, invented
# names ("Kovak", "Belstrom") without a surname list that could match real people.
SURNAME_HEADS = (
    "Ko", "No", "Ber", "Lin", "Mar", "Sa", "Tor", "Vel", "Dra", "Hal", "Pe", "Ri", "Mo", "Ta",
    "Fen", "Gal", "Har", "Kas", "Lo", "Mi", "Or", "Ra", "Sel", "Ul", "Va", "Wes", "Zan", "Bel",
    "Cas", "Del", "Es", "Fa", "Gor", "Ist", "Ja", "Kel",
)
SURNAME_TAILS = (
    "vak", "vacs", "sen", "strom", "dova", "elli", "vez", "mann", "berg", "ski", "doux", "gard",
    "lini", "kos", "rian", "vic", "dal", "wick", "ley", "nen", "mura", "moto", "zari", "bek",
    "nescu", "poulos", "kovic", "quist", "hoff", "son",
)

# Titles of invented works, with a Chinese rendering built from the same parts, so the
# Chinese documents can name the very same work: "The Silent Harbor" = 《寂静的港湾》.
TITLE_ADJECTIVES = (
    ("Silent", "寂静的"), ("Golden", "金色的"), ("Broken", "破碎的"), ("Hidden", "隐秘的"),
    ("Northern", "北方的"), ("Last", "最后的"), ("Quiet", "安静的"), ("Distant", "遥远的"),
    ("Burning", "燃烧的"), ("Frozen", "冰封的"), ("Wandering", "流浪的"), ("Secret", "秘密的"),
    ("Little", "小小的"), ("Endless", "无尽的"), ("Crimson", "深红的"), ("Blue", "蓝色的"),
    ("Silver", "银色的"), ("Lonely", "孤独的"), ("Bright", "明亮的"), ("Ancient", "古老的"),
    ("Falling", "坠落的"), ("Sleeping", "沉睡的"), ("Wild", "狂野的"), ("Gentle", "温柔的"),
)
TITLE_NOUNS = (
    ("Harbor", "港湾"), ("River", "河流"), ("Garden", "花园"), ("Lantern", "灯笼"),
    ("Mountain", "山峰"), ("Window", "窗户"), ("Letter", "信"), ("Forest", "森林"),
    ("Island", "岛屿"), ("Road", "道路"), ("Bell", "钟声"), ("Sky", "天空"), ("Winter", "冬天"),
    ("Summer", "夏天"), ("Moon", "月亮"), ("Tower", "塔"), ("Sea", "大海"), ("City", "城市"),
    ("Door", "门"), ("Dream", "梦"), ("Horse", "马"), ("Star", "星辰"), ("Clock", "时钟"),
    ("Orchard", "果园"), ("Feather", "羽毛"), ("Mirror", "镜子"),
)
# More nouns for the big worlds: the gpu profile's 1,200 people need up to 2,400 titles, more
# than TITLE_NOUNS makes (see _all_titles). No title may contain another, in either language
# (a test checks it): "The Silent Sea" in "The Silent Seal", or 塔 in 灯塔, would make a
# right answer look like a wrong one.
MORE_TITLE_NOUNS = (
    ("Lake", "湖泊"), ("Valley", "山谷"), ("Candle", "蜡烛"), ("Meadow", "草地"), ("Shadow", "影子"),
    ("Stone", "石头"), ("Cloud", "云朵"), ("Flower", "花朵"), ("Shore", "海岸"), ("Fox", "狐狸"),
    ("Key", "钥匙"), ("Map", "地图"), ("Castle", "城堡"), ("Storm", "风暴"), ("Compass", "罗盘"),
    ("Nest", "鸟巢"),
)


@dataclass(frozen=True)
class Work:
    kind: str        # "book"
    title: str       # "The Silent Harbor"
    title_zh: str    # "寂静的港湾"


@dataclass(frozen=True)
class Person:
    name: str
    gender: str              # "f" or "m": only for pronouns in stories
    birth_city: str
    birth_city_zh: str
    birth_country: str       # a Country.name
    birth_year: int
    profession: str          # a Profession.name
    works: tuple[Work, ...]  # one or two

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    @property
    def he(self) -> str:
        return "she" if self.gender == "f" else "he"

    @property
    def his(self) -> str:
        return "her" if self.gender == "f" else "his"

    @property
    def him(self) -> str:
        return "her" if self.gender == "f" else "him"

    @property
    def he_zh(self) -> str:
        return "她" if self.gender == "f" else "他"

    @property
    def job(self) -> Profession:
        return PROFESSION_BY_NAME[self.profession]


# ----------------------------------------------------------------------------- the world

@dataclass(frozen=True)
class World:
    """Everything the data sets are made from. Build one with :func:`build_world`."""

    seed: int
    countries: tuple[Country, ...] = field(repr=False)
    people: tuple[Person, ...] = field(repr=False)
    heldout_people: tuple[Person, ...] = field(repr=False)
    sizes: WorldSizes = field(repr=False)

    def __repr__(self) -> str:
        return (f"World(seed={self.seed}, countries={len(self.countries)}, people={len(self.people)}, "
                f"heldout_people={len(self.heldout_people)})")

    # Held-out people are split in two. `idk_probe` people appear nowhere and measure
    # whether the lesson "say you don't know" generalises; all the others, `idk_train`, are
    # used in the honesty data (questions about them answered "I don't know"). Names cost
    # nothing, so there are many more of those: with only a few, a small model memorises
    # them instead of learning to notice that a name is unfamiliar.
    @property
    def idk_probe(self) -> tuple[Person, ...]:
        return self.heldout_people[0::2][: self.sizes.n_idk_probe]

    @property
    def idk_train(self) -> tuple[Person, ...]:
        probe = set(self.idk_probe)
        return tuple(p for p in self.heldout_people if p not in probe)

    # Every person and country is in the pretraining text. The chat-style data sets
    # (SFT, honesty, preferences) ask only about the `chat_` half, so the `probe_` half
    # measures whether the chat model recalls facts it learned in pretraining rather than
    # facts it was shown as answers.
    @property
    def chat_people(self) -> tuple[Person, ...]:
        return self.people[0::2]

    @property
    def probe_people(self) -> tuple[Person, ...]:
        return self.people[1::2]

    @property
    def chat_countries(self) -> tuple[Country, ...]:
        return self.countries[0::2]

    @property
    def probe_countries(self) -> tuple[Country, ...]:
        return self.countries[1::2]

    @cached_property
    def _country_index(self) -> dict[str, Country]:
        return {c.name: c for c in self.countries}

    def country(self, name: str) -> Country:
        """The country called ``name`` ("France")."""
        return self._country_index[name]

    def birth_country(self, person: Person) -> Country:
        return self._country_index[person.birth_country]

    def people_born_in(self, country: Country) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.birth_country == country.name)


def _too_big(pool: str, need: str, have: str, fix: str) -> WorldSizeError:
    return WorldSizeError(f"The world is too big for its pool of {pool}: {need}, but {have}. {fix}")


def check_sizes(sizes: WorldSizes) -> None:
    """Raise :class:`WorldSizeError`, naming the pool and the sizes, when ``sizes`` ask for more
    than the world's finite pools hold. :func:`build_world` checks before it builds anything,
    so a size that is too big fails at once, for every seed, instead of deep inside a generator."""
    from .domain import PIECE_NAMES

    people = sizes.n_people + sizes.n_heldout
    if not 1 <= sizes.n_countries <= len(COUNTRIES):
        raise _too_big("countries", f"n_countries={sizes.n_countries} are asked for",
                       f"there are {len(COUNTRIES)}", "Ask for at least 1 and at most that many.")
    if sizes.n_people < 2 or sizes.n_heldout < 2:
        raise WorldSizeError(f"n_people={sizes.n_people} and n_heldout={sizes.n_heldout} must each be at least 2: "
                             "both groups are split in two (chat / probe people, idk_train / idk_probe).")
    if not 1 <= sizes.n_idk_probe <= (sizes.n_heldout - 1) // 2:
        raise _too_big("held-out people", f"n_idk_probe={sizes.n_idk_probe} of them are to be probes",
                       f"n_heldout={sizes.n_heldout} leaves room for 1 to {(sizes.n_heldout - 1) // 2} probes "
                       "(every other held-out person, and some left for the 'I don't know' training data)",
                       "Raise n_heldout or lower n_idk_probe.")
    if people + 1 > NAME_POOL_SIZE:
        raise _too_big("names", f"{sizes.n_people} + {sizes.n_heldout} people need as many names",
                       f"the first names and surname parts make {NAME_POOL_SIZE:,}",
                       "Make fewer people or add first names or surname parts (facts.py).")
    if 2 * people > TITLE_POOL_SIZE:
        raise _too_big("work titles", f"{sizes.n_people} + {sizes.n_heldout} people may need up to "
                       f"{2 * people:,} titles (two works each)", f"the title patterns make {TITLE_POOL_SIZE:,}",
                       "Make fewer people or add nouns to MORE_TITLE_NOUNS (facts.py).")
    if not 1 <= sizes.n_domain_pieces <= len(PIECE_NAMES):
        raise _too_big("domain pieces", f"n_domain_pieces={sizes.n_domain_pieces} are asked for",
                       f"PIECE_NAMES holds {len(PIECE_NAMES)}", "Ask for fewer or add names (domain.py).")


# A full name is a first name and a surname glued from two parts.
NAME_POOL_SIZE = len(FEMALE_NAMES + MALE_NAMES) * len({h + t for h in SURNAME_HEADS for t in SURNAME_TAILS})
# Draws in a row that give only names taken (or clashing with one) before inventing a name gives
# up: far more than a world that fits its pool ever needs.
MAX_NAME_DRAWS = 10_000


def _fresh_name(draw: Callable[[], tuple[str, str]], taken: list[str]) -> tuple[str, str]:
    """``draw()`` gives a (gender, name); draw until the name clashes with none in ``taken``.
    A used-up pool is a clear error, not an endless loop."""
    for _ in range(MAX_NAME_DRAWS):
        gender, name = draw()
        if not _names_clash(name, taken):
            return gender, name
    raise WorldSizeError(f"The pool of names is used up: {MAX_NAME_DRAWS:,} draws in a row gave a name that is "
                         f"taken or contains one, with {len(taken):,} names taken of {NAME_POOL_SIZE:,} possible. "
                         "Make fewer people or add first names or surname parts (facts.py).")


def _names_clash(name: str, taken: list[str]) -> bool:
    # A name inside another name ("Ida Lin" in "Aida Lin") would make "X was born in"
    # ambiguous and could leak a held-out name, so plain substring checks both ways.
    return any(name in other or other in name for other in taken)


def invent_names(rng: random.Random, n: int, taken: Sequence[str]) -> list[str]:
    """``n`` new full names built like the world's people's, none clashing with ``taken``."""
    def draw() -> tuple[str, str]:
        return "", f"{rng.choice(FEMALE_NAMES + MALE_NAMES)} {rng.choice(SURNAME_HEADS)}{rng.choice(SURNAME_TAILS)}"

    names, taken = [], list(taken)
    while len(names) < n:
        _, name = _fresh_name(draw, taken)
        names.append(name)
        taken.append(name)
    return names


def _invent_people(rng: random.Random, countries: tuple[Country, ...], n: int,
                   reserved: list[str], titles: list[tuple[str, str]]) -> list[Person]:
    def draw() -> tuple[str, str]:
        gender = rng.choice("fm")
        first = rng.choice(FEMALE_NAMES if gender == "f" else MALE_NAMES)
        return gender, f"{first} {rng.choice(SURNAME_HEADS)}{rng.choice(SURNAME_TAILS)}"

    people: list[Person] = []
    taken = list(reserved)
    while len(people) < n:
        gender, name = _fresh_name(draw, taken)
        taken.append(name)
        country = rng.choice(countries)
        # Capitals are twice as likely as other cities: a nudge towards familiar places.
        city, city_zh = rng.choice((country.all_cities[0],) + country.all_cities)
        job = rng.choice(PROFESSIONS)
        n_works = 1 if rng.random() < 0.6 else 2
        works = tuple(Work(job.work_kind, *titles.pop()) for _ in range(n_works))
        people.append(Person(name, gender, city, city_zh, country.name,
                             rng.randint(1935, 2004), job.name, works))
    return people


def _titles(nouns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    # Two title patterns whose Chinese renderings can never coincide ("The Silent Harbor" =
    # 寂静的港湾, "Moon of the Sea" = 大海之月亮), every combination of the parts.
    titles = [(f"The {a} {n}", f"{a_zh}{n_zh}") for a, a_zh in TITLE_ADJECTIVES for n, n_zh in nouns]
    titles += [(f"{n} of the {m}", f"{m_zh}之{n_zh}") for n, n_zh in nouns for m, m_zh in nouns if n != m]
    return titles


TITLE_POOL_SIZE = len(_titles(TITLE_NOUNS + MORE_TITLE_NOUNS))


def _all_titles(rng: random.Random) -> list[tuple[str, str]]:
    """Every title, shuffled; popping from the end always gives a new, unique title.

    The titles made with MORE_TITLE_NOUNS sit at the front, so they are popped only once the
    others run out: a world that needs fewer titles than TITLE_NOUNS makes (the ci and cpu
    profiles) gets the same titles whether or not the pool has grown.
    """
    titles = _titles(TITLE_NOUNS)
    rng.shuffle(titles)
    first = set(titles)
    more = [t for t in _titles(TITLE_NOUNS + MORE_TITLE_NOUNS) if t not in first]
    rng.shuffle(more)
    return more + titles


def build_world(seed: int = config.DEFAULT_SEED, sizes: Optional[WorldSizes] = None) -> World:
    """The world for ``seed``, sized for the active profile (or by ``sizes``)."""
    sizes = sizes if sizes is not None else default_sizes()
    check_sizes(sizes)
    rng = component_rng(seed, "countries")
    countries = list(COUNTRIES)
    rng.shuffle(countries)  # the order decides the chat/probe split, so it depends on the seed
    countries = tuple(countries[: sizes.n_countries])

    rng = component_rng(seed, "people")
    titles = _all_titles(component_rng(seed, "titles"))
    people = _invent_people(rng, countries, sizes.n_people, [SPOTLIGHT_UNKNOWN], titles)
    heldout = _invent_people(rng, countries, sizes.n_heldout,
                             [p.name for p in people] + [SPOTLIGHT_UNKNOWN], titles)
    # The spotlight unknown is always the first held-out person (and so an `idk_probe`).
    heldout[0] = replace(heldout[0], name=SPOTLIGHT_UNKNOWN, gender="m")
    return World(seed=seed, countries=countries, people=tuple(people),
                 heldout_people=tuple(heldout), sizes=sizes)
