"""Each sentinel fires on the failure it watches for: a blanked image, a corrupted rollout, a constant reward,
unparseable gold answers, a sampled special token (lmm_r1/sentinels.py). The corrupted prompt that stops a run
is in tests/test_vllm_path.py."""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

from lmm_r1 import rewards
from lmm_r1.config import preset
from lmm_r1.grpo import build_trainer
from lmm_r1.sentinels import SENTINELS, ImageTokenMismatch, Watch, blank_pixels, crossed, special_token_share

SMALL = dict(max_steps=1, generation_batch_size=16, num_generations=4, micro_batch_size=16, train_size=16,
             max_completion_length=48, save_steps=100, log_completions_steps=0, sentinel_every=1)


def test_thresholds_by_hand():
    assert crossed("vision_gap", 0.0) and crossed("vision_gap", 5e-4) and not crossed("vision_gap", 0.01)
    assert crossed("engine_logp_gap", 0.5) and not crossed("engine_logp_gap", 0.05)
    assert crossed("constant_reward", 0.0) and not crossed("constant_reward", 0.25)
    assert crossed("special_tokens", 0.01) and not crossed("special_tokens", 0.0)
    assert not crossed("vision_gap", None) and not crossed("vision_gap", float("nan"))
    assert {s.action for s in SENTINELS.values()} == {"warn", "stop"}


