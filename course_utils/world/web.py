"""The crawl: the world's documents as a noisy set of web pages, with hidden labels.

Chapter 01 cleans this crawl back into a corpus and scores every step against the labels.
Roughly two pages in three are the original page of one document; the rest are the noise a
real crawl is full of:

======================  =====  ==========================================================
page                    share  label
======================  =====  ==========================================================
original of a document  ~68 %  kind="good", doc_id set
exact reprint            ~8 %  kind="good", doc_id and ``exact_dup_of`` (the original's url)
near-duplicate           ~8 %  kind="good", doc_id and ``near_dup_of``; a few words changed,
                               typos, a sentence dropped or added (5-shingle Jaccard 0.7-0.95)
spam / ads               ~5 %  kind="spam"
gibberish                ~3 %  kind="gibberish", lang="und"
very short               ~3 %  kind="short" (under 50 words of content)
repeated lines           ~3 %  kind="repeated_lines"
another language         ~2 %  kind="foreign", lang="de" | "es" | "fr"
======================  =====  ==========================================================

About 15 % of pages carry e-mail addresses or phone numbers; ``label.pii`` lists the exact
strings. Pages that are not good carry no ``doc_id``.

What an extractor can rely on (and what it must cope with):

- The content of every page is the ``<p>`` elements inside its one ``<article>``. For a page
  with a ``doc_id``, those paragraphs are the document's lines, in order, HTML-escaped, plus
  any PII lines (one ``<p>`` each, anywhere among them). A byline ``<div>`` may also sit in the
  article. Everything else (menus, cookie banners, share buttons, related links, newsletter
  boxes, footers, scripts) is boilerplate, and some of it is in ``<p>`` elements too, so a
  naive "all the text" extractor picks it up.
- An exact reprint has the same ``<article>`` as its original, inside different boilerplate.
- A copy always comes after its original in the list, so "keep the first page of each
  cluster" keeps the original.
- ``<html lang=...>`` is whatever the site template says; it is not a language label.
- PII appears only inside the article.
"""
from __future__ import annotations

import html
import random
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal, Optional

from . import phrases as P
from .corpus import KIDS, Document, documents
from .facts import World, component_rng

PageKind = Literal["good", "spam", "gibberish", "short", "repeated_lines", "foreign"]
PAGE_KINDS = ("good", "spam", "gibberish", "short", "repeated_lines", "foreign")

# Shares of the crawl by page type (the rest are originals, one per document).
SHARES = {"exact_dup": 0.08, "near_dup": 0.08, "spam": 0.05, "gibberish": 0.03, "short": 0.03,
          "repeated_lines": 0.03, "foreign": 0.02}
PII_RATE = 0.15
NEAR_DUP_JACCARD = (0.7, 0.95)  # word 5-shingle Jaccard of a near-duplicate and its original


@dataclass(frozen=True)
class PageLabel:
    doc_id: Optional[str]          # the document this page carries (good pages only)
    kind: PageKind
    lang: str                      # "en", "zh", "de", "es", "fr", or "und" for gibberish
    exact_dup_of: Optional[str] = None  # url of the original this page reprints verbatim
    near_dup_of: Optional[str] = None   # url of the original this page copies with edits
    pii: tuple[str, ...] = ()      # the exact e-mail and phone strings inserted


@dataclass(frozen=True)
class CrawlPage:
    url: str
    html: str
    label: PageLabel


# ----------------------------------------------------------------------------- near-duplicate helpers

def word_shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """The set of ``n`` consecutive lower-cased words (split on whitespace)."""
    words = text.lower().split()
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


SYNONYMS = {"big": "large", "small": "little", "happy": "glad", "famous": "well-known",
            "very": "really", "often": "frequently", "loved": "liked", "said": "replied",
            "went": "walked", "many": "lots of", "know": "remember", "visit": "see",
            "starts": "begins", "wonderful": "amazing", "sad": "unhappy", "help": "support"}
FILLERS = ("That is all for today.", "(Updated recently.)", "Read on to learn more.",
           "We hope you enjoy it.", "Thanks for reading!", "More soon.")


