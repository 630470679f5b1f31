"""The paper profile's real loading code, run offline on small local fixtures in the hub's formats.

Nothing here downloads: artifacts are local directories, or snapshots placed in a temporary hub cache
where ``hf download`` would put them, read with ``HF_HUB_OFFLINE=1``.
"""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import datasets
import huggingface_hub.constants
import numpy as np
import pytest

from ablate.beir import DatasetError, write_beir
from ablate.paper import (
    MODEL_REVISIONS,
    TRAIN_DATA,
    PaperProfile,
    load_triplets,
    official_subset,
    paper_task,
    row_indices_digest,
)
from ablate.profiles import EvalOptions, ProfileError
from ablate.spec import parse_spec
from ablate.trial import run_trial
from conftest import REPO
from paper_fixtures import put_in_hub_cache, write_mteb_multilingual, write_mteb_retrieval, write_triplet_hard

DATA_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Hub views and built models go to a temporary cache, not the checkout's .ablate."""
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "ablate-cache"))


def _official_train_rows(n_rows: int, held_out: int, seed: int) -> np.ndarray:
    """The source rows of the official train part, computed independently of our code path: datasets'
    ``train_test_split(shuffle=True, seed)`` draws one permutation from ``np.random.default_rng(seed)``
    and takes test = the first ``held_out`` positions, train = the rest in permutation order."""
    return np.random.default_rng(seed).permutation(n_rows)[held_out:]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory, small_profile):
    root = tmp_path_factory.mktemp("paper")
    world = small_profile.world
    triplets = write_triplet_hard(root / "msmarco", rows=3_000)
    write_beir(world.datasets["factoid"], root / "beir-factoid")
    eval_root = root / "eval"
    write_mteb_retrieval(eval_root / "mteb" / "scifact", world.datasets["factoid"])
    write_mteb_retrieval(eval_root / "mteb" / "arguana", world.datasets["counter"])
    return {"root": root, "model": str(small_profile.base_model()), "data": str(triplets),
            "beir": str(root / "beir-factoid"), "eval": str(eval_root), "world": world}


def test_subset_is_the_official_recipes_rows(fixtures):
    profile = PaperProfile(model=fixtures["model"], train_data=fixtures["data"], subset_rows=1_500)
    subset = profile.training_set("subset")
    recorded = profile.provenance()
    full = profile.training_set("full")
    expected = _official_train_rows(3_000, 1_000, 12)
    source_rows = [int(q.split()[1]) for q in subset["query"]]
    assert source_rows == expected[:1_500].tolist()
    assert [int(q.split()[1]) for q in full["query"]] == expected.tolist()
    assert subset.column_names == ["query", "positive", "negative"]  # the decoy config was not read
    assert recorded["train_rows"] == 1_500 and recorded["train_source_rows"] == 3_000
    assert recorded["train_row_indices_sha256"] == hashlib.sha256(
        expected[:1_500].astype(np.uint64).tobytes()).hexdigest()


def test_subset_indices_at_full_scale_match_the_official_recipe():
    """11,662,655 rows (the real triplet-hard size): the same 1,250,000 source rows as train_st.py takes."""
    n_rows = 11_662_655
    table = datasets.Dataset.from_dict({"row": np.arange(n_rows, dtype=np.int64)})
    subset = official_subset(table, held_out_rows=1_000, split_seed=12, subset_rows=1_250_000)
    expected = _official_train_rows(n_rows, 1_000, 12)[:1_250_000]
    assert len(subset) == 1_250_000
    assert np.array_equal(np.asarray(subset[:1_000]["row"]), expected[:1_000])
    assert row_indices_digest(subset) == hashlib.sha256(expected.astype(np.uint64).tobytes()).hexdigest()


def test_training_data_is_read_through_the_dataset_card(fixtures):
    full = load_triplets(fixtures["root"] / "msmarco", "triplet-hard")
    assert len(full) == 3_000 and full[2_999]["query"] == "query 2999"  # both shards, in order


def test_training_data_saved_with_save_to_disk(fixtures, tmp_path):
    """An HF dataset saved to disk with the triplet-hard columns works as well as the repository layout."""
    full = load_triplets(fixtures["root"] / "msmarco", "triplet-hard")
    datasets.DatasetDict({"train": full}).save_to_disk(str(tmp_path / "saved" / "triplet-hard"))
    profile = PaperProfile(model=fixtures["model"], train_data=str(tmp_path / "saved"), subset_rows=1_500)
    subset = profile.training_set("subset")
    assert [int(q.split()[1]) for q in subset["query"]] == _official_train_rows(3_000, 1_000, 12)[:1_500].tolist()
    with pytest.raises(ProfileError, match="no parquet files for config 'triplet-hard'"):
        load_triplets(tmp_path, "triplet-hard")


