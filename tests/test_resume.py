"""Resume: a run killed after its step-2 checkpoint restarts at step 2, and its logs continue exactly once."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from lmm_r1.config import preset
from lmm_r1.grpo import train
from lmm_r1.training_log import load_completions, load_metrics, truncate_after

# 4 steps of 2 prompts x 8 completions, a checkpoint every 2 steps; completions logged every step.
SMALL = dict(max_steps=4, generation_batch_size=16, num_generations=8, micro_batch_size=16, train_size=16,
             max_completion_length=64, warmup_ratio=0.0, save_steps=2, log_completions_steps=1,
             num_completions_to_log=2)


class Killed(Exception):
    pass


class KillAt(TrainerCallback):
    """Dies right after step ``step`` is logged: after the step-2 checkpoint, before the next one."""

    def __init__(self, step):
        self.step = step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.global_step == self.step and "loss" in (logs or {}):
            raise Killed


def test_resume_after_kill(tiny_model, tmp_path):
    cfg = preset("fre_text", "tiny", **SMALL)
    with pytest.raises(Killed):
        train(cfg, results_dir=tmp_path / "a", callbacks=[KillAt(3)])
    run = tmp_path / "a" / "tiny" / "fre_text_seed0"
    assert [r["step"] for r in load_metrics(run)] == [1, 2, 3]  # step 3 was logged, never checkpointed
    assert (run / "checkpoints" / "checkpoint-2").is_dir() and not (run / "metrics.json").exists()

    record = train(cfg, results_dir=tmp_path / "a")
    assert record["resumed_from"].endswith("checkpoint-2") and record["global_step"] == 4
    rows = load_metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # step 3 once, from the resumed process
    assert [s["step"] for s in load_completions(run)] == [1, 1, 2, 2, 3, 3, 4, 4]

    # the resumed run is the uninterrupted run: same data order, RNG and optimizer state from the checkpoint
    straight = train(cfg, results_dir=tmp_path / "b")
    assert straight["resumed_from"] is None
    other = load_metrics(tmp_path / "b" / "tiny" / "fre_text_seed0")
    for a, b in zip(rows, other):
        assert a["train/reward/total"] == pytest.approx(b["train/reward/total"])
        assert a["train/completion_length"] == pytest.approx(b["train/completion_length"])


def test_truncate_after_repairs_a_torn_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')  # killed mid-write
    assert truncate_after(path, 2) == 1
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_a_checkpoint_torn_by_a_kill_is_skipped(tmp_path, capsys):
    """transformers writes trainer_state.json last and not atomically: a process killed while saving leaves the
    newest checkpoint without a readable state, and a resume must take the one before it (or start fresh)."""
    from lmm_r1.grpo import _last_checkpoint

    for step, state in [(2, '{"global_step": 2}'), (4, '{"global_step": 4}'), (6, "")]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-8").mkdir()  # killed before its state was written at all
    assert _last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert "checkpoint-6 is incomplete" in capsys.readouterr().err
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')  # torn mid-write
    assert _last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert _last_checkpoint(tmp_path / "none") is None


def test_a_checkpoint_with_a_torn_rank_rng_state_is_skipped(tmp_path, capsys):
    """Ranks other than the main one write rng_state_<rank>.pth with no barrier before the main process writes
    trainer_state.json: a kill can leave a folder whose state parses but whose RNG file is half written."""
    import torch

    from lmm_r1.grpo import _last_checkpoint

    for step in (2, 4):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
        for rank in (0, 1):
            torch.save({"cpu": torch.random.get_rng_state()}, folder / f"rng_state_{rank}.pth")
    assert _last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")  # whole files: the newest
    whole = (tmp_path / "checkpoint-4" / "rng_state_1.pth").read_bytes()
    (tmp_path / "checkpoint-4" / "rng_state_1.pth").write_bytes(whole[: len(whole) // 2])  # killed mid-write
    assert _last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert "rng_state_1.pth not whole" in capsys.readouterr().err