def _edit_once(lines: list[str], rng: random.Random) -> list[str]:
    """One small edit that keeps every fact intact: a synonym, a typo in a lower-case word,
    a dropped sentence, or an added filler sentence."""
    lines = list(lines)
    i = rng.randrange(len(lines))
    words = lines[i].split(" ")
    what = rng.random()
    if what < 0.35:
        spots = [j for j, w in enumerate(words) if w.strip(".,!?\"").lower() in SYNONYMS]
        if spots:
            j = rng.choice(spots)
            core = words[j].strip(".,!?\"")
            new = SYNONYMS[core.lower()]
            words[j] = words[j].replace(core, new.capitalize() if core[0].isupper() else new)
            lines[i] = " ".join(words)
            return lines
    if what < 0.7:
        spots = [j for j, w in enumerate(words) if len(w) >= 4 and w.isalpha() and w.islower()]
        if spots:
            j = rng.choice(spots)
            w = words[j]
            k = rng.randrange(1, len(w) - 2)
            words[j] = (w[:k] + w[k + 1] + w[k] + w[k + 2:]) if rng.random() < 0.5 else (w[:k] + w[k + 1:])
            lines[i] = " ".join(words)
            return lines
    if what < 0.85:
        sentences = re.split(r"(?<=[.!?]) ", lines[i])
        if len(sentences) >= 2:
            del sentences[rng.randrange(len(sentences))]
            lines[i] = " ".join(sentences)
            return lines
    lines[i] = f"{lines[i]} {rng.choice(FILLERS)}"
    return lines


def near_duplicate(text: str, rng: random.Random) -> str:
    """A copy of ``text`` with small edits, until its 5-shingle Jaccard with the original
    falls to a random target between 0.74 and 0.9 (and never below 0.7)."""
    lo, hi = NEAR_DUP_JACCARD
    original = word_shingles(text)
    target = rng.uniform(0.74, 0.9)
    lines = text.split("\n")
    best = None
    for _ in range(80):
        candidate = _edit_once(lines, rng)
        j = jaccard(original, word_shingles("\n".join(candidate)))
        if j < lo:
            continue  # that edit went too far: try a different one
        lines = candidate
        best = j
        if j <= target:
            break
    if best is None or best > hi:  # pathological short text: settle for a single typo-free edit
        lines = text.split("\n")
        lines[-1] = f"{lines[-1]} {FILLERS[0]}"
    return "\n".join(lines)


# ----------------------------------------------------------------------------- PII

US_AREA_CODES = ("212", "415", "312", "617", "206", "303", "512", "718", "646", "305")


def phone_number(rng: random.Random) -> str:
    """A phone number in one of ten common formats. US numbers use the 555-01xx range and
    UK ones the 020 7946 0xxx range, both set aside for fiction."""
    d = lambda k: "".join(str(rng.randrange(10)) for _ in range(k))  # noqa: E731
    area, line = rng.choice(US_AREA_CODES), f"01{d(2)}"
    return rng.choice((
        f"({area}) 555-{line}", f"{area}-555-{line}", f"+1 {area} 555 {line}", f"{area}.555.{line}",
        f"+44 20 7946 0{d(3)}", f"020 7946 0{d(3)}", f"+49 30 {d(4)} {d(4)}",
        f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}", f"+86 10 {d(4)} {d(4)}", f"+61 2 {d(4)} {d(4)}",
    ))


def email_address(rng: random.Random, world: World, domain: str) -> str:
    """An address at a reserved example domain, often built from a known person's name."""
    if rng.random() < 0.6:
        first, last = rng.choice(world.people).name.lower().split()
    else:
        first, last = rng.choice(KIDS)[0].lower(), rng.choice(("smith", "lee", "garcia", "chen", "muller"))
    return rng.choice((
        f"{first}.{last}@example.org", f"{first[0]}{last}@mail.example.com",
        f"{first}_{last}{rng.randint(1, 99)}@example.net", f"{first}{rng.randint(1950, 2010)}@inbox.example.com",
        f"{rng.choice(('info', 'contact', 'hello', 'press', 'support'))}@{domain}",
    ))


