"""Mid-trial resume: a training run killed after a checkpoint and resumed ends with the same model, bit for bit.

The run is killed from inside the trainer's step callback with SIGKILL (no cleanup, as a lost machine),
right after its first checkpoint; resuming in another process is compared with an uninterrupted run
that writes no checkpoints at all, so checkpointing itself is shown not to change the result either.
"""

import subprocess
import sys
import textwrap

import torch

from ablate.train import TrainingConfig, checkpoint_dir, latest_checkpoint, train

CONFIG = TrainingConfig(per_device_batch=8, learning_rate=1e-3, mini_batch_size=4, train_examples=64)

KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from ablate.profiles import MiniProfile
    from ablate.train import TrainingConfig, train

    profile = MiniProfile(subset_examples=64, cache_dir=Path(sys.argv[1]))
    config = TrainingConfig(per_device_batch=8, learning_rate=1e-3, mini_batch_size=4, train_examples=64)

    def die_after_first_checkpoint(step, total, elapsed):
        if step == 5:  # checkpoint-3 is written after step 3; die two steps later, mid-run
            os.kill(os.getpid(), signal.SIGKILL)

    train(profile.base_model(), profile.training_set("subset"), config, 7, Path(sys.argv[2]),
          progress=die_after_first_checkpoint, checkpoint_every=3)
""")


def test_killed_training_resumes_to_the_same_model(tmp_path, small_profile, model_cache):
    resume = checkpoint_dir(tmp_path / "resume", "study@mini", '{"per_device_batch": 8, "seed": 7}', "key")
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(model_cache), str(resume)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert latest_checkpoint(resume).endswith("checkpoint-3")

    triplets = small_profile.training_set("subset")
    steps = []
    resumed = train(small_profile.base_model(), triplets, CONFIG, 7, resume, checkpoint_every=3,
                    progress=lambda step, total, elapsed: steps.append(step))
    assert steps[0] == 4 and steps[-1] == 8  # only the remaining steps ran
    plain = train(small_profile.base_model(), triplets, CONFIG, 7, tmp_path / "plain")

    a, b = plain.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    texts = [row for row in triplets[:16]["anchor"]]
    assert torch.equal(plain.encode(texts, convert_to_tensor=True), resumed.encode(texts, convert_to_tensor=True))


def test_checkpoint_cut_short_is_skipped(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3}')
    (tmp_path / "checkpoint-6").mkdir()  # killed while writing: weights, no trainer state yet
    (tmp_path / "checkpoint-9").mkdir()
    (tmp_path / "checkpoint-9" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-3")
    assert latest_checkpoint(tmp_path / "missing") is None


def test_cells_sharing_a_training_run_get_their_own_checkpoints(tmp_path):
    batch8 = checkpoint_dir(tmp_path, "s@mini", '{"ignore_identical_ids": true, "seed": 0}', "same-training")
    assert batch8 == checkpoint_dir(tmp_path, "s@mini", '{"ignore_identical_ids": true, "seed": 0}', "same-training")
    assert batch8 != checkpoint_dir(tmp_path, "s@mini", '{"ignore_identical_ids": false, "seed": 0}', "same-training")
