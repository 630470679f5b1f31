from ablate.world import WorldSize, generate

SMALL = WorldSize(train_triplets=500)


def test_same_seed_same_world_and_other_seed_differs():
    a, b, c = generate(3, SMALL), generate(3, SMALL), generate(4, SMALL)
    assert a.train_triplets == b.train_triplets
    assert {k: v.revision for k, v in a.datasets.items()} == {k: v.revision for k, v in b.datasets.items()}
    assert a.train_triplets != c.train_triplets
    assert a.datasets["factoid"].revision != c.datasets["factoid"].revision


def test_training_pool_size_leaves_evaluation_sets_and_prefix_unchanged():
    small, large = generate(0, WorldSize(train_triplets=300)), generate(0, WorldSize(train_triplets=900))
    assert {k: v.revision for k, v in small.datasets.items()} == {k: v.revision for k, v in large.datasets.items()}
    assert large.train_triplets[:300] == small.train_triplets


def test_datasets_have_their_distinct_characters():
    world = generate(0, SMALL)
    factoid, graded, counter, longdoc = (world.datasets[n] for n in ("factoid", "graded", "counter", "longdoc"))
    assert all(len(r) == 1 for r in factoid.qrels.values())
    grades = {g for rels in graded.qrels.values() for g in rels.values()}
    assert grades == {1, 2} and all(sum(g == 2 for g in r.values()) == 1 for r in graded.qrels.values())
    # ArguAna-like: every query's own text sits in the corpus under the query's id, and is not relevant.
    for qid, text in counter.queries.items():
        assert counter.corpus[qid]["text"] == text and qid not in counter.qrels[qid]
    short = sum(len(d["text"].split()) for d in factoid.corpus.values()) / len(factoid.corpus)
    long = sum(len(d["text"].split()) for d in longdoc.corpus.values()) / len(longdoc.corpus)
    assert long > 8 * short and long > 100
    # Out of domain: the long documents' filler words never occur in training.
    train_words = {w for t in world.train_triplets for text in t for w in text.split()}
    doc_words = {w for d in longdoc.corpus.values() for w in d["text"].split()}
    assert len(doc_words - train_words) > 0.5 * len(doc_words)


def test_hard_negatives_are_close_to_their_positives():
    world = generate(0, SMALL)
    shared = [len(set(p.split()) & set(n.split())) for _, p, n in world.train_triplets]
    # a hard negative names the same entity (two words) as its positive
    assert sum(s >= 2 for s in shared) / len(shared) > 0.95