PII_LINES_EN = ("For more information, write to {email}.", "Questions or corrections? Contact {email} or call {phone}.",
                "You can reach the author at {email}.", "Call us on {phone} from Monday to Friday.",
                "Booking line: {phone}", "Tel. {phone} | E-mail: {email}",
                "Send your photos to {email} and we may share them here.",
                "If you have questions, my number is {phone}.")
PII_LINES_ZH = ("如有问题，请发邮件至{email}或致电{phone}。", "联系电话：{phone}", "投稿邮箱：{email}")
PII_LINES_SPAM = ("CALL NOW {phone} !!! OPERATORS WAITING", "Email {email} for a FREE sample $$$")


def _pii_lines(rng: random.Random, world: World, domain: str, lang: str, spam: bool = False):
    """1-2 lines holding PII, and the exact PII strings in them."""
    bank = PII_LINES_SPAM if spam else (PII_LINES_ZH if lang == "zh" else PII_LINES_EN)
    lines, pii = [], []
    for _ in range(1 if rng.random() < 0.75 else 2):
        email, phone = email_address(rng, world, domain), phone_number(rng)
        template = rng.choice(bank)
        lines.append(template.format(email=email, phone=phone))
        pii += [x for key, x in (("{email}", email), ("{phone}", phone)) if key in template]
    return lines, tuple(pii)


# ----------------------------------------------------------------------------- sites and boilerplate

@dataclass(frozen=True)
class Site:
    name: str
    domain: str
    path: str       # a pattern with {slug} and/or {n}
    lang: str       # the language of the site's boilerplate


SITES = {
    ("en", "encyclopedia"): (Site("WikiWorld", "wikiworld.example.org", "/wiki/{slug}", "en"),
                             Site("Open Atlas", "openatlas.example.com", "/articles/{slug}", "en"),
                             Site("Facts4Kids", "facts4kids.example.net", "/learn/{slug}.html", "en")),
    ("en", "story"): (Site("Bedtime Tales", "bedtime-tales.example.com", "/stories/{slug}", "en"),
                      Site("StoryNook", "storynook.example.org", "/read/{n}/{slug}", "en")),
    ("en", "forum"): (Site("AskAnything", "askanything.example.net", "/t/{slug}/{n}", "en"),
                      Site("Trivia Corner", "trivia-corner.example.com", "/forum/thread-{n}", "en")),
    ("en", "arithmetic"): (Site("MathPlay", "mathplay.example.org", "/worksheets/{slug}-{n}", "en"),
                           Site("Homework Help", "homework-help.example.com", "/math/{n}", "en")),
    ("zh", "encyclopedia"): (Site("百科世界", "baike.example.cn", "/item/{n}", "zh"),),
    ("zh", "story"): (Site("故事屋", "gushi.example.cn", "/story/{n}", "zh"),),
    ("zh", "forum"): (Site("问答社区", "wenda.example.cn", "/question/{n}", "zh"),),
    ("zh", "arithmetic"): (Site("数学乐园", "shuxue.example.cn", "/lianxi/{n}", "zh"),),
}
REPRINT_SITES = {
    "en": (Site("Daily Digest", "dailydigest.example.net", "/{n}/{slug}", "en"),
           Site("ContentHub", "contenthub.example.com", "/p/{n}", "en"),
           Site("Mirror Archive", "mirror-archive.example.org", "/copy/{slug}", "en")),
    "zh": (Site("转载网", "zhuanzai.example.cn", "/a/{n}", "zh"),),
}
SPAM_SITES = (Site("SUPER DEALS", "superdeals.example.biz", "/offer/{n}", "en"),
              Site("Lucky Star Casino", "luckystar-casino.example.com", "/bonus-{n}", "en"),
              Site("Pharma Direct", "pharma-direct.example.info", "/buy/{slug}", "en"))
