"""Stage configs: the paper presets hand-checked against PAPER.md §2-3, validation, and the TRL mapping."""

from __future__ import annotations

import dataclasses

import pytest

from lmm_r1.config import (ConfigError, StageConfig, all_presets, canonical_stage, field_docs, from_dict,
                           parse_value, preset, to_dict)

# PAPER.md §3, typed in by hand from the table (not read from config.py); the script column as the released
# scripts have it at the paper-time commit dd143ad (examples/scripts/lmm_r1/train_*.sh), which for MGT-PerceReason
# is --init_kl_coef 0.0 and --generate_max_len 8000 where PAPER.md's table says 1e-3 and 8192.
# stage: (prompts per rollout paper/script, episodes paper/script, max generation paper/script,
#         actor lr paper/script, KL coef paper/script, critic lr)
PAPER_TABLE = {
    "fre_text": ((128, 256), (1, 2), (8192, 4096), (1e-6, 4e-7), (1e-3, 1e-3), 9e-6),
    "fre_multi": ((256, 256), (2, 2), (8192, 4096), (1e-6, 1e-6), (1e-3, 1e-3), 9e-6),
    "mgt_geometry": ((256, 256), (2, 2), (8192, 4096), (4e-7, 1e-6), (1e-3, 1e-3), 9e-6),
    "mgt_percept": ((256, 256), (2, 2), (8192, 8000), (4e-7, 4e-7), (1e-3, 0.0), None),
    "mgt_sokoban": ((128, 128), (4, 4), (8192, 8196), (1e-6, 1e-6), (0.0, 0.0), 5e-6),
    # Direct-RL: "the same RL on the same domain, from the base model" (PAPER.md §1)
    "direct_rl_geometry": ((256, 256), (2, 2), (8192, 4096), (4e-7, 1e-6), (1e-3, 1e-3), 9e-6),
    "direct_rl_sokoban": ((128, 128), (4, 4), (8192, 8196), (1e-6, 1e-6), (0.0, 0.0), 5e-6),
}
PAPER_STAGES = list(PAPER_TABLE)


@pytest.mark.parametrize("follows", ["paper", "scripts"])
@pytest.mark.parametrize("stage", PAPER_STAGES)
def test_paper_preset_matches_the_table(stage, follows):
    prompts, episodes, max_gen, lr, kl, critic_lr = PAPER_TABLE[stage]
    i = 0 if follows == "paper" else 1
    cfg = preset(stage, "paper", follows=follows)
    assert cfg.follows == follows
    assert cfg.num_generations == 16  # samples per prompt, every stage
    assert cfg.generation_batch_size == prompts[i] * 16
    assert cfg.prompts_per_rollout == prompts[i]
    assert cfg.num_episodes == episodes[i]
    assert cfg.max_completion_length == max_gen[i]
    assert cfg.learning_rate == lr[i]
    assert cfg.beta == kl[i]
    assert cfg.critic_learning_rate == critic_lr
    # OpenRLHF: train_batch_size (samples) = the rollout's prompt count, so prompts x 16 / train batch = 16 steps
    assert cfg.updates_per_rollout == 16 and cfg.completions_per_update == prompts[i]


