"""Small local copies of the paper profile's artifacts, in the hub's own formats, built offline.

* ``write_triplet_hard``: the training dataset repository layout (a dataset card declaring configs, and
  ``triplet-hard/train-*.parquet`` shards with query/positive/negative columns). Row ``i`` has the query
  ``query {i}``, so a selection's source rows can be read back from its content.
* ``write_mteb_retrieval``: an mteb retrieval dataset repository (configs corpus / queries / default).
* ``put_in_hub_cache``: a directory placed in a Hugging Face hub cache as the snapshot of a revision,
  exactly where ``hf download`` would put it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets

TRIPLET_CARD = """---
configs:
- config_name: triplet
  data_files:
  - split: train
    path: triplet/train-*
- config_name: triplet-hard
  data_files:
  - split: train
    path: triplet-hard/train-*
---
# fixture in the layout of sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1
"""

MTEB_CARD = """---
configs:
- config_name: corpus
  data_files:
  - split: corpus
    path: corpus/*.parquet
- config_name: queries
  data_files:
  - split: queries
    path: queries/*.parquet
- config_name: default
  data_files:
  - split: test
    path: default/test-*.parquet
---
"""


def write_triplet_hard(root: Path, rows: int, shards: int = 2) -> Path:
    """A training-data repository copy with ``rows`` triplet-hard rows in ``shards`` parquet files."""
    (root / "triplet-hard").mkdir(parents=True)
    (root / "triplet").mkdir()
    per_shard = -(-rows // shards)
    for shard in range(shards):
        ids = range(shard * per_shard, min(rows, (shard + 1) * per_shard))
        datasets.Dataset.from_dict({
            "query": [f"query {i}" for i in ids],
            "positive": [f"relevant passage {i} about topic {i % 97}" for i in ids],
            "negative": [f"other passage {i} about topic {(i + 13) % 97}" for i in ids],
        }).to_parquet(str(root / "triplet-hard" / f"train-{shard:05d}-of-{shards:05d}.parquet"))
    # A decoy config the loader must not read.
    datasets.Dataset.from_dict({"query": ["decoy"], "positive": ["decoy"], "negative": ["decoy"]}).to_parquet(
        str(root / "triplet" / "train-00000-of-00001.parquet"))
    (root / "README.md").write_text(TRIPLET_CARD)
    return root


def write_mteb_retrieval(root: Path, dataset) -> Path:
    """An mteb-layout repository copy of a ``RetrievalDataset`` (test split)."""
    for part in ("corpus", "queries", "default"):
        (root / part).mkdir(parents=True)
    datasets.Dataset.from_dict({
        "_id": list(dataset.corpus), "title": [d.get("title", "") for d in dataset.corpus.values()],
        "text": [d["text"] for d in dataset.corpus.values()]}).to_parquet(str(root / "corpus" / "corpus-0.parquet"))
    datasets.Dataset.from_dict({"_id": list(dataset.queries), "text": list(dataset.queries.values())}).to_parquet(
        str(root / "queries" / "queries-0.parquet"))
    pairs = [(q, d, g) for q, rels in dataset.qrels.items() for d, g in rels.items()]
    datasets.Dataset.from_dict({"query-id": [p[0] for p in pairs], "corpus-id": [p[1] for p in pairs],
                                "score": [p[2] for p in pairs]}).to_parquet(str(root / "default" / "test-0.parquet"))
    (root / "README.md").write_text(MTEB_CARD)
    return root


def write_mteb_multilingual(root: Path, dataset, languages=("ar", "de", "en"), present=("en",)) -> Path:
    """An mteb multi-subset repository (MultiLongDocRetrieval's layout: ``<lang>-corpus`` / ``<lang>-queries`` /
    ``<lang>-qrels`` configs, languages in alphabetical order) of which only ``present`` languages' files
    exist, as a download restricted to those configs leaves it."""
    lines = ["---", "configs:"]
    for lang in languages:
        for part, split in (("corpus", "corpus"), ("queries", "queries"), ("qrels", "test")):
            lines += [f"- config_name: {lang}-{part}", "  data_files:", f"  - split: {split}",
                      f"    path: {lang}-{part}/*.parquet"]
    (root).mkdir(parents=True)
    (root / "README.md").write_text("\n".join(lines + ["---", ""]))
    for lang in present:
        for part in ("corpus", "queries", "qrels"):
            (root / f"{lang}-{part}").mkdir()
        datasets.Dataset.from_dict({
            "_id": list(dataset.corpus), "title": [d.get("title", "") for d in dataset.corpus.values()],
            "text": [d["text"] for d in dataset.corpus.values()]}).to_parquet(str(root / f"{lang}-corpus" / "c.parquet"))
        datasets.Dataset.from_dict({"_id": list(dataset.queries), "text": list(dataset.queries.values())}).to_parquet(
            str(root / f"{lang}-queries" / "q.parquet"))
        pairs = [(q, d, g) for q, rels in dataset.qrels.items() for d, g in rels.items()]
        datasets.Dataset.from_dict({"query-id": [p[0] for p in pairs], "corpus-id": [p[1] for p in pairs],
                                    "score": [p[2] for p in pairs]}).to_parquet(str(root / f"{lang}-qrels" / "t.parquet"))
    return root


def put_in_hub_cache(cache: Path, repo_id: str, kind: str, revision: str, source: Path,
                     branch: str | None = "main") -> Path:
    """Copy ``source`` into ``cache`` as the snapshot of ``repo_id`` at commit ``revision``."""
    repo_dir = cache / f"{kind}s--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    shutil.copytree(source, snapshot)
    if branch:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / branch).write_text(revision)
    return snapshot