MISC_SITES = (Site("My Homepage", "myhomepage.example.net", "/~user{n}/", "en"),
              Site("Free Pages", "freepages.example.org", "/site/{n}/index.html", "en"))
FOREIGN_SITES = {"de": Site("Reisen und Kultur", "reisen.example.de", "/artikel/{n}", "de"),
                 "es": Site("Viajes y Cultura", "viajes.example.es", "/articulo/{n}", "es"),
                 "fr": Site("Voyages et Culture", "voyages.example.fr", "/article/{n}", "fr")}

CHROME = {
    "en": {"nav": ("Home", "Topics", "Popular", "About", "Contact", "Log in", "Sign up", "Help"),
           "cookie": ("We use cookies to give you the best experience. By using this site you agree to our cookie policy.",
                      "This website uses cookies. Accept all cookies?"),
           "accept": "Accept all",
           "share": ("Share on Facebook", "Share on X", "Share on WhatsApp", "Share by email", "Print this page"),
           "related": ("Related articles", "You may also like", "Most popular"),
           "newsletter": "Subscribe to our newsletter and never miss an update!",
           "footer": ("© {year} {site}. All rights reserved.", "Privacy policy · Terms of use · Cookie settings"),
           "byline": ("Updated {day} March {year} · {m} min read", "By the {site} team · {m} min read")},
    "zh": {"nav": ("首页", "热门", "分类", "关于我们", "联系我们", "登录", "注册"),
           "cookie": ("本网站使用Cookie来改善您的浏览体验。继续浏览即表示您同意我们的Cookie政策。",),
           "accept": "接受",
           "share": ("分享到微博", "分享到微信", "分享到QQ空间", "复制链接"),
           "related": ("相关文章", "猜你喜欢", "热门推荐"),
           "newsletter": "订阅我们的邮件，第一时间获取更新！",
           "footer": ("版权所有 © {year} {site}。保留所有权利。", "隐私政策 | 使用条款 | 联系我们"),
           "byline": ("更新于{year}年3月{day}日 · 阅读约{m}分钟",)},
    "de": {"nav": ("Startseite", "Themen", "Über uns", "Kontakt", "Anmelden"),
           "cookie": ("Wir verwenden Cookies, um Ihnen das beste Erlebnis zu bieten.",), "accept": "Alle akzeptieren",
           "share": ("Auf Facebook teilen", "Per E-Mail teilen"), "related": ("Das könnte Sie auch interessieren",),
           "newsletter": "Abonnieren Sie unseren Newsletter!",
           "footer": ("© {year} {site}. Alle Rechte vorbehalten.", "Datenschutz · Impressum"),
           "byline": ("Aktualisiert am {day}. März {year}",)},
    "es": {"nav": ("Inicio", "Temas", "Sobre nosotros", "Contacto", "Entrar"),
           "cookie": ("Utilizamos cookies para mejorar su experiencia.",), "accept": "Aceptar todo",
           "share": ("Compartir en Facebook", "Compartir por correo"), "related": ("También le puede interesar",),
           "newsletter": "¡Suscríbase a nuestro boletín!",
           "footer": ("© {year} {site}. Todos los derechos reservados.", "Privacidad · Aviso legal"),
           "byline": ("Actualizado el {day} de marzo de {year}",)},
    "fr": {"nav": ("Accueil", "Thèmes", "À propos", "Contact", "Connexion"),
           "cookie": ("Nous utilisons des cookies pour améliorer votre expérience.",), "accept": "Tout accepter",
           "share": ("Partager sur Facebook", "Partager par e-mail"), "related": ("Vous aimerez aussi",),
           "newsletter": "Abonnez-vous à notre lettre d'information !",
           "footer": ("© {year} {site}. Tous droits réservés.", "Confidentialité · Mentions légales"),
           "byline": ("Mis à jour le {day} mars {year}",)},
}
SCRIPTS = ("window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);} gtag('js', new Date());",
           "document.addEventListener('DOMContentLoaded', function () { initMenu(); loadComments(); });",
           "var ads = document.querySelectorAll('.ad-slot'); ads.forEach(function (a) { a.dataset.loaded = '1'; });")