@pytest.mark.parametrize("stage", PAPER_STAGES)
def test_paper_preset_shared_recipe(stage):
    cfg = preset(stage, "paper")
    # PAPER.md §2: clip 0.2, 16 optimizer steps per rollout, Adam (0.9, 0.95), grad clip 1.0, cosine to 0.1*lr,
    # warm-up 0.03, seed 42, bf16, vLLM colocated with util 0.5 and sleep mode
    assert (cfg.epsilon, cfg.updates_per_rollout, cfg.adam_beta1, cfg.adam_beta2) == (0.2, 16, 0.9, 0.95)
    # paper-time OpenRLHF: REINFORCE++-baseline (FRE, MGT-PerceReason) or PPO with GAE and a critic (the released
    # train_mgt_geo.sh, train_direct_rl_geo.sh, train_sokoban.sh), k1 KL in the reward, per-sequence token mean,
    # no vLLM IS weight
    gae = stage in ("mgt_geometry", "direct_rl_geometry", "mgt_sokoban", "direct_rl_sokoban")
    assert cfg.algorithm == ("ppo_gae" if gae else "reinforce_pp_baseline")
    assert (cfg.loss_type, cfg.vllm_importance_sampling) == ("grpo", "off")
    if gae:  # --gamma 1 --lambd 1, OpenRLHF's --value_clip default; the critic lr from the table
        assert (cfg.gae_gamma, cfg.gae_lambda, cfg.value_clip) == (1.0, 1.0, 0.2)
        assert cfg.critic_learning_rate == (5e-6 if "sokoban" in stage else 9e-6)
        assert "--advantage_estimator gae" in cfg.sources["algorithm"]
    assert cfg.reward_semantics == "upstream"
    assert cfg.kl_placement == ("none" if "sokoban" in stage else "k1 in the reward")
    assert (cfg.max_grad_norm, cfg.min_lr_ratio, cfg.warmup_ratio, cfg.seed) == (1.0, 0.1, 0.03, 42)
    assert cfg.bf16 and cfg.use_vllm and cfg.vllm_mode == "colocate" and cfg.vllm_enable_sleep_mode
    assert cfg.vllm_gpu_memory_utilization == 0.5
    # PAPER.md §3: temperature 1.0, top_p 1.0, prompt max 4096, pixels 4*28*28 .. 640*28*28
    assert (cfg.temperature, cfg.top_p, cfg.max_prompt_length) == (1.0, 1.0, 4096)
    assert (cfg.min_pixels, cfg.max_pixels) == (4 * 28 * 28, 640 * 28 * 28)
    assert cfg.model == "Qwen/Qwen2.5-VL-3B-Instruct" and cfg.lora_r == 0


# stage: (vision tower frozen, init_from, system prompt, task, paper data set)
STAGE_SHAPE = {
    "fre_text": (False, None, "r1", "arith", "deepscaler"),          # text-only FRE from the base model
    "fre_multi": (False, None, "r1", "percept", "vermulti"),         # the multimodal FRE ablation arm
    "mgt_percept": (False, "fre_text", "r1", "percept", "vermulti"), # MGT continues from FRE-Text
    "mgt_geometry": (False, "fre_text", "r1", "geometry", "vermulti_geo"),
    "mgt_sokoban": (True, "fre_text", "sokoban", "sokoban", "sokoban_levels"),  # vision frozen; gym-sokoban
    "direct_rl_geometry": (False, None, "r1", "geometry", "vermulti_geo"),  # baselines: from the base model
    "direct_rl_sokoban": (True, None, "sokoban", "sokoban", "sokoban_levels"),
}


@pytest.mark.parametrize("stage", list(STAGE_SHAPE))
@pytest.mark.parametrize("which", ["paper", "tiny"])
def test_stage_shape(stage, which):
    frozen, init_from, system, task, dataset = STAGE_SHAPE[stage]
    cfg = preset(stage, which)
    assert (cfg.freeze_vision_tower, cfg.init_from, cfg.system_prompt, cfg.task) == (frozen, init_from, system, task)
    assert cfg.dataset == (dataset if which == "paper" else None)
    assert cfg.beta == (0.0 if "sokoban" in stage else 1e-3)  # the tiny presets keep the paper's KL


def test_algorithm_mapping():
    # OpenRLHF's REINFORCE++-baseline starts from TRL's unscaled group-mean advantages (lmm_r1.trainer whitens them);
    # TRL's own: batch std ("trl_batch_std"), GRPO = "group", Dr.GRPO = "none"
    for algorithm, scale in (("reinforce_pp_baseline", "none"), ("trl_batch_std", "batch"), ("grpo", "group"),
                             ("dr_grpo", "none")):
        assert preset("fre_text", "tiny", algorithm=algorithm).scale_rewards == scale
    assert preset("fre_text", "tiny", algorithm="grpo").kl_placement == "k3 in the loss"
    # what upstream ran: REINFORCE++-baseline in the FRE-Text script, PPO for MGT-Geo's script and the paper
    assert "REINFORCE++" in preset("fre_text", "paper", follows="scripts").upstream_algorithm
    assert "PPO" in preset("mgt_geometry", "paper", follows="scripts").upstream_algorithm
    assert "PPO" in preset("fre_text", "paper", follows="paper").upstream_algorithm


def test_every_field_has_a_docstring_and_every_preset_value_a_source():
    names = [f.name for f in dataclasses.fields(StageConfig)]
    docs = field_docs()
    assert [n for n in names if not docs.get(n)] == []
    for cfg in all_presets().values():
        assert set(cfg.sources) >= set(names)
    cfg = preset("fre_text", "paper", follows="scripts")
    assert "4e-07 (script)" in cfg.sources["learning_rate"] and "FRE-Text" in cfg.sources["learning_rate"]
    assert preset("fre_text", "tiny", max_steps=3).sources["max_steps"] == "override"


@pytest.mark.parametrize("overrides, message", [
    ({"num_generations": 3}, "num_generations (3) does not divide generation_batch_size (128)"),  # 128 % 3
    ({"learnin_rate": 1e-3}, "did you mean 'learning_rate'"),             # a typo names the nearest key
    ({"learning_rate": "1e-6"}, "'learning_rate' must be float"),          # YAML reads 1e-6 as a string
    ({"num_generations": 8.0}, "'num_generations' must be int"),           # no silent float -> int
    ({"use_vllm": 1}, "'use_vllm' must be bool"),                          # 1 is not True here
    ({"algorithm": "ppo"}, "'algorithm' must be one of"),                  # no PPO in TRL's GRPO
    ({"num_generations": 1}, "num_generations must be >= 2"),              # no baseline in a group of one
    ({"max_steps": 0}, "max_steps must be -1"),
    ({"min_pixels": 10**6}, "min_pixels"),                                 # larger than max_pixels
    ({"init_from": ""}, "init_from is an empty string"),
])
def test_bad_values_fail_fast(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        preset("fre_text", "tiny", **overrides)


def test_unknown_stage_and_aliases():
    with pytest.raises(ConfigError, match="did you mean 'fre_text'"):
        preset("fre_txt", "tiny")
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("fre_text", "huge")
    # the paper's names map onto the kit's
    assert canonical_stage("FRE-Text") == "fre_text"
    assert canonical_stage("MGT-PerceReason") == "mgt_percept"
    assert canonical_stage("Direct-RL-Geo") == "direct_rl_geometry"


def test_config_is_frozen_and_round_trips():
    cfg = preset("mgt_percept", "tiny", seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 4
    assert from_dict(to_dict(cfg)) == cfg
    assert cfg.run_name == "mgt_percept_seed3"
    assert cfg.replace(seed=5).run_name == "mgt_percept_seed5"


@pytest.mark.parametrize("key, text, value", [
    ("learning_rate", "1e-6", 1e-6),           # float from scientific notation
    ("max_steps", "20", 20),
    ("use_vllm", "false", False),
    ("init_from", "none", None),               # Optional fields take none/null
    ("init_from", "fre_text", "fre_text"),
    ("lora_target_modules", "q_proj,v_proj", ("q_proj", "v_proj")),
])
def test_parse_value(key, text, value):
    assert parse_value(key, text) == value


def test_parse_value_errors():
    with pytest.raises(ConfigError, match="cannot read 'abc' as int"):
        parse_value("max_steps", "abc")
    with pytest.raises(ConfigError, match="unknown config key"):
        parse_value("max_step", "3")


def test_trl_mapping():
    from lmm_r1.grpo import grpo_args

    cfg = preset("fre_text", "paper", follows="scripts")
    args = grpo_args(cfg, "/tmp/unused", [0.5, 1.0], processes=8)
    assert args.scale_rewards == "none" and args.beta == 1e-3 and args.epsilon == 0.2
    assert args.loss_type == "grpo" and args.num_iterations == 1
    assert args.vllm_importance_sampling_correction is False  # TRL's default is True
    assert str(args.lr_scheduler_type.value) == "cosine_with_min_lr"
    assert args.lr_scheduler_kwargs == {"min_lr_rate": 0.1} and args.warmup_steps == 0.03
    assert (args.adam_beta1, args.adam_beta2, args.max_grad_norm, args.learning_rate) == (0.9, 0.95, 1.0, 4e-7)
    assert (args.temperature, args.top_p, args.top_k, args.max_completion_length) == (1.0, 1.0, 0, 4096)
    assert args.num_generations == 16 and args.generation_batch_size == 256 * 16
    # 4096 completions per rollout / 16 updates = 256 per update, over 8 GPUs x 4 per pass = 8 accumulation steps;
    # TRL then generates every 8 x 16 = 128 micro-steps and computes old log-probs (the clip acts)
    assert args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 8
    # (TRL derives steps_per_generation = generation batch / (per-device batch x world size) at launch)
    assert args.generation_batch_size // (args.per_device_train_batch_size * 8) == 8 * 16
    assert args.use_vllm and args.vllm_mode == "colocate" and args.vllm_enable_sleep_mode
    assert args.vllm_max_model_length == 4096 + 4096 and args.bf16


def test_batch_that_the_world_size_cannot_split():
    from lmm_r1.grpo import gradient_accumulation_steps

    cfg = preset("fre_text", "paper")  # 2048 completions per rollout, 128 per update
    assert gradient_accumulation_steps(cfg, 8) == 4
    assert gradient_accumulation_steps(cfg, 4) == 8  # the README's server layout: 4 training processes
    with pytest.raises(ConfigError, match="7 process"):
        gradient_accumulation_steps(cfg, 7)


def test_paper_presets_use_the_upstream_reward_edge_cases():
    # the code behind the paper's numbers (math_verifier.py, sokoban_verifier.py at dd143ad), in both columns
    from lmm_r1.grpo import reward_setup

    for follows in ("paper", "scripts"):
        funcs, _ = reward_setup(preset("fre_text", "paper", follows=follows))
        assert funcs[1].options["verify_order"] == "upstream" and funcs[1].options["unparseable_gold_score"] == 1.0
        assert funcs[1].options["error_score"] == 1.0
        assert reward_setup(preset("mgt_sokoban", "paper", follows=follows))[0][0].semantics == "upstream"
    kit = reward_setup(preset("fre_text", "paper", reward_semantics="kit"))[0][1]
    assert (kit.options["verify_order"], kit.options["unparseable_gold_score"]) == ("gold_first", None)
    # PAPER.md §6: 11,500 generated Sokoban levels
    assert preset("mgt_sokoban", "paper").train_size == 11_500


def test_a_run_tag_names_a_second_run_of_one_stage_and_seed():
    cfg = preset("mgt_geometry", "tiny", seed=1)
    assert cfg.run_name == "mgt_geometry_seed1"
    tagged = cfg.replace(algorithm="ppo_gae", run_tag="ppo_gae", critic_learning_rate=9e-4)
    assert tagged.run_name == "mgt_geometry_ppo_gae_seed1" and tagged.sources["run_tag"] == "override"
    assert tagged.init_from == "fre_text"  # the critic arm still starts from FRE-Text's seed-1 run
    for bad in ("PPO", "a/b", "_x", "x_"):
        with pytest.raises(ConfigError, match="run_tag must be"):
            cfg.replace(run_tag=bad)
