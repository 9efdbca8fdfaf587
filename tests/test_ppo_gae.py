"""PPO with GAE and a learned critic (algorithm "ppo_gae"; lmm_r1.critic, lmm_r1.trainer): the critic model, a real
tiny step recomputed with loops from OpenRLHF's rules, a critic that learns image-dependent returns, an exact
resume of the critic, and the paper presets and dry-run that select it. The two-process launch of the four paper
stages that use it runs in the rehearsal (`make rehearse`)."""

from __future__ import annotations

import pytest
import torch

from lmm_r1 import critic as critic_mod
from lmm_r1.config import preset
from lmm_r1.grpo import build_trainer, train
from lmm_r1.sentinels import blank_pixels
from lmm_r1.trainer import CRITIC_FILE, LMMR1Trainer
from test_resume import KillAt, Killed

GAE_STAGES = ("mgt_geometry", "direct_rl_geometry", "mgt_sokoban", "direct_rl_sokoban")
# the tiny geometry stage from the base model, with a critic: 2 prompts x 8 completions per rollout, 2 updates
SMALL = dict(algorithm="ppo_gae", critic_learning_rate=1e-3, init_from=None, generation_batch_size=16,
             num_generations=8, micro_batch_size=8, updates_per_rollout=2, train_size=16, max_completion_length=48,
             warmup_ratio=0.0, save_steps=2)


def _inputs(processor, images, text="Find the perimeter of the figure modulo 7."):
    from lmm_r1.generation import prompt_text

    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    texts = [prompt_text(processor, prompt, [img]) for img in images]
    return processor(text=texts, images=images, return_tensors="pt", padding=True)


def _images(n=2):
    from lmm_r1.toy.tasks import TASKS

    return [r["images"][0] for r in TASKS["geometry"].make_dataset("test", n, seed=3, system_prompt="none")]