STYLES = ("body{font-family:sans-serif;margin:0} nav ul{display:flex;gap:1em}",
          "article p{line-height:1.6} .cookie-banner{position:fixed;bottom:0}",
          ".share a{margin-right:8px} footer{color:#777;font-size:small}")


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def article_html(title: str, lines: list[str], rng: random.Random, chrome: dict, site: Site) -> str:
    """The ``<article>`` element: the page's content."""
    parts = ["<article>", f"<h1>{_e(title)}</h1>"]
    if rng.random() < 0.4:
        byline = rng.choice(chrome["byline"]).format(day=rng.randint(1, 28), year=rng.randint(2015, 2025),
                                                     m=rng.randint(2, 9), site=site.name)
        parts.append(f'<div class="byline"><span>{_e(byline)}</span></div>')
    parts += [f"<p>{_e(line)}</p>" for line in lines]
    parts.append("</article>")
    return "\n".join(parts)


def page_html(site: Site, title: str, article: str, rng: random.Random, related: list[str]) -> str:
    """A whole page: the article wrapped in the site's boilerplate, varied per page."""
    ch = CHROME[site.lang]
    year = rng.randint(2015, 2025)
    lang_attr = {"zh": "zh-CN"}.get(site.lang, site.lang)
    nav = rng.sample(ch["nav"], rng.randint(3, len(ch["nav"])))
    out = ["<!DOCTYPE html>", f'<html lang="{lang_attr}">', "<head>", '<meta charset="utf-8">',
           f"<title>{_e(title)} | {_e(site.name)}</title>", f"<style>{rng.choice(STYLES)}</style>",
           f"<script>{rng.choice(SCRIPTS)}</script>", "</head>", "<body>",
           '<header class="site-header">', f'<a class="logo" href="/">{_e(site.name)}</a>',
           '<nav class="menu"><ul>' + "".join(f'<li><a href="/{i}">{_e(x)}</a></li>' for i, x in enumerate(nav))
           + "</ul></nav>", "</header>"]
    if rng.random() < 0.5:
        out.append(f'<div class="cookie-banner"><p>{_e(rng.choice(ch["cookie"]))}</p>'
                   f'<button>{_e(ch["accept"])}</button></div>')
    out += ["<main>", article]
    if rng.random() < 0.6:
        shares = rng.sample(ch["share"], rng.randint(2, len(ch["share"])))
        out.append('<div class="share">' + " ".join(f'<a href="#share">{_e(s)}</a>' for s in shares) + "</div>")
    if related and rng.random() < 0.7:
        out.append(f'<aside class="related"><h2>{_e(rng.choice(ch["related"]))}</h2><ul>'
                   + "".join(f'<li><a href="/r/{i}">{_e(t)}</a></li>' for i, t in enumerate(related)) + "</ul></aside>")
    out.append("</main>")
    if rng.random() < 0.4:
        out.append(f'<div class="newsletter"><p>{_e(ch["newsletter"])}</p><input type="email"></div>')
    out.append("<footer>" + "".join(f"<p>{_e(x.format(year=year, site=site.name))}</p>" for x in ch["footer"])
               + "</footer>")
    out += ["</body>", "</html>"]
    return "\n".join(out)


# ----------------------------------------------------------------------------- noise pages

SPAM_PRODUCTS = ("WATCHES", "PILLS", "SUNGLASSES", "HANDBAGS", "PHONES", "SNEAKERS", "DIET TEA",
                 "CRYPTO COINS", "VIAGRA", "FOLLOWERS")
SPAM_LINES = ("BUY CHEAP {P} ONLINE!!! BEST PRICE GUARANTEED $$$",
              "CLICK HERE >>> {P} {P} {P} 90% OFF TODAY ONLY",
              "cheap {p} cheap {p} best {p} discount {p} free shipping {p} sale",
              "WIN BIG at Lucky Star Casino!!! 500% BONUS + 200 FREE SPINS $$$ CLICK HERE NOW",
              "No prescription needed! Order {P} now and save $$$. Fast delivery worldwide!!!",
              "Make $5000 a week from home!!! Click here to learn the SECRET they don't want you to know",
              "hot deals hot deals hot deals {p} {p} online shop best price",
              "Limited offer!!! Only {n} left in stock. BUY NOW $$$",
              "{city} hotels cheap {city} hotels best {city} hotel deals cheap flights {city} {city} {city}",
              "Congratulations!!! You are our {n}th visitor. CLICK HERE to claim your FREE {P}!!!")
SPAM_LINES_ZH = ("点击这里！！！免费领取大奖！！！", "低价出售{P}，全网最低价，马上购买$$$",
                 "在线赌场，注册即送500%奖金！！！点击进入", "日赚5000元，在家也能轻松赚钱！！！")
SHORT_LINES = ("Page not found. The page you are looking for does not exist.", "Coming soon!",
               "This page is under construction. Please come back later.",
               "Access denied. Please log in to continue.", "Thanks for visiting!", "Loading...",
               "Error 500: something went wrong. Please try again.", "Welcome to my homepage.",
               "Nothing here yet.", "This account has been suspended.")
SHORT_LINES_ZH = ("页面不存在。", "网站正在建设中，敬请期待。", "请登录后查看。")
REPEATED_LINES = ("Click here to see the price!", "Please enable JavaScript to view the comments.",
                  "Advertisement", "Read more", "Subscribe now for free updates!", "Loading comments...",
                  "Sponsored content", "Back to top")
FOREIGN = {
    "de": ("Willkommen auf unserer Webseite!", "Hier finden Sie Informationen über Reisen, Kultur und Geschichte.",
           "Die Hauptstadt von Frankreich ist Paris.", "Berlin ist die Hauptstadt von Deutschland.",
           "Unser Team hilft Ihnen gerne weiter.", "Bitte melden Sie sich an, um Kommentare zu schreiben.",
           "Das Wetter ist heute sonnig und warm.", "Die Donau ist einer der längsten Flüsse Europas.",
           "Im Sommer fahren viele Familien an die Ostsee.", "Der Zug nach München fährt um acht Uhr ab.",
           "Kinder lernen in der Schule lesen und schreiben.", "Vielen Dank für Ihren Besuch!",
           "Die Kinder spielen im Garten mit dem Hund.", "Mein Bruder wohnt seit zwei Jahren in Hamburg."),
    "es": ("¡Bienvenidos a nuestro sitio web!", "Aquí encontrará información sobre viajes, cultura e historia.",
           "La capital de España es Madrid.", "Madrid es una ciudad muy bonita.",
           "El río Amazonas es el más caudaloso del mundo.", "Nuestro equipo está siempre a su disposición.",
           "Por favor, inicie sesión para dejar un comentario.", "Hoy hace sol y mucho calor.",
           "Los niños juegan en el parque con su perro.", "Muchas gracias por su visita.",
           "El tren a Sevilla sale a las ocho de la mañana.", "Mi hermana vive en Buenos Aires desde hace dos años.",
           "En verano muchas familias van a la playa."),
    "fr": ("Bienvenue sur notre site !", "Vous trouverez ici des informations sur les voyages, la culture et l'histoire.",
           "La capitale de la France est Paris.", "Lyon est une grande ville française.", "La Seine traverse Paris.",
           "Notre équipe est à votre disposition.", "Veuillez vous connecter pour laisser un commentaire.",
           "Il fait beau et chaud aujourd'hui.", "Les enfants jouent dans le jardin avec le chien.",
           "Merci beaucoup pour votre visite.", "Le train pour Marseille part à huit heures.",
           "Ma sœur habite à Montréal depuis deux ans.", "En été, beaucoup de familles partent à la mer."),
}


