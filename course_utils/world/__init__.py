"""The synthetic world: every chapter's data, generated offline, deterministically, in seconds.

>>> from course_utils.world import build_world, documents, crawl
>>> world = build_world()           # seed = config.DEFAULT_SEED, sized by the profile
>>> docs = documents(world)          # the clean corpus (what cleaning should recover)
>>> pages = crawl(world)             # the same documents as a noisy, labelled web crawl

Modules, in reading order: ``facts`` (countries, people, sizes), ``phrases`` (the one
sentence that states each fact), ``corpus`` (the documents), ``web`` (the crawl),
``questions`` (the many ways people ask, some held out), ``styles`` (the ways an answer can be
written, terse to helpful), ``datasets`` (chat, honesty, tools, probes, verifiable tasks),
``preferences`` and ``domain``.
"""
from .facts import (COUNTRIES, SPOTLIGHT_UNKNOWN, Country, Person, Work, World, WorldSizeError, WorldSizes,
                    build_world, check_sizes, default_sizes)
from .phrases import CLOZE_SEPARATOR
from .questions import FactQA, contains_answer, country_qa, person_qa
from .corpus import DOC_KINDS, Document, corpus_text, documents
from .web import PAGE_KINDS, CrawlPage, PageLabel, crawl, jaccard, word_shingles
from .datasets import (ALL_CLOZE_RELATIONS, DEFAULT_CLOZE_RELATIONS, DEFAULT_QA_RELATIONS, DIFFICULTIES,
                       IDK_MARKER, Task, chat_examples, cloze_probes, honesty_examples,
                       idk_probes, qa_probes, tool_examples, tool_probes, verifiable_tasks,
                       worked_solution, answer_sentence)
from .preferences import (PreferencePair, PreferencePrompt, describe_answer, judge, preference_pairs,
                          preference_prompts, rate_answers, rater_noise_ceiling, rubric_score)
from .domain import DomainCorpus, domain_corpus

__all__ = [
    "build_world", "default_sizes", "check_sizes", "World", "WorldSizes", "WorldSizeError", "Country", "Person",
    "Work", "COUNTRIES",
    "SPOTLIGHT_UNKNOWN",
    "documents", "corpus_text", "Document", "DOC_KINDS",
    "crawl", "CrawlPage", "PageLabel", "PAGE_KINDS", "word_shingles", "jaccard",
    "FactQA", "person_qa", "country_qa",
    "cloze_probes", "qa_probes", "idk_probes", "CLOZE_SEPARATOR", "ALL_CLOZE_RELATIONS",
    "DEFAULT_CLOZE_RELATIONS", "DEFAULT_QA_RELATIONS", "contains_answer", "IDK_MARKER",
    "chat_examples", "honesty_examples", "tool_examples", "tool_probes",
    "verifiable_tasks", "Task", "DIFFICULTIES", "worked_solution", "answer_sentence",
    "preference_prompts", "preference_pairs", "PreferencePrompt", "PreferencePair",
    "rubric_score", "describe_answer", "judge", "rater_noise_ceiling", "rate_answers",
    "domain_corpus", "DomainCorpus",
]