def test_too_small_training_copy_is_refused(fixtures):
    profile = PaperProfile(model=fixtures["model"], train_data=fixtures["data"])
    with pytest.raises(ProfileError, match="has 2000 training rows, fewer than the 1250000 of the official subset"):
        profile.training_set("subset")
    with pytest.raises(ProfileError, match="not more than the 5000 held out"):
        PaperProfile(model=fixtures["model"], train_data=fixtures["data"], held_out_rows=5_000).training_set("full")


def test_dataset_names_map_to_mteb_tasks_and_splits():
    assert paper_task("MLDR").mteb_name == "MultiLongDocRetrieval" and paper_task("MLDR").split == "test"
    assert paper_task("MSMARCO:dev").split == "dev" and paper_task("MSMARCO:dev").queries == 6_980
    assert paper_task("FEVER").corpus_group == paper_task("ClimateFEVER").corpus_group is not None
    with pytest.raises(DatasetError, match=r"MSMARCO: name the split: MSMARCO:dev \(6,980 queries\)"):
        paper_task("MSMARCO")
    with pytest.raises(DatasetError, match="NotATask: not an mteb task"):
        paper_task("NotATask")


def test_model_aliases_and_pinned_revisions():
    assert PaperProfile(model="large").model == "answerdotai/ModernBERT-large"
    profile = PaperProfile(model="base")
    assert profile.model_revision == MODEL_REVISIONS["answerdotai/ModernBERT-base"]
    assert profile.describe()["model_revision"] == profile.model_revision


def test_offline_miss_names_the_artifact_and_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("ABLATE_PAPER_MODEL", raising=False)
    with pytest.raises(ProfileError) as err:
        PaperProfile().base_model()
    message = str(err.value)
    revision = MODEL_REVISIONS["answerdotai/ModernBERT-base"]
    assert message.startswith(f"paper profile: cannot fetch base model answerdotai/ModernBERT-base@{revision}: "
                              "offline (HF_HUB_OFFLINE=1) and not in the hub cache")
    assert f"`hf download answerdotai/ModernBERT-base --revision {revision}" in message
    assert "ablate fetch STUDY --profile paper" in message and "\n" not in message


def test_unreachable_hub_goes_straight_to_the_cache(tmp_path, monkeypatch):
    """Without HF_HUB_OFFLINE, a hub that cannot be reached is detected at once (no 25 s of retries)."""
    from ablate import hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    hub.hub_reachable.cache_clear()
    try:
        started = time.perf_counter()
        with pytest.raises(ProfileError, match="the hub is unreachable from here and it is not in the hub cache"):
            PaperProfile(model="large").base_model()
        assert time.perf_counter() - started < 10
    finally:
        hub.hub_reachable.cache_clear()


def test_hub_reachability_goes_through_the_configured_proxy(monkeypatch):
    import socket

    from ablate import hub

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://hub.invalid")  # never resolves
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    hub.hub_reachable.cache_clear()
    try:
        assert hub.hub_reachable()
        monkeypatch.delenv("https_proxy")
        monkeypatch.delenv("HTTPS_PROXY", raising=False)
        hub.hub_reachable.cache_clear()
        assert not hub.hub_reachable()
    finally:
        listener.close()
        hub.hub_reachable.cache_clear()


def _filled_hub_cache(fixtures, tmp_path):
    """A hub cache holding the pinned model, the training data (branch head DATA_COMMIT) and mteb's SciFact."""
    import mteb

    cache = tmp_path / "hub"
    revision = MODEL_REVISIONS["answerdotai/ModernBERT-base"]
    put_in_hub_cache(cache, "answerdotai/ModernBERT-base", "model", revision, Path(fixtures["model"]))
    put_in_hub_cache(cache, TRAIN_DATA, "dataset", DATA_COMMIT, fixtures["root"] / "msmarco")
    scifact = mteb.get_task("SciFact").metadata.dataset
    put_in_hub_cache(cache, scifact["path"], "dataset", scifact["revision"],
                     fixtures["root"] / "eval" / "mteb" / "scifact", branch=None)
    return cache, revision, scifact