def spam_lines(rng: random.Random, world: World) -> tuple[list[str], str]:
    if rng.random() < 0.15:
        return [rng.choice(SPAM_LINES_ZH).format(P=rng.choice(("手表", "药品", "名牌包")))
                for _ in range(rng.randint(3, 8))], "zh"
    lines = []
    for _ in range(rng.randint(4, 12)):
        prod = rng.choice(SPAM_PRODUCTS)
        lines.append(rng.choice(SPAM_LINES).format(P=prod, p=prod.lower(), n=rng.randint(2, 999),
                                                   city=rng.choice(world.countries).capital))
    return lines, "en"


def gibberish_lines(rng: random.Random) -> list[str]:
    def word() -> str:
        style = rng.random()
        if style < 0.4:  # keyboard mash
            row = rng.choice(("qwertyuiop", "asdfghjkl", "zxcvbnm"))
            start = rng.randrange(len(row) - 2)
            return row[start:start + rng.randint(3, len(row) - start)]
        if style < 0.8:  # random letters
            return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 11)))
        return "".join(rng.choice(("zu", "kra", "pli", "vo", "xen", "gar", "bl", "qu", "ty", "mmf"))
                       for _ in range(rng.randint(1, 4)))
    return [" ".join(word() for _ in range(rng.randint(8, 30))) for _ in range(rng.randint(2, 7))]


def short_lines(rng: random.Random, world: World) -> tuple[list[str], str]:
    r = rng.random()
    if r < 0.15:
        return [rng.choice(SHORT_LINES_ZH)], "zh"
    if r < 0.35:  # a stub: one fact and nothing else
        return [P.capital(rng.choice(world.countries))], "en"
    return rng.sample(SHORT_LINES, rng.randint(1, 2)), "en"


def repeated_lines(rng: random.Random, english_docs: list[Document]) -> list[str]:
    doc = rng.choice(english_docs)
    spam = rng.choice(REPEATED_LINES) if rng.random() < 0.7 else doc.lines[0]
    lines = doc.lines[: rng.randint(1, 2)]
    for _ in range(rng.randint(10, 30)):
        lines.append(spam)
        if rng.random() < 0.15:
            lines.append(rng.choice(REPEATED_LINES))
    return lines


def foreign_lines(rng: random.Random, lang: str) -> list[str]:
    bank = FOREIGN[lang]
    return [" ".join(rng.sample(bank, rng.randint(1, 3))) for _ in range(rng.randint(3, 7))]


# ----------------------------------------------------------------------------- the crawl

