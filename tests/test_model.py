import subprocess
import sys

from ablate.model import wordpiece_vocabulary

BUILD = """
import sys
from pathlib import Path
from ablate.model import tiny_modernbert_path, built_model_hash
from ablate.world import generate, WorldSize
path = tiny_modernbert_path(Path(sys.argv[1]), generate(0, WorldSize(train_triplets=400)), 0)
print(built_model_hash(path))
"""


def test_base_model_is_identical_when_built_in_separate_processes(tmp_path):
    hashes = [subprocess.run([sys.executable, "-c", BUILD, str(tmp_path / f"c{i}")], capture_output=True, text=True,
                             check=True).stdout.strip() for i in range(2)]
    assert hashes[0] and hashes[0] == hashes[1]


def test_vocabulary_prefers_frequent_words_and_breaks_ties_alphabetically():
    vocab = wordpiece_vocabulary(["ab ba ab", "ca ab", "ba ca"], 15)
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert vocab[5:8] == ["a", "b", "c"] and vocab[8:11] == ["##a", "##b", "##c"]
    assert vocab[11:] == ["ab", "ba", "ca"]  # ab (3) first, then the tie ba/ca (2 each) alphabetically
    assert len(set(vocab)) == len(vocab)