def test_watch_warns_once_and_counts():
    watch = Watch()
    with pytest.warns(RuntimeWarning, match="sentinel vision_gap fired at step 3"):
        watch.record("vision_gap", 0.0, step=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second firing is counted, not warned again
        watch.record("vision_gap", 0.0, step=4)
        watch.record("vision_gap", 0.8, step=5)
    summary = watch.summary()["vision_gap"]
    assert summary == {"readings": 3, "last": 0.8, "min": 0.0, "max": 0.8, "threshold": 1e-3, "fires": "below",
                       "action": "warn", "fired": 2}
    with pytest.raises(ImageTokenMismatch):
        watch.record("image_tokens", 0.5, step=6)


def test_special_token_share_by_hand():
    ids = torch.tensor([[5, 7, 2], [5, 6, 9], [9, 0, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [0, 0, 0]])  # the third row's 9 is masked out
    assert special_token_share(ids, mask, {9}) == pytest.approx(1 / 3)


def test_blank_pixels_keep_shapes_and_remove_content(random_tiny_model):
    from lmm_r1.models import load_processor

    ip = load_processor(random_tiny_model).image_processor
    uniform = Image.new("RGB", (56, 56), (90, 160, 30))
    noisy = Image.effect_noise((56, 56), 80).convert("RGB")
    out = ip(images=[uniform, noisy], return_tensors="pt")
    blank = blank_pixels(out["pixel_values"], out["image_grid_thw"])
    assert blank.shape == out["pixel_values"].shape
    n = int(out["image_grid_thw"][0].prod())
    assert torch.allclose(blank[:n], out["pixel_values"][:n], atol=1e-6)  # a uniform image stays itself
    assert not torch.allclose(blank[n:], out["pixel_values"][n:])
    assert torch.allclose(blank[n:], blank[n])  # every patch of the noisy one is now one mean colour


def _percept_trainer(tiny_model, tmp_path, **kw):
    cfg = preset("mgt_percept", "tiny", init_from=str(tiny_model), **{**SMALL, **kw})
    return build_trainer(cfg, output_dir=tmp_path / "ckpt", results_dir=tmp_path).trainer


def test_vision_gap_reads_the_image_and_fires_on_blank_images(tiny_model, tmp_path):
    trainer = _percept_trainer(tiny_model, tmp_path / "real")
    trainer.train()
    real = trainer.sentinels.summary()["vision_gap"]
    assert real["readings"] == 1 and real["fired"] == 0 and real["last"] > 0.05, real

    blanked = _percept_trainer(tiny_model, tmp_path / "blank")
    grey = Image.new("RGB", (112, 28), (128, 128, 128))
    blanked.train_dataset = blanked.train_dataset.map(lambda row: {"images": [grey]})
    with pytest.warns(RuntimeWarning, match="sentinel vision_gap fired"):
        blanked.train()
    gap = blanked.sentinels.summary()["vision_gap"]
    assert gap["fired"] == 1 and abs(gap["last"]) < 1e-3, gap


def test_constant_reward_fires(tiny_model, tmp_path):
    from lmm_r1.trainer import LMMR1Trainer

    stage = build_trainer(preset("fre_text", "tiny", **{**SMALL, "max_steps": 3}), output_dir=tmp_path / "c",
                          results_dir=tmp_path)
    t = stage.trainer

    def constant(completions, **kwargs):
        return [0.5] * len(completions)

    # two functions: the stage's GRPOConfig weighs two (format and accuracy)
    trainer = LMMR1Trainer(model=t.model, reward_funcs=[constant, constant], args=t.args,
                           train_dataset=t.train_dataset, processing_class=t.processing_class,
                           algorithm="reinforce_pp_baseline")
    with pytest.warns(RuntimeWarning, match="sentinel constant_reward fired"):
        trainer.train()
    assert trainer.sentinels.summary()["constant_reward"]["fired"] >= 1


def _one_rollout(trainer):
    """One real rollout of the trainer's first batch, as training takes it."""
    batch = [trainer.train_dataset[i] for i in range(trainer.args.generation_batch_size // trainer.num_generations)
             for _ in range(trainer.num_generations)]
    trainer.model.train()
    return batch, trainer._generate_and_score_completions(batch)


def test_engine_gap_fires_on_rollouts_from_another_model(tiny_model, tmp_path):
    trainer = _percept_trainer(tiny_model, tmp_path)
    batch, out = _one_rollout(trainer)
    logps = trainer._behaviour_logps(out)
    out["sampling_per_token_logps"] = logps  # an engine that agrees: gap 0
    trainer._take_readings(batch, out, lambda: logps)
    assert trainer.sentinels.summary()["engine_logp_gap"]["last"] == pytest.approx(0.0, abs=1e-6)
    out["sampling_per_token_logps"] = out["sampling_per_token_logps"] - 1.0  # one nat off on every token
    with pytest.warns(RuntimeWarning, match="sentinel engine_logp_gap fired"):
        trainer._take_readings(batch, out, lambda: logps)
    assert trainer.sentinels.summary()["engine_logp_gap"]["last"] == pytest.approx(1.0, abs=1e-4)


def test_unparseable_gold_timeouts_and_special_tokens_fire(tiny_model, tmp_path):
    trainer = _percept_trainer(tiny_model, tmp_path)
    batch, out = _one_rollout(trainer)
    rewards.reset_reward_counters()
    accuracy = rewards.make_accuracy_reward(timeout=1.0)
    accuracy(["<answer>$3$</answer>"] * 10, answer=[""] * 4 + ["$3$"] * 6)  # 4 of 10 golds empty
    hanging = "<think>big</think><answer>$\\boxed{9^{9^{9^{9}}}}$</answer>"  # killed at the limit (test_verifier.py)
    accuracy([hanging] * 2 + ["<answer>$2$</answer>"] * 8, answer=["$2$"] * 10)  # 2 of the next 10 time out
    trainer.sentinel_every = 100  # no vision reading: the forward pass would fail on the placeholder below
    pad = trainer._image_pad_token_id
    out["completion_ids"][0, 0] = pad  # a sampled image placeholder, inside the mask
    out["completion_mask"][0, 0] = 1
    with pytest.warns(RuntimeWarning) as caught:
        trainer._take_readings(batch, out, lambda: trainer._behaviour_logps(out))
    fired = {str(w.message).split()[1] for w in caught}
    assert {"unparseable_gold", "verify_timeouts", "special_tokens"} <= fired
    summary = trainer.sentinels.summary()
    assert summary["unparseable_gold"]["last"] == pytest.approx(4 / 20)
    assert summary["verify_timeouts"]["last"] == pytest.approx(2 / 20)
    assert summary["special_tokens"]["last"] == pytest.approx(1 / len(out["completion_ids"]))
    rewards.reset_reward_counters()