def test_everything_loads_from_the_hub_cache_offline(fixtures, tmp_path, monkeypatch):
    """With HF_HUB_OFFLINE=1 and the cache holding the pinned snapshots, the hub ids just work."""
    cache, revision, scifact = _filled_hub_cache(fixtures, tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    for var in ("ABLATE_PAPER_MODEL", "ABLATE_PAPER_DATA", "ABLATE_PAPER_DATA_REVISION", "ABLATE_PAPER_EVAL_DATA"):
        monkeypatch.delenv(var, raising=False)

    profile = PaperProfile(subset_rows=100)
    assert profile.describe()["train_data_revision"] == "unresolved"
    assert f"branch head: {DATA_COMMIT} in the local hub cache" in profile.run_description()["training data"]
    profile.prepare(["SciFact"])
    assert profile.describe()["train_data_revision"] == DATA_COMMIT  # pinned at first fetch, recorded with the study
    assert profile.base_model().endswith(revision)
    assert len(profile.training_set("subset")) == 100
    (task,) = profile.eval_tasks(["SciFact"], EvalOptions(True, None))
    assert task.revision == scifact["revision"] and task.split == "test"
    assert len(task.task.dataset["default"]["test"]["queries"]) == len(fixtures["world"].datasets["factoid"].qrels)
    with pytest.raises(ProfileError, match=r"cannot fetch evaluation set ArguAna mteb/arguana@"):
        profile.eval_tasks(["ArguAna"], EvalOptions(True, None))


def test_multilingual_set_loads_from_a_download_restricted_to_its_configs(fixtures, tmp_path, monkeypatch):
    """MLDR: only the English configs are downloaded, while the card still declares every language first."""
    import mteb

    mldr = mteb.get_task("MultiLongDocRetrieval").metadata.dataset
    cache = tmp_path / "hub"
    put_in_hub_cache(cache, mldr["path"], "dataset", mldr["revision"],
                     write_mteb_multilingual(tmp_path / "mldr", fixtures["world"].datasets["longdoc"]), branch=None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    profile = PaperProfile(model=fixtures["model"], train_data=fixtures["data"])
    (task,) = profile.eval_tasks(["MLDR"], EvalOptions(True, None))
    assert task.split == "test" and task.revision == mldr["revision"]
    loaded = task.task.dataset["en"]["test"]
    assert len(loaded["corpus"]) == len(fixtures["world"].datasets["longdoc"].corpus)
    assert "--include '*en-corpus*'" in profile.eval_artifact(task_def := paper_task("MLDR"),
                                                              dict(mldr)).download_command()
    assert task_def.languages == ("eng",)


def test_local_copies_of_every_artifact(fixtures):
    profile = PaperProfile(model=fixtures["model"], train_data=fixtures["data"], eval_data=fixtures["eval"],
                           subset_rows=100)
    profile.prepare(["SciFact", "ArguAna", fixtures["beir"]])
    assert profile.describe()["model_revision"] == "local"
    scifact, arguana, beir = profile.eval_tasks(["SciFact", "ArguAna", fixtures["beir"]], EvalOptions(True, None))
    assert arguana.task.ignore_identical_ids and not scifact.task.ignore_identical_ids  # mteb's own protocol
    assert beir.name == "factoid"
    (kept,) = profile.eval_tasks(["ArguAna"], EvalOptions(False, None))
    assert not kept.task.ignore_identical_ids
    with pytest.raises(ProfileError, match="no local copy of FEVER at .*mteb/fever"):
        profile.eval_tasks(["FEVER"], EvalOptions(True, None))


def _cli(args, env_extra=None, cwd=REPO):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    for var in ("ABLATE_PAPER_MODEL", "ABLATE_PAPER_DATA", "ABLATE_PAPER_EVAL_DATA", "ABLATE_STORAGE"):
        env.pop(var, None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "ablate.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


def test_cli_real_run_offline_fails_fast_with_one_line_and_writes_nothing(tmp_path):
    db = tmp_path / "p.db"
    started = time.perf_counter()
    result = _cli(["run", "batch-size", "--profile", "paper", "--storage", f"sqlite:///{db}"],
                  {"HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: paper profile: cannot fetch base model answerdotai/ModernBERT-base@")
    assert "hf download answerdotai/ModernBERT-base" in last
    assert not db.exists()
    assert time.perf_counter() - started < 60


def test_cli_dry_run_prints_trials_revisions_tasks_and_costs_offline(tmp_path):
    db = tmp_path / "p.db"
    result = _cli(["run", "batch-size", "--profile", "paper", "--dry-run", "--storage", f"sqlite:///{db}"],
                  {"HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert MODEL_REVISIONS["answerdotai/ModernBERT-base"] in out
    assert "train_test_split(test_size=1,000, seed=12), then the first 1,250,000 rows" in out
    assert "mteb/arguana@c22ab2a51041" in out and "removed (mteb)" in out
    assert "| MSMARCO:dev" in out and "| dev " in out
    assert "shared (fever-wikipedia), encoded once per model" in out
    assert "| 4 | per_device_batch=512, seed=0 | 512" in out and "1023" in out
    assert "GPU-hours" in out and "power" in out
    assert not db.exists()


@pytest.mark.slow
def test_paper_profile_trial_runs_on_local_fixtures(fixtures):
    spec = parse_spec({"name": "p", "question": "q?", "seeds": [0], "factors": {"per_device_batch": [8, 16]},
                       "fixed": {"learning_rate": 1e-3},
                       "datasets": {"paper": ["ArguAna", fixtures["beir"]]}})
    profile = PaperProfile(model=fixtures["model"], train_data=fixtures["data"], eval_data=fixtures["eval"],
                           subset_rows=64, attn_implementation="sdpa")
    outcome = run_trial(spec, spec.cells()[0], profile)
    assert outcome.controls["training_examples_seen"] == 64 and outcome.controls["optimizer_updates"] == 8
    arguana, factoid = outcome.scores
    assert arguana.dataset == "ArguAna" and arguana.ignore_identical_ids and arguana.split == "test"
    assert factoid.dataset == "factoid" and factoid.per_query.height == 400
    provenance = outcome.provenance
    assert provenance["model_revision"] == "local" and provenance["train_rows"] == 64
    assert provenance["max_seq_length_model"] > 0 and provenance["attn_implementation"] == "sdpa"
    assert provenance["precision"] == "fp32" and provenance["device"] == "cpu"
    assert provenance["attn_implementation_eval"] == "sdpa"


def test_cli_fetch_offline_from_a_filled_cache(fixtures, tmp_path):
    cache = tmp_path / "hub"
    put_in_hub_cache(cache, "answerdotai/ModernBERT-base", "model", MODEL_REVISIONS["answerdotai/ModernBERT-base"],
                     Path(fixtures["model"]))
    put_in_hub_cache(cache, TRAIN_DATA, "dataset", DATA_COMMIT, fixtures["root"] / "msmarco")
    spec = tmp_path / "one.toml"
    spec.write_text('name = "one"\nquestion = "q?"\nseeds = [0]\n[factors]\nper_device_batch = [8, 16]\n'
                    f'[datasets]\npaper = ["{fixtures["beir"]}"]\n')
    result = _cli(["fetch", str(spec), "--profile", "paper", "--profile-option", "subset_rows=100"],
                  {"HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr
    assert f"model answerdotai/ModernBERT-base@{MODEL_REVISIONS['answerdotai/ModernBERT-base']}: {cache}" in result.stdout
    assert f"training data revision: {DATA_COMMIT}" in result.stdout


@pytest.mark.slow
def test_cli_paper_run_offline_from_the_hub_cache_end_to_end(fixtures, tmp_path):
    """`ablate run --profile paper` with HF_HUB_OFFLINE=1 and only the hub cache: trains, evaluates
    through mteb's own SciFact task, stores revisions and provenance."""
    import optuna

    cache, revision, scifact = _filled_hub_cache(fixtures, tmp_path)
    spec = tmp_path / "tiny-paper.toml"
    spec.write_text('name = "tiny-paper"\nquestion = "q?"\nseeds = [0]\n[factors]\nper_device_batch = [8, 16]\n'
                    '[fixed]\nlearning_rate = 1e-3\n[datasets]\npaper = ["SciFact"]\n')
    db = tmp_path / "paper.db"
    env = {"HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf")}
    args = ["run", str(spec), "--profile", "paper", "--profile-option", "subset_rows=64",
            "--profile-option", "attn_implementation=sdpa", "--storage", f"sqlite:///{db}", "--quiet"]
    result = _cli(args, env)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="tiny-paper@paper", storage=f"sqlite:///{db}")
    assert study.user_attrs["profile"]["train_data_revision"] == DATA_COMMIT
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    for trial in trials:
        assert trial.user_attrs["datasets"] == {"SciFact": scifact["revision"]}
        provenance = trial.user_attrs["provenance"]
        assert provenance["model_revision"] == revision and provenance["train_rows"] == 64
        assert "mteb" in trial.user_attrs["versions"]
    again = _cli(args, env)  # everything is stored: nothing runs again
    assert again.returncode == 0 and "ran 0 trial(s)" in again.stdout
