"""The embedded world: a seeded synthetic retrieval benchmark that needs no download.

It mirrors the real study's shape at toy scale. Entities (a given name plus a shared family name)
have attributes; a document states one attribute of one entity. Queries name the attribute with
*different* words than documents do, so an untrained encoder can only match the entity name and
must learn the query-to-document vocabulary from the training triplets. Every training triplet's
hard negative is another attribute of the same entity: a close negative, as in MS MARCO's mined
hard negatives, and entities sharing a family name make close in-batch negatives more likely in
larger batches.

Evaluation sets, each with its own character (like the BEIR sets they stand in for):

* ``factoid``  - short question, one relevant passage (SciFact / NQ).
* ``graded``   - graded qrels: 2 for the exact attribute, 1 for related attributes (TREC-COVID, NFCorpus).
* ``counter``  - the query is an argument whose own text sits in the corpus under the query's id; the
                 relevant document is the counter-argument (ArguAna: ``ignore_identical_ids`` matters).
* ``longdoc``  - long multi-fact documents from an unseen domain vocabulary, the answer at a random
                 position (MLDR: truncation length matters).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ablate.beir import RetrievalDataset

WORLD_VERSION = "1"

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "th", "br", "kr", "st"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "", "n", "r", "s", "l", "x"]


@dataclass(frozen=True)
class WorldSize:
    """How big the embedded world is. ``mini`` uses the defaults."""

    n_family: int = 40
    n_given: int = 300
    n_attributes: int = 24
    n_values: int = 400
    n_filler: int = 600
    train_entities: int = 800
    train_triplets: int = 60_000
    counter_share: float = 0.2
    eval_entities: int = 80
    factoid_queries: int = 400
    graded_queries: int = 250
    counter_queries: int = 400
    longdoc_entities: int = 120
    longdoc_queries: int = 300
    longdoc_docs_per_entity: int = 4


@dataclass(frozen=True)
class World:
    seed: int
    size: WorldSize
    train_triplets: list[tuple[str, str, str]]
    datasets: dict[str, RetrievalDataset]

    @property
    def revision(self) -> str:
        """Content hash: the dataset revision recorded with every score."""
        return _world_revision(self.seed, self.size)

    def texts(self) -> list[str]:
        """Every text of the world, in a stable order: the tokenizer's training corpus."""
        out = [t for triplet in self.train_triplets for t in triplet]
        for ds in self.datasets.values():
            out.extend(ds.queries.values())
            out.extend(doc["text"] for doc in ds.corpus.values())
        return out


def _world_revision(seed: int, size: WorldSize) -> str:
    payload = json.dumps({"v": WORLD_VERSION, "seed": seed, "size": size.__dict__}, sort_keys=True)
    return "world-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


