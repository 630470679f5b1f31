"""Retrieval datasets in the BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

The same layout is read for the embedded world, for ``ablate data export`` output and for any
user directory, so the evaluation has exactly one way in.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


class DatasetError(ValueError):
    """A BEIR-layout directory that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class RetrievalDataset:
    """One evaluation collection.

    ``qrels`` maps query id -> {doc id -> graded relevance}; a grade of 0 is a judged non-relevant doc.
    ``character`` is a one-line description of what makes the set distinctive (shown in listings).
    """

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    character: str = ""
    revision: str = field(default="local")

    def __post_init__(self) -> None:
        missing_q = [q for q in self.qrels if q not in self.queries]
        if missing_q:
            raise DatasetError(f"{self.name}: qrels name query id {missing_q[0]!r} that is not in the queries")
        missing_d = [d for rels in self.qrels.values() for d in rels if d not in self.corpus]
        if missing_d:
            raise DatasetError(f"{self.name}: qrels name doc id {missing_d[0]!r} that is not in the corpus")

    @property
    def judged_queries(self) -> list[str]:
        """Query ids with at least one relevant document, in a stable order: the queries that are scored."""
        return sorted(q for q, rels in self.qrels.items() if any(r > 0 for r in rels.values()))


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}:{line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or "_id" not in row:
                raise DatasetError(f"{path}:{line_no}: each line must be an object with an '_id' key")
            rows.append(row)
    return rows


def read_beir(directory: str | os.PathLike, split: str = "test", name: str | None = None) -> RetrievalDataset:
    """Load a BEIR-layout directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``)."""
    root = Path(directory)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected corpus.jsonl, queries.jsonl, qrels/{split}.tsv)")
    for required in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (root / required).is_file():
            raise DatasetError(f"{root / required}: missing (a BEIR-layout directory needs corpus.jsonl, "
                               f"queries.jsonl and qrels/{split}.tsv)")
    corpus = {}
    for row in _read_jsonl(root / "corpus.jsonl"):
        corpus[str(row["_id"])] = {"title": str(row.get("title", "") or ""), "text": str(row.get("text", "") or "")}
    queries = {str(row["_id"]): str(row.get("text", "")) for row in _read_jsonl(root / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    qrels_path = root / "qrels" / f"{split}.tsv"
    with qrels_path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").split("\t")
            if line_no == 1 and parts and parts[0] in ("query-id", "query_id", "qid"):
                continue
            if not line.strip():
                continue
            if len(parts) != 3:
                raise DatasetError(f"{qrels_path}:{line_no}: expected 3 tab-separated columns "
                                   f"(query-id, corpus-id, score), got {len(parts)}")
            try:
                grade = int(float(parts[2]))
            except ValueError:
                raise DatasetError(f"{qrels_path}:{line_no}: score {parts[2]!r} is not a number") from None
            qrels.setdefault(parts[0], {})[parts[1]] = grade
    meta_path = root / "ablate.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return RetrievalDataset(
        name=name or meta.get("name") or root.name,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        character=meta.get("character", ""),
        revision=meta.get("revision", "local"),
    )


def write_beir(dataset: RetrievalDataset, directory: str | os.PathLike, split: str = "test") -> Path:
    """Write ``dataset`` in BEIR layout. The directory appears complete or not at all."""
    target = Path(directory)
    if target.exists():
        raise DatasetError(f"{target}: already exists; choose a new output directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    with (staging / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id, doc in dataset.corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": doc.get("title", ""), "text": doc["text"]}) + "\n")
    with (staging / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for query_id, text in dataset.queries.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    (staging / "qrels").mkdir()
    with (staging / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id, rels in dataset.qrels.items():
            for doc_id, grade in rels.items():
                handle.write(f"{query_id}\t{doc_id}\t{grade}\n")
    (staging / "ablate.json").write_text(json.dumps(
        {"name": dataset.name, "character": dataset.character, "revision": dataset.revision}, indent=2))
    staging.rename(target)
    return target