def test_the_critic_is_the_backbone_and_a_value_head_that_sees_the_image(tiny_model):
    from lmm_r1.models import load_processor

    critic = critic_mod.load_critic(str(tiny_model), seed=0)
    hidden = critic.backbone.config.text_config.hidden_size
    assert not hasattr(critic.backbone, "lm_head") and critic.value_head.bias is None
    assert critic.value_head.weight.shape == (1, hidden)
    # OpenRLHF's init_value_head: N(0, 1/(H+1)); 96 draws, so the spread is within a factor of ~1.3 of it
    assert 0.7 < critic.value_head.weight.std().item() * (hidden + 1) < 1.3
    processor = load_processor(tiny_model)
    batch = _inputs(processor, _images(1))
    with torch.no_grad():
        values = critic(batch["input_ids"], batch["attention_mask"], logits_to_keep=5,
                        pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
        blank = critic(batch["input_ids"], batch["attention_mask"], logits_to_keep=5,
                       pixel_values=blank_pixels(batch["pixel_values"], batch["image_grid_thw"]),
                       image_grid_thw=batch["image_grid_thw"])
    assert values.shape == (1, 5)
    assert (values - blank).abs().max().item() > 1e-4  # its own vision tower reads the image


def test_a_critic_learns_returns_that_depend_on_the_image(tiny_model):
    """Same text, two images, return 1 for one and 0 for the other: the value loss falls and the values separate."""
    from lmm_r1.models import load_processor

    torch.manual_seed(0)
    critic = critic_mod.load_critic(str(tiny_model), seed=0)
    processor = load_processor(tiny_model)
    batch = _inputs(processor, _images(2))
    keep = 4
    mask = torch.ones(2, keep)
    returns = torch.tensor([[1.0] * keep, [0.0] * keep])
    opt = torch.optim.AdamW(critic.parameters(), lr=1e-3, betas=(0.9, 0.95))

    def values():
        return critic(batch["input_ids"], batch["attention_mask"], logits_to_keep=keep,
                      pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])

    losses = []
    for _ in range(40):
        v = values()
        loss = critic_mod.value_loss(v, v.detach(), returns, mask, clip=None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        v = values()
    assert losses[-1] < 0.2 * losses[0]
    assert (v[0] - v[1]).mean().item() > 0.5  # image one's value above image two's, as their returns are


def test_a_real_tiny_step_recomputed_with_loops(tiny_model, tmp_path):
    """One rollout through the trainer, then OpenRLHF's arithmetic written out with loops from what it saw: the raw
    reward (no group mean) clipped on the last token, -beta x k1 per token, GAE with gamma = lambda = 1 (A_t = G_t -
    V_t), advantages whitened over the rollout, returns not; the critic and the actor both take a step."""
    cfg = preset("mgt_geometry", "tiny", max_steps=2, beta=0.5, **SMALL)
    stage = build_trainer(cfg, output_dir=tmp_path / "ckpt", results_dir=tmp_path)
    trainer = stage.trainer
    assert isinstance(trainer, LMMR1Trainer) and trainer.kit_algorithm == "ppo_gae" and trainer.critic is not None
    seen = {}
    original = trainer._gae_rollout

    def capture(out, kl, reduce):
        result = original(out, kl, reduce)
        if not seen:
            inputs, keep = trainer._critic_inputs(out)
            with torch.no_grad():  # the whole rollout in one pass, against the micro-batched values
                trainer.critic.eval()
                whole = trainer.critic(**inputs, logits_to_keep=keep) * out["completion_mask"]
                trainer.critic.train()
            seen.update(out=dict(out), kl=kl.clone(), rewards=trainer._rewards_per_func.clone(),
                        weights=trainer.reward_weights.clone(), result=result, whole=whole)
        return result

    trainer._gae_rollout = capture
    before = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    trainer.train()
    mask = seen["out"]["completion_mask"].float()
    values = seen["result"]["old_values"]
    # 16 rows in micro-batches of 8, each with its own images: the same values as one pass over all of them
    assert values.shape[0] > cfg.micro_batch_size and torch.allclose(values, seen["whole"], atol=1e-5)
    rows, width = mask.shape
    reward = (seen["rewards"] * seen["weights"]).nansum(1)
    returns = torch.zeros_like(values)
    adv = torch.zeros_like(values)
    for i in range(rows):
        last = int(mask[i].sum().item()) - 1
        g = 0.0
        for t in reversed(range(width)):
            if not mask[i, t]:
                continue
            r = -0.5 * seen["kl"][i, t].item() + (max(-10.0, min(10.0, reward[i].item())) if t == last else 0.0)
            g += r
            returns[i, t] = g
            adv[i, t] = g - values[i, t].item()
    assert torch.allclose(seen["result"]["returns"], returns, atol=1e-5)
    n = mask.sum()
    mean = (adv * mask).sum() / n
    whitened = (adv - mean) / torch.sqrt((((adv - mean) ** 2) * mask).sum() / n) * mask
    assert torch.allclose(seen["result"]["advantages"], whitened, atol=1e-4)
    # the loops used the raw rewards; they tell it apart from a group baseline only where a group's mean is not 0
    assert reward.view(-1, cfg.num_generations).mean(1).abs().max() > 0.1
    after = trainer.critic.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the critic stepped
    logged = [h for h in trainer.state.log_history if "critic/value_loss" in h]
    assert logged and all(h["critic/lr"] > 0 for h in logged)


def test_kill_and_resume_restores_the_critic_exactly(tiny_model, tmp_path):
    cfg = preset("mgt_geometry", "tiny", max_steps=4, **SMALL)
    with pytest.raises(Killed):
        train(cfg, results_dir=tmp_path / "a", callbacks=[KillAt(3)])
    run = tmp_path / "a" / "tiny" / "mgt_geometry_seed0" / "checkpoints"
    assert (run / "checkpoint-2" / CRITIC_FILE).is_file()
    resumed = train(cfg, results_dir=tmp_path / "a")
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["global_step"] == 4
    straight = train(cfg, results_dir=tmp_path / "b")
    a = torch.load(run / "checkpoint-4" / CRITIC_FILE, weights_only=True)
    b = torch.load(tmp_path / "b" / "tiny" / "mgt_geometry_seed0" / "checkpoints" / "checkpoint-4" / CRITIC_FILE,
                   weights_only=True)
    for key in b["critic"]:
        assert torch.allclose(a["critic"][key], b["critic"][key], atol=1e-6), key
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 4
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    assert "train/critic/value_loss/last" in straight["metrics"]


@pytest.mark.parametrize("follows", ["paper", "scripts"])
def test_the_paper_presets_select_it_and_the_dry_run_shows_it(follows, capsys):
    from lmm_r1.cli import main

    for stage in GAE_STAGES:
        cfg = preset(stage, "paper", follows=follows)
        assert cfg.algorithm == "ppo_gae" and cfg.kl_placement in ("k1 in the reward", "none")
        assert main(["train", "--stage", stage, "--preset", "paper", "--follows", follows, "--dry-run"]) == 0
        out = capsys.readouterr().out
        lr = "5e-06" if "sokoban" in stage else "9e-06"
        assert f"at lr {lr}" in out and "gamma 1 lambda 1, value clip 0.2" in out
        assert "ppo_gae" in out and "[upstream behaviour not selectable]" not in out.split("ppo_gae")[-1].split("\n")[0]
    for stage in ("fre_text", "fre_multi", "mgt_percept"):
        assert preset(stage, "paper", follows=follows).algorithm == "reinforce_pp_baseline"


def test_bad_critic_settings_are_named():
    from lmm_r1.config import ConfigError

    with pytest.raises(ConfigError, match="critic_learning_rate must be > 0"):
        preset("mgt_geometry", "tiny", algorithm="ppo_gae", critic_learning_rate=0.0)
    with pytest.raises(ConfigError, match="LoRA"):
        preset("mgt_geometry", "tiny", algorithm="ppo_gae", lora_r=8)
    with pytest.raises(ConfigError, match="gae_lambda must lie in"):
        preset("mgt_geometry", "tiny", algorithm="ppo_gae", gae_lambda=1.5)


def test_under_deepspeed_the_critic_is_a_second_engine(monkeypatch, tmp_path):
    """DeepSpeed cannot run here (no GPU): the kit's side of its documented API, with deepspeed stood in.
    ``deepspeed.initialize(model=, optimizer=, lr_scheduler=, config=)`` returns (engine, optimizer, dataloader,
    scheduler); the engine's ``backward`` scales by its accumulation steps and ``step`` steps at the boundary;
    ``save_checkpoint``/``load_checkpoint(dir, tag=)`` are collective."""
    import sys
    import types

    calls = []

    class Engine:
        def __init__(self, module):
            self.module = module

        def __call__(self, *a, **k):
            return self.module(*a, **k)

        def backward(self, loss):
            calls.append(("backward", round(loss.item(), 6)))

        def step(self):
            calls.append(("step",))

        def save_checkpoint(self, folder, tag):
            calls.append(("save", folder, tag))

        def load_checkpoint(self, folder, tag):
            calls.append(("load", folder, tag))

    def initialize(model=None, optimizer=None, lr_scheduler=None, config=None, dist_init_required=None):
        calls.append(("initialize", config, optimizer, lr_scheduler))
        return Engine(model), optimizer, None, lr_scheduler

    monkeypatch.setitem(sys.modules, "deepspeed", types.SimpleNamespace(initialize=initialize))
    actor_config = {"zero_optimization": {"stage": 3}, "bf16": {"enabled": True}, "gradient_accumulation_steps": 2,
                    "optimizer": {"type": "AdamW"}, "scheduler": {"type": "WarmupLR"}}
    values = torch.tensor([[0.5, 0.25]], requires_grad=True)
    critic = lambda **kw: values * 1.0  # noqa: E731  (a critic whose values are a leaf tensor)
    fake = types.SimpleNamespace(
        is_deepspeed_enabled=True, critic=critic, critic_engine=None, critic_optimizer="adamw", critic_scheduler="cos",
        value_clip=0.2, current_gradient_accumulation_steps=2, _metrics={"train": __import__("collections").defaultdict(list)},
        accelerator=types.SimpleNamespace(state=types.SimpleNamespace(
            deepspeed_plugin=types.SimpleNamespace(deepspeed_config=actor_config))))
    fake._critic_forward = LMMR1Trainer._critic_forward.__get__(fake)
    fake._critic_inputs = LMMR1Trainer._critic_inputs.__get__(fake)
    engine = fake._critic_forward()
    assert fake._critic_forward() is engine  # built once
    kind, config, optimizer, scheduler = calls[0]
    # the actor's finished config without its optimizer and scheduler (the critic's are the kit's), untouched itself
    assert "optimizer" not in config and "scheduler" not in config and config["zero_allow_untested_optimizer"]
    assert config["zero_optimization"] == {"stage": 3} and "optimizer" in actor_config
    assert (optimizer, scheduler) == ("adamw", "cos")
    inputs = {"prompt_ids": torch.ones(1, 2, dtype=torch.long), "completion_ids": torch.ones(1, 2, dtype=torch.long),
              "prompt_mask": torch.ones(1, 2), "completion_mask": torch.ones(1, 2),
              "old_values": torch.zeros(1, 2), "returns": torch.ones(1, 2)}
    LMMR1Trainer._critic_backward(fake, inputs)
    # the unscaled value loss goes to the engine (it divides by its own accumulation steps), then its step
    expected = critic_mod.value_loss(values, inputs["old_values"], inputs["returns"], inputs["completion_mask"], 0.2)
    assert calls[1:] == [("backward", round(expected.item(), 6)), ("step",)]
    fake.args = types.SimpleNamespace(should_save=True)
    calls.clear()
    LMMR1Trainer._save_critic(fake, tmp_path / "checkpoint-7")
    assert calls == [("save", str(tmp_path / "checkpoint-7"), "critic")] and not (tmp_path / "checkpoint-7").exists()
    (tmp_path / "checkpoint-7" / "critic").mkdir(parents=True)
    calls.clear()
    LMMR1Trainer._load_critic(fake, tmp_path / "checkpoint-7")
    assert calls == [("load", str(tmp_path / "checkpoint-7"), "critic")]