class _Lexicon:
    """Unique pseudo-words drawn from syllables, so the WordPiece tokenizer learns sub-word units."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._used: set[str] = set()

    def words(self, n: int, syllables: tuple[int, int] = (2, 3)) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            k = int(self._rng.integers(syllables[0], syllables[1] + 1))
            word = "".join(
                _ONSETS[self._rng.integers(len(_ONSETS))] + _VOWELS[self._rng.integers(len(_VOWELS))]
                for _ in range(k)
            ) + _CODAS[self._rng.integers(len(_CODAS))]
            if word not in self._used:
                self._used.add(word)
                out.append(word)
        return out


@dataclass
class _Vocabulary:
    family: list[str]
    given: list[str]
    attr_doc: list[tuple[str, str]]      # how documents name each attribute
    attr_query: list[tuple[str, str]]    # how queries name it: disjoint words
    values: list[str]
    filler: list[str]
    ood_filler: list[str]                 # long-document domain, never seen in training
    question: list[str]
    counter_marker: list[str]


def _vocabulary(rng: np.random.Generator, size: WorldSize) -> _Vocabulary:
    lex = _Lexicon(rng)
    return _Vocabulary(
        family=lex.words(size.n_family),
        given=lex.words(size.n_given),
        attr_doc=list(zip(lex.words(size.n_attributes), lex.words(size.n_attributes))),
        attr_query=list(zip(lex.words(size.n_attributes), lex.words(size.n_attributes))),
        values=lex.words(size.n_values),
        filler=lex.words(size.n_filler, (1, 2)),
        ood_filler=lex.words(size.n_filler, (3, 4)),
        question=lex.words(6, (1, 1)),
        counter_marker=lex.words(3, (1, 2)),
    )


class _Writer:
    """Turns (entity, attribute) facts into query and document texts."""

    def __init__(self, vocab: _Vocabulary, rng: np.random.Generator, size: WorldSize):
        self.v = vocab
        self.rng = rng
        self.size = size
        # Each entity's attribute values are fixed, so every text about a fact agrees.
        self._values: dict[tuple[int, int], np.ndarray] = {}

    def name(self, entity: tuple[int, int]) -> str:
        return f"{self.v.given[entity[0]]} {self.v.family[entity[1]]}"

    def value(self, entity: tuple[int, int], attribute: int) -> str:
        if entity not in self._values:
            self._values[entity] = self.rng.integers(len(self.v.values), size=self.size.n_attributes)
        return self.v.values[int(self._values[entity][attribute])]

    def _filler(self, n: int, pool: list[str]) -> str:
        return " ".join(pool[i] for i in self.rng.integers(len(pool), size=n))

    def fact(self, entity, attribute, filler_pool=None, n_filler=(4, 9)) -> str:
        pool = filler_pool or self.v.filler
        d1, d2 = self.v.attr_doc[attribute]
        n = int(self.rng.integers(*n_filler))
        return f"{self.name(entity)} {d1} {d2} {self.value(entity, attribute)} {self._filler(n, pool)}"

    def question(self, entity, attribute) -> str:
        q1, q2 = self.v.attr_query[attribute]
        w = self.v.question[int(self.rng.integers(len(self.v.question)))]
        return f"{w} {q1} {q2} {self.name(entity)}"

    def counter(self, entity, attribute) -> str:
        marker = self.v.counter_marker[int(self.rng.integers(len(self.v.counter_marker)))]
        return f"{marker} {self.fact(entity, attribute)}"


def _counterpart(attribute: int) -> int:
    """Attributes come in argument/counter-argument pairs (0<->1, 2<->3, ...)."""
    return attribute ^ 1


def _draw_entities(rng, size: WorldSize, n: int, taken: set) -> list[tuple[int, int]]:
    out = []
    while len(out) < n:
        entity = (int(rng.integers(size.n_given)), int(rng.integers(size.n_family)))
        if entity not in taken:
            taken.add(entity)
            out.append(entity)
    return out


def generate(seed: int = 0, size: WorldSize | None = None) -> World:
    """Build the world deterministically from ``seed`` (same seed, same texts, byte for byte).

    Vocabulary, entity pools, training triplets and each evaluation set draw from their own random
    streams, so a larger training pool leaves the evaluation sets unchanged.
    """
    size = size or WorldSize()
    vocab = _vocabulary(np.random.default_rng([seed, 0]), size)
    entity_rng = np.random.default_rng([seed, 1])
    taken: set = set()
    train_entities = _draw_entities(entity_rng, size, size.train_entities, taken)
    pools = {name: _draw_entities(entity_rng, size, n, taken) for name, n in (
        ("factoid", size.eval_entities), ("graded", size.eval_entities), ("counter", size.eval_entities),
        ("longdoc", size.longdoc_entities))}

    rng = np.random.default_rng([seed, 2])
    writer = _Writer(vocab, rng, size)
    triplets = []
    for _ in range(size.train_triplets):
        entity = train_entities[int(rng.integers(len(train_entities)))]
        attribute = int(rng.integers(size.n_attributes))
        if rng.random() < size.counter_share:
            target = _counterpart(attribute)
            negative = _other_attribute(rng, size, {attribute, target})
            triplets.append((writer.fact(entity, attribute), writer.counter(entity, target),
                             writer.counter(entity, negative)))
        else:
            negative = _other_attribute(rng, size, {attribute})
            triplets.append((writer.question(entity, attribute), writer.fact(entity, attribute),
                             writer.fact(entity, negative)))

    builders = {"factoid": _factoid, "graded": _graded, "counter": _counter, "longdoc": _longdoc}
    datasets = {}
    for stream, (name, build) in enumerate(builders.items(), start=3):
        rng = np.random.default_rng([seed, stream])
        datasets[name] = _with_revision(build(rng, _Writer(vocab, rng, size), size, pools[name]))
    return World(seed=seed, size=size, train_triplets=triplets, datasets=datasets)


def _with_revision(ds: RetrievalDataset) -> RetrievalDataset:
    """Stamp a content hash as the dataset revision, so any change to the texts shows in the results."""
    digest = hashlib.sha256(json.dumps([WORLD_VERSION, ds.corpus, ds.queries, ds.qrels], sort_keys=True)
                            .encode()).hexdigest()[:12]
    return RetrievalDataset(ds.name, ds.corpus, ds.queries, ds.qrels, ds.character, f"{ds.name}-{digest}")


def _other_attribute(rng, size: WorldSize, exclude: set[int]) -> int:
    while True:
        a = int(rng.integers(size.n_attributes))
        if a not in exclude:
            return a


def _entity_corpus(writer: _Writer, entities, size: WorldSize, prefix: str) -> dict[str, dict[str, str]]:
    return {
        f"{prefix}{e}-{a}": {"title": "", "text": writer.fact(entity, a)}
        for e, entity in enumerate(entities)
        for a in range(size.n_attributes)
    }


def _sample_facts(rng, n_entities: int, size: WorldSize, n: int) -> list[tuple[int, int]]:
    pairs = [(e, a) for e in range(n_entities) for a in range(size.n_attributes)]
    pick = rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)
    return [pairs[int(i)] for i in sorted(pick)]


def _factoid(rng, writer, size, entities) -> RetrievalDataset:
    corpus = _entity_corpus(writer, entities, size, "d")
    queries, qrels = {}, {}
    for e, a in _sample_facts(rng, len(entities), size, size.factoid_queries):
        qid = f"q{e}-{a}"
        queries[qid] = writer.question(entities[e], a)
        qrels[qid] = {f"d{e}-{a}": 1}
    return RetrievalDataset("factoid", corpus, queries, qrels,
                            "short factoid questions, one relevant passage (like SciFact)")


def _graded(rng, writer, size, entities) -> RetrievalDataset:
    corpus = _entity_corpus(writer, entities, size, "d")
    group = 4  # attributes come in related groups of four; relatives earn grade 1
    queries, qrels = {}, {}
    for e, a in _sample_facts(rng, len(entities), size, size.graded_queries):
        qid = f"q{e}-{a}"
        queries[qid] = writer.question(entities[e], a)
        start = (a // group) * group
        rels = {f"d{e}-{b}": 1 for b in range(start, min(start + group, size.n_attributes))}
        rels[f"d{e}-{a}"] = 2
        qrels[qid] = rels
    return RetrievalDataset("graded", corpus, queries, qrels,
                            "graded relevance 0-2, several relevant passages (like TREC-COVID)")


def _counter(rng, writer, size, entities) -> RetrievalDataset:
    corpus = {}
    for e, entity in enumerate(entities):
        for a in range(size.n_attributes):
            corpus[f"a{e}-{a}"] = {"title": "", "text": writer.fact(entity, a)}
            corpus[f"c{e}-{a}"] = {"title": "", "text": writer.counter(entity, a)}
    queries, qrels = {}, {}
    for e, a in _sample_facts(rng, len(entities), size, size.counter_queries):
        qid = f"a{e}-{a}"  # the query *is* this corpus document, under the same id
        queries[qid] = corpus[qid]["text"]
        qrels[qid] = {f"c{e}-{_counterpart(a)}": 1}
    return RetrievalDataset("counter", corpus, queries, qrels,
                            "argument -> counter-argument; each query's own text is in the corpus (like ArguAna)")


def _longdoc(rng, writer, size, entities) -> RetrievalDataset:
    k = size.longdoc_docs_per_entity
    corpus, holder = {}, {}
    for e, entity in enumerate(entities):
        attributes = rng.permutation(size.n_attributes)
        for j, chunk in enumerate(np.array_split(attributes, k)):
            doc_id = f"d{e}-{j}"
            sentences = []
            for a in chunk:
                holder[(e, int(a))] = doc_id
                sentences.append(writer.fact(entity, int(a), writer.v.ood_filler, (10, 25)))
            corpus[doc_id] = {"title": "", "text": " . ".join(sentences)}
    queries, qrels = {}, {}
    for e, a in _sample_facts(rng, len(entities), size, size.longdoc_queries):
        qid = f"q{e}-{a}"
        queries[qid] = writer.question(entities[e], a)
        qrels[qid] = {holder[(e, a)]: 1}
    return RetrievalDataset("longdoc", corpus, queries, qrels,
                            "long multi-fact documents, unseen domain words (like MLDR, out of domain)")