def _slug(title: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return s[:60] or "page"


class _Urls:
    """Hands out unique urls for a site's path pattern."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def __call__(self, site: Site, title: str) -> str:
        slug, i = _slug(title), 1
        while True:
            url = f"https://{site.domain}" + site.path.format(slug=slug, n=self.rng.randint(1000, 999999))
            if url not in self.used:
                self.used.add(url)
                return url
            i += 1  # same title on the same site: "france-2", like a wiki would
            slug = f"{_slug(title)}-{i}"


def _later(t0: float, rng: random.Random) -> float:
    """A crawl time strictly after ``t0`` (and before 1)."""
    return t0 + (1 - t0) * (0.001 + 0.998 * rng.random())


def _with_pii(lines: list[str], rng: random.Random, world: World, site: Site, lang: str,
              spam: bool = False) -> tuple[list[str], tuple[str, ...]]:
    pii_lines, pii = _pii_lines(rng, world, site.domain, lang, spam)
    lines = list(lines)
    for line in pii_lines:
        lines.insert(rng.randint(0, len(lines)), line)
    return lines, pii


@lru_cache(maxsize=2)
def _crawl(world: World) -> tuple[CrawlPage, ...]:
    docs = tuple(documents(world))
    rng = component_rng(world.seed, "crawl")
    urls = _Urls(component_rng(world.seed, "crawl", "urls"))
    titles = [d.title for d in docs]
    n_total = round(len(docs) / (1 - sum(SHARES.values())))
    count = {k: max(1, round(share * n_total)) for k, share in SHARES.items()}

    def related() -> list[str]:
        return rng.sample(titles, rng.randint(2, 5))

    # (crawl time, page): originals and noise are spread over [0, 1); a copy is found
    # some time after its original.
    timed: list[tuple[float, CrawlPage]] = []
    originals: dict[str, tuple[float, CrawlPage, str]] = {}  # doc_id -> (time, page, article)
    for d in docs:
        site = rng.choice(SITES[(d.lang, d.kind)])
        lines, pii = d.lines, ()
        if rng.random() < PII_RATE:
            lines, pii = _with_pii(lines, rng, world, site, d.lang)
        article = article_html(d.title, lines, rng, CHROME[site.lang], site)
        page = CrawlPage(urls(site, d.title), page_html(site, d.title, article, rng, related()),
                         PageLabel(d.doc_id, "good", d.lang, pii=pii))
        t = rng.random()
        originals[d.doc_id] = (t, page, article)
        timed.append((t, page))

    for d in rng.sample(docs, count["exact_dup"]):
        t0, original, article = originals[d.doc_id]
        site = rng.choice(REPRINT_SITES[d.lang])
        page = CrawlPage(urls(site, d.title), page_html(site, d.title, article, rng, related()),
                         replace(original.label, exact_dup_of=original.url))
        timed.append((_later(t0, rng), page))

    # Near-duplicates are English only: word shingles need spaces between words.
    candidates = [d for d in docs if d.lang == "en" and len(d.text.split()) >= 50]
    for d in rng.sample(candidates, min(count["near_dup"], len(candidates))):
        t0, original, _ = originals[d.doc_id]
        site = rng.choice(REPRINT_SITES["en"] + SITES[("en", d.kind)])
        lines, pii = near_duplicate(d.text, rng).split("\n"), ()
        if rng.random() < PII_RATE:
            lines, pii = _with_pii(lines, rng, world, site, "en")
        article = article_html(d.title, lines, rng, CHROME[site.lang], site)
        page = CrawlPage(urls(site, d.title), page_html(site, d.title, article, rng, related()),
                         PageLabel(d.doc_id, "good", "en", near_dup_of=original.url, pii=pii))
        timed.append((_later(t0, rng), page))

    def noise(kind: str, site: Site, title: str, lines: list[str], lang: str, pii_rate: float,
              spam: bool = False) -> None:
        pii = ()
        if rng.random() < pii_rate:
            lines, pii = _with_pii(lines, rng, world, site, lang, spam)
        article = article_html(title, lines, rng, CHROME[site.lang], site)
        page = CrawlPage(urls(site, title), page_html(site, title, article, rng, related()),
                         PageLabel(None, kind, lang, pii=pii))
        timed.append((rng.random(), page))

    for _ in range(count["spam"]):
        lines, lang = spam_lines(rng, world)
        noise("spam", rng.choice(SPAM_SITES), lines[0][:40], lines, lang, 0.3, spam=True)
    for _ in range(count["gibberish"]):
        lines = gibberish_lines(rng)
        noise("gibberish", rng.choice(MISC_SITES), " ".join(lines[0].split()[:3]), lines, "und", 0.0)
    for _ in range(count["short"]):
        lines, lang = short_lines(rng, world)
        noise("short", rng.choice(MISC_SITES), lines[0][:30], lines, lang, 0.1)
    english_docs = [d for d in docs if d.lang == "en"]
    for _ in range(count["repeated_lines"]):
        lines = repeated_lines(rng, english_docs)
        noise("repeated_lines", rng.choice(MISC_SITES + SITES[("en", "forum")]), lines[0][:40], lines, "en", 0.1)
    for _ in range(count["foreign"]):
        lang = rng.choice(("de", "es", "fr"))
        lines = foreign_lines(rng, lang)
        noise("foreign", FOREIGN_SITES[lang], lines[0][:40], lines, lang, 0.0)

    timed.sort(key=lambda tp: (tp[0], tp[1].url))
    return tuple(page for _, page in timed)


def crawl(world: World) -> list[CrawlPage]:
    """The world's noisy web crawl, with hidden labels (see the module docstring)."""
    return list(_crawl(world))
