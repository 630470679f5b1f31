import json
import subprocess
import sys

import pytest

from ablate.beir import DatasetError, RetrievalDataset, read_beir, write_beir
from ablate.world import WorldSize, generate


def test_export_roundtrip_loads_back_identically(tmp_path):
    dataset = generate(0, WorldSize(train_triplets=100)).datasets["graded"]
    write_beir(dataset, tmp_path / "graded")
    loaded = read_beir(tmp_path / "graded")
    assert loaded.corpus == dataset.corpus
    assert loaded.queries == dataset.queries
    assert loaded.qrels == dataset.qrels
    assert loaded.revision == dataset.revision and loaded.name == "graded"


def test_any_beir_directory_loads(tmp_path):
    root = tmp_path / "mine"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "alpha"}) + "\n"
                                       + json.dumps({"_id": "d2", "text": "beta"}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "alpha?"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    ds = read_beir(root)
    assert ds.name == "mine" and ds.qrels == {"q1": {"d1": 1}} and ds.corpus["d2"]["title"] == ""


@pytest.mark.parametrize("breakage,expected", [
    (lambda r: (r / "queries.jsonl").unlink(), "queries.jsonl: missing"),
    (lambda r: (r / "corpus.jsonl").write_text("{not json}\n"), "corpus.jsonl:1: not valid JSON"),
    (lambda r: (r / "qrels" / "test.tsv").write_text("q1\td1\n"), "test.tsv:1: expected 3 tab-separated"),
    (lambda r: (r / "qrels" / "test.tsv").write_text("q1\tdX\t1\n"), "doc id 'dX' that is not in the corpus"),
])
def test_broken_directories_give_one_clear_line(tmp_path, breakage, expected):
    root = tmp_path / "d"
    write_beir(RetrievalDataset("d", {"d1": {"title": "", "text": "x"}}, {"q1": "x"}, {"q1": {"d1": 1}}), root)
    breakage(root)
    with pytest.raises(DatasetError) as err:
        read_beir(root)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_cli_export_then_check(tmp_path):
    out = tmp_path / "world"
    done = subprocess.run([sys.executable, "-m", "ablate.cli", "data", "export", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("factoid", "graded", "counter", "longdoc"):
        assert (out / name / "qrels" / "test.tsv").is_file()
        check = subprocess.run([sys.executable, "-m", "ablate.cli", "data", "check", str(out / name)],
                               capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout.startswith(f"{name}: ")
    again = subprocess.run([sys.executable, "-m", "ablate.cli", "data", "export", "--out", str(out)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr
