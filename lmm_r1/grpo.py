r"""The GRPO core: a stage config (``lmm_r1.config``) -> TRL's GRPOTrainer -> a trained model and its run record.

    lmm-r1 train --stage fre_text --preset tiny                      # one stage, on this machine
    lmm-r1 train --stage mgt_percept --preset tiny --seed 1 --set max_steps=20
    accelerate launch --config_file configs/zero3_8gpu.yaml -m lmm_r1.cli train --stage fre_text --preset paper

    from lmm_r1.grpo import train
    record = train(preset("fre_text", "tiny"), results_dir="results")   # the dict written to metrics.json

A run writes ``results/<profile>/<stage>_seed<seed>/``: ``model/`` (weights + processor: the next stage's
``init_from``), ``metrics.json`` (the run record), ``metrics.jsonl`` and ``completions.jsonl``
(``lmm_r1.training_log``), ``checkpoints/`` (resumable). A killed run started again resumes from its last
checkpoint at the same step.

The objective. The paper (PAPER.md §2) maximises, for prompts x ~ D and responses y ~ π_θ(·|x),

    J(θ) = E[ r(x, y) ] - β · KL(π_θ(·|x) ‖ π_ref(·|x)),      r = 0.5·format + accuracy (or the Sokoban reward),

and the released scripts run it with OpenRLHF. What runs here is TRL's GRPOTrainer through the kit's subclass
(``lmm_r1.trainer``): for each prompt, G = num_generations responses y_1..y_G, and per sequence i and token t

    L(θ) = -1/B Σ_i 1/|y_i| Σ_t min(ρ_{i,t} Â_{i,t}, clip(ρ_{i,t}, 1-ε, 1+ε) Â_{i,t})    (loss_type="grpo")
    ρ_{i,t} = π_θ(y_{i,t} | x, y_{i,<t}) / π_θold(y_{i,t} | x, y_{i,<t})
    Â_{i,t} = whiten( clip(r_i - mean_j r_j, ±10) - β Σ_{s>=t} (log π_θold - log π_ref)(y_{i,s}) )

with the whitening over every completion token of the rollout: OpenRLHF's REINFORCE++-baseline
(``algorithm="reinforce_pp_baseline"``, the default; ``trl_batch_std``, ``grpo`` and ``dr_grpo`` keep TRL's
sequence-level estimators with a k3 KL term in the loss). Each rollout is shuffled and split into
``updates_per_rollout`` optimizer steps (16 in the paper presets, as OpenRLHF's rollout / train batch sizes
give), so ρ ≠ 1 from the second step on and the clip acts. The paper's text and the scripts' MGT-Geo and
Sokoban runs use PPO with GAE and a critic instead, which the kit does not implement: those stages run the
estimator above. Every departure is listed in ``lmm_r1.fidelity`` (printed by ``--dry-run``, written into
every run record).

On GPUs, rollouts run in vLLM colocated with training (``vllm_mode="colocate"``, PAPER.md §2); the server mode
runs generation on GPUs of its own (here 4 + 4: the number of training processes must divide the completions
of one update, 2048 = 128 prompts x 16, by processes x micro_batch_size; TRL pushes the policy's weights to the
server before every rollout, so the server starts from the same folder the stage starts from):

    lmm-r1 train --stage fre_text --preset paper --set vllm_mode=server --vllm-serve-command   # prints:
    CUDA_VISIBLE_DEVICES=4,5,6,7 trl vllm-serve --model Qwen/Qwen2.5-VL-3B-Instruct --max_model_len 12288 \
        --gpu_memory_utilization 0.9 --mm-processor-kwargs '{"min_pixels": 3136, "max_pixels": 501760}'
    CUDA_VISIBLE_DEVICES=0,1,2,3 accelerate launch --config_file configs/zero3_8gpu.yaml --num_processes 4 \
        -m lmm_r1.cli train --stage fre_text --preset paper --set vllm_mode=server

On a machine without CUDA, training runs in float32 with transformers' ``generate`` (the tiny presets); a
paper preset fails there at once, saying what it needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmm_r1.config import STAGES, TINY_MODEL, ConfigError, StageConfig, canonical_stage, preset, to_dict
from lmm_r1 import fidelity
from lmm_r1.data import is_jsonl_path
from lmm_r1.hardware import HardwareError, check_hardware, cuda_problem  # noqa: F401 - grpo's public names
from lmm_r1.results import package_version, run_dir, write_run_record

MODEL_DIR = "model"
ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
# Metrics averaged over the first and last few logged steps go into metrics.json (noisy per step at tiny scale).
SUMMARY_WINDOW = 5


class InitFromError(ValueError):
    """``init_from`` (or ``model``) does not point at a loadable model."""


class DataError(ValueError):
    """The training data is unusable (e.g. no rows left after filtering)."""


# ------------------------------------------------------------------------------------------------------------
# Checks that run before anything is loaded: each bad input fails in seconds, not after hours.

def world_size() -> int:
    """Training processes of this launch (``accelerate launch`` sets WORLD_SIZE; a plain run is 1)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launch_state():
    """accelerate's PartialState for this launch, built as the trainer's ``TrainingArguments(use_cpu=...)``
    builds its own. A bare ``PartialState()`` on a machine without CUDA is ``DistributedType.NO`` even under
    torchrun: every rank is then "the main process" and ``main_process_first`` waits for no one (two ranks
    rewrote ``config.json`` while the other read it)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def end_launch() -> None:
    """The ranks of a launch leave together, each after taking down its process group: the other ranks wait
    while the main one writes the run record, and no rank exits with gloo's threads alive (a rank that did so
    aborted with "terminate called without an active exception" after a finished run, failing the launch; seen
    once in the CPU rehearsal). Nothing to do outside a launch."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gradient_accumulation_steps(cfg: StageConfig, processes: int) -> int:
    """Micro-batches per optimizer step, so that one step sees ``cfg.completions_per_update`` completions."""
    per_pass = processes * cfg.micro_batch_size
    if cfg.completions_per_update % per_pass:
        raise ConfigError(
            f"one update holds {cfg.completions_per_update} completions (generation_batch_size "
            f"{cfg.generation_batch_size} / updates_per_rollout {cfg.updates_per_rollout}), which "
            f"{processes} process(es) x micro_batch_size {cfg.micro_batch_size} = {per_pass} does not divide")
    return cfg.completions_per_update // per_pass


def _init_stage(cfg: StageConfig) -> str | None:
    """The stage whose run ``init_from`` names, or None when it is a folder."""
    if cfg.init_from is None or Path(cfg.init_from).exists():
        return None
    try:
        return canonical_stage(cfg.init_from)
    except ConfigError:
        return None


def init_path(cfg: StageConfig, *, profile: str | None = None, results_dir: str | Path | None = None) -> str:
    """Where the policy starts, unchecked: ``init_from``'s folder (a stage name -> that stage's run with the same
    profile and seed), else ``model`` as given ("tiny" stays "tiny"). ``resolve_init`` checks it."""
    stage = _init_stage(cfg)
    if stage is not None:
        return str(run_dir(profile or cfg.preset, f"{stage}_seed{cfg.seed}", results_dir) / MODEL_DIR)
    return cfg.init_from if cfg.init_from is not None else cfg.model


def resolve_init(cfg: StageConfig, *, profile: str, results_dir: str | Path | None = None) -> str:
    """The folder or hub id the policy starts from: ``init_from`` if set (a stage name -> that stage's run with
    the same profile and seed), else ``model`` ("tiny" -> the default warm-started tiny model)."""
    if cfg.init_from is not None:
        stage = _init_stage(cfg)
        path = Path(init_path(cfg, profile=profile, results_dir=results_dir))
        if stage is not None:
            how = (f"run `lmm-r1 train --stage {stage} --preset {cfg.preset} --seed {cfg.seed}` first "
                   f"(or notebook 02), or point init_from at a model folder")
        else:
            how = "init_from must be a model folder written by a previous stage (it holds config.json and weights)"
        from lmm_r1.models import is_model_dir

        if not is_model_dir(path):
            what = "does not exist" if not path.exists() else "is not a model folder (no config.json + *.safetensors)"
            raise InitFromError(f"init_from={cfg.init_from!r}: {path} {what}; {how}")
        return str(path)
    if cfg.model == TINY_MODEL:
        from lmm_r1.toy.model import build_tiny_model, print_progress

        return str(build_tiny_model(log=print_progress))  # the shipped copy (a build, its phases shown, only without it)
    return cfg.model


def load_check(path: str, cfg: StageConfig):
    """Load the model and processor at ``path`` and run one forward pass; wrap any failure in InitFromError.

    This is the hand-off check between stages: a broken stage-1 output fails here, before stage 2 loads data,
    builds vLLM or allocates an optimizer. Returns (model, processor) for training. With ``use_vllm`` the folder
    is also loaded by vLLM, in a subprocess so its GPU memory is released before training.
    """
    import torch

    from lmm_r1.models import load_model, load_processor

    from transformers.integrations import is_deepspeed_zero3_enabled

    try:
        processor = load_processor(path, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
        dtype = torch.bfloat16 if cfg.bf16 else torch.float32
        model = load_model(path, dtype=dtype)
        # Under ZeRO-3 the weights are already partitioned over the ranks: a forward pass needs the engine.
        if not is_deepspeed_zero3_enabled():
            ids = processor.tokenizer("1+1=", return_tensors="pt")
            with torch.inference_mode():
                logits = model(**ids).logits
            if not torch.isfinite(logits).all():
                raise ValueError("the forward pass gives non-finite logits")
    except Exception as e:  # any load failure means the same thing to the user: this is not a usable model
        raise InitFromError(f"{path} does not load as a {cfg.stage} policy: {type(e).__name__}: {e}") from e
    # vLLM loads the folder the same way on every rank: one check, on each node's first process, suffices.
    if cfg.use_vllm and cfg.vllm_mode == "colocate" and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        vllm_load_check(path, max_model_len=cfg.max_prompt_length + cfg.max_completion_length)
    return model, processor


def vllm_load_check(path: str, max_model_len: int, timeout_s: float = 900) -> None:
    """Load ``path`` in vLLM and generate a few tokens, in a subprocess (GPU only) on this process's GPU."""
    env = dict(os.environ)
    if "CUDA_VISIBLE_DEVICES" in env:  # the first visible device: the one LOCAL_RANK 0 trains on
        env["CUDA_VISIBLE_DEVICES"] = env["CUDA_VISIBLE_DEVICES"].split(",")[0]
    else:
        env["CUDA_VISIBLE_DEVICES"] = "0"
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):  # not part of the launch
        env.pop(key, None)
    code = ("import sys; from vllm import LLM, SamplingParams; "
            f"llm = LLM(model=sys.argv[1], max_model_len={max_model_len}, gpu_memory_utilization=0.3, "
            "enforce_eager=True, limit_mm_per_prompt={'image': 1}); "
            "out = llm.generate(['1+1='], SamplingParams(max_tokens=4)); assert out[0].outputs")
    try:
        proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise InitFromError(f"vLLM did not load {path} within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise InitFromError(f"vLLM cannot load {path}:\n{proc.stderr[-3000:]}")


# ------------------------------------------------------------------------------------------------------------
# Data and rewards.

def load_train_dataset(cfg: StageConfig, processor):
    """The stage's training prompts, with prompts over ``max_prompt_length`` tokens dropped. Returns
    (dataset, n_dropped); no rows left is a DataError."""
    from lmm_r1.data import filter_by_prompt_length

    if cfg.dataset is None:
        from lmm_r1.toy.tasks import TASKS

        if cfg.train_size <= 0:
            raise DataError(f"train_size must be > 0 to generate the {cfg.task!r} task's rows")
        ds = TASKS[cfg.task].make_dataset("train", cfg.train_size, seed=cfg.seed, system_prompt=cfg.system_prompt)
    elif cfg.dataset == "sokoban_levels":
        ds = _sokoban_levels(cfg)
    else:
        from lmm_r1 import data

        if is_jsonl_path(cfg.dataset):  # the researcher's own message JSONL; data_dir re-roots its images
            ds = data.load_message_jsonl(cfg.dataset, image_root=cfg.data_dir, system_prompt=cfg.system_prompt)
        else:
            ds = data.load_paper_dataset(cfg.dataset, system_prompt=cfg.system_prompt, cache_dir=cfg.data_dir)
        if cfg.train_size:
            ds = ds.select(range(min(cfg.train_size, len(ds))))
    source = cfg.dataset or f"the generated {cfg.task!r} task"
    if len(ds) == 0:
        raise DataError(f"{source} has no rows")
    ds, dropped = filter_by_prompt_length(ds, processor, cfg.max_prompt_length)
    if len(ds) == 0:
        raise DataError(f"no training prompts left: all {dropped} prompts of {source} are longer than "
                        f"max_prompt_length={cfg.max_prompt_length} tokens; raise max_prompt_length or "
                        "lower max_pixels")
    return ds, dropped


def _sokoban_levels(cfg: StageConfig):
    """The paper's 11,500 gym-sokoban levels for seed ``cfg.seed``: generated once (all cores), then loaded."""
    from lmm_r1 import data, sokoban_levels
    from lmm_r1.toy.model import default_cache_dir

    root = Path(cfg.data_dir or default_cache_dir() / "sokoban_levels") / f"seed{cfg.seed}"
    if not (root / sokoban_levels.JSONL_NAME).exists():
        print(f"[lmm-r1] the paper's Sokoban levels (seed {cfg.seed}) under {root}: generating them, or waiting "
              "for the process that does ...", file=sys.stderr)
    # every rank of a launch gets here at once: one generates, the others wait for it (sokoban_levels.ensure)
    jsonl = sokoban_levels.ensure(root, seed=cfg.seed, workers=os.cpu_count() or 1,
                                  progress=lambda line: print(line, file=sys.stderr, flush=True))
    ds = data.load_message_jsonl(jsonl, system_prompt=cfg.system_prompt)
    return ds.select(range(min(cfg.train_size, len(ds)))) if cfg.train_size else ds


def reward_setup(cfg: StageConfig):
    """TRL's reward_funcs and reward_weights for the stage (``lmm_r1.rewards``, PAPER.md §4)."""
    from lmm_r1 import rewards

    if cfg.reward_kind == "sokoban":
        return rewards.reward_funcs("sokoban", semantics=cfg.reward_semantics)
    return rewards.reward_funcs("math", semantics=cfg.reward_semantics, timeout=cfg.verify_timeout)


class RewardCounterDeltas:
    """The reward counters' increase since the previous call: per-step counts that survive a resume."""

    def __init__(self):
        from lmm_r1.rewards import reward_counters

        self._read = reward_counters
        self._last = dict(reward_counters())

    def __call__(self) -> dict[str, int]:
        now = dict(self._read())
        delta = {k: v - self._last.get(k, 0) for k, v in now.items()}
        self._last = now
        return delta


# ------------------------------------------------------------------------------------------------------------
# The trainer.

def grpo_args(cfg: StageConfig, output_dir: str | Path, reward_weights: list[float], processes: int | None = None):
    """TRL's GRPOConfig for ``cfg``: the one place where kit fields become TRL fields."""
    import torch
    from trl import GRPOConfig

    processes = processes or world_size()
    on_gpu = torch.cuda.is_available()
    vllm_server = {}
    if cfg.vllm_server_base_url:
        vllm_server["vllm_server_base_url"] = cfg.vllm_server_base_url
    return GRPOConfig(
        output_dir=str(output_dir),
        seed=cfg.seed,
        # batch: one rollout = generation_batch_size completions; an update = completions_per_update of them
        num_generations=cfg.num_generations,
        generation_batch_size=cfg.generation_batch_size,
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps(cfg, processes),
        num_train_epochs=cfg.num_episodes,
        max_steps=cfg.max_steps,
        # algorithm (PAPER.md §2)
        scale_rewards=cfg.scale_rewards,
        loss_type=cfg.loss_type,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        num_iterations=1,  # each rollout is used for one pass (max_epochs 1), split into updates_per_rollout steps
        reward_weights=reward_weights,
        # optimiser: AdamW, cosine to min_lr_ratio * lr after a linear warm-up (PAPER.md §2)
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_ratio},
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of the total steps in transformers 5
        optim="adamw_torch",
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        # sampling
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=0,
        max_completion_length=cfg.max_completion_length,
        # hardware: bf16 + vLLM on GPUs; float32 + transformers' generate on a CPU
        use_cpu=not on_gpu,
        bf16=cfg.bf16,
        fp16=False,
        gradient_checkpointing=cfg.gradient_checkpointing,
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        vllm_enable_sleep_mode=cfg.vllm_enable_sleep_mode,
        vllm_max_model_length=cfg.max_prompt_length + cfg.max_completion_length,
        # TRL 1.16 turns this on by default; upstream has nothing like it (fidelity: vllm_is_correction)
        vllm_importance_sampling_correction=cfg.vllm_importance_sampling != "off",
        vllm_importance_sampling_mode=("sequence_mask" if cfg.vllm_importance_sampling == "off"
                                       else cfg.vllm_importance_sampling),
        vllm_importance_sampling_clip_max=cfg.vllm_importance_sampling_cap,
        **vllm_server,
        # logging: the kit's RunLog writes JSONL/TensorBoard; TRL's own reporters stay off
        logging_steps=cfg.logging_steps,
        report_to="none",
        log_completions=False,
        disable_tqdm=False,
        # checkpoints: model, optimizer, scheduler, RNG and trainer state, for an exact resume
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        remove_unused_columns=False,  # the rewards read answer / level columns
        dataloader_num_workers=0,
    )


def freeze_vision_tower(model) -> int:
    """Stop gradients into the vision encoder and its merger (Sokoban, PAPER.md §3); return the frozen count."""
    visual = getattr(getattr(model, "model", model), "visual", None)
    if visual is None:
        raise ConfigError("freeze_vision_tower=True but the model has no vision tower (model.model.visual)")
    visual.requires_grad_(False)
    return sum(p.numel() for p in visual.parameters())


def lora_config(cfg: StageConfig):
    """peft LoRA on the language model's linear layers only (a regex keeps the vision tower's mlp out)."""
    from peft import LoraConfig

    names = "|".join(cfg.lora_target_modules)
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=rf".*language_model.*\.({names})", task_type="CAUSAL_LM")


@dataclass
class Stage:
    """A built stage: the trainer and what it was built from."""

    trainer: Any
    cfg: StageConfig
    source: str
    """Folder or hub id the policy was initialised from."""
    n_train: int
    n_dropped: int
    run_log: Any = None


def build_trainer(cfg: StageConfig, *, output_dir: str | Path, profile: str | None = None,
                  results_dir: str | Path | None = None, callbacks: list | None = None) -> Stage:
    """Check the inputs, load model, processor, data and rewards, and return the GRPOTrainer (not yet trained)."""
    check_hardware(cfg)
    processes = world_size()
    gradient_accumulation_steps(cfg, processes)  # batch arithmetic fails before any loading
    if cfg.dataset and is_jsonl_path(cfg.dataset) and not Path(cfg.dataset).is_file():
        raise DataError(f"dataset={cfg.dataset!r}: no such message-JSONL file")
    source = resolve_init(cfg, profile=profile or cfg.preset, results_dir=results_dir)
    funcs, weights = reward_setup(cfg)
    # GRPOConfig first: under ZeRO-3 it must exist before the model loads (weights are partitioned at load).
    args = grpo_args(cfg, output_dir, weights, processes)
    model, processor = load_check(source, cfg)
    train_ds, dropped = load_train_dataset(cfg, processor)
    if cfg.freeze_vision_tower:
        freeze_vision_tower(model)
    from lmm_r1.trainer import LMMR1Trainer

    critic = None
    if cfg.algorithm == "ppo_gae":  # the critic starts from the actor's starting checkpoint, as upstream's
        from lmm_r1.critic import load_critic

        critic = load_critic(source, dtype=model.dtype, seed=cfg.seed,
                             gradient_checkpointing=cfg.gradient_checkpointing)
    trainer = LMMR1Trainer(
        algorithm=cfg.algorithm if cfg.algorithm in ("reinforce_pp_baseline", "ppo_gae") else "trl",
        critic=critic, critic_lr=cfg.critic_learning_rate if critic is not None else None,
        gae_gamma=cfg.gae_gamma, gae_lambda=cfg.gae_lambda, value_clip=cfg.value_clip,
        pixel_limits=pixel_limits(cfg), sentinel_every=cfg.sentinel_every,
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=train_ds,
        processing_class=processor,
        callbacks=callbacks,
        peft_config=lora_config(cfg) if cfg.lora_r else None,
    )
    return Stage(trainer=trainer, cfg=cfg, source=source, n_train=len(train_ds), n_dropped=dropped)


def pixel_limits(cfg: StageConfig) -> dict[str, int]:
    """The stage's image processor limits, as vLLM's ``mm_processor_kwargs`` takes them (vllm 0.31
    model_executor/models/qwen2_vl.py:894-901): rollouts must see the image tokens training sees."""
    return {"min_pixels": cfg.min_pixels, "max_pixels": cfg.max_pixels}


def vllm_serve_command(cfg: StageConfig, model: str | None = None, gpus: str = "4,5,6,7", *,
                       profile: str | None = None, results_dir: str | Path | None = None) -> str:
    """The ``trl vllm-serve`` command for a server-mode run of ``cfg``: the stage's starting model, a context
    for the longest prompt and completion, and the stage's pixel limits (TRL forwards unknown arguments to
    ``vllm serve``, trl scripts/vllm_serve.py:195-276; without them the server uses the folder's processor
    limits, which for the hub model are Qwen's 12.8 MP, not training's)."""
    import shlex

    limits = json.dumps(pixel_limits(cfg))
    model = model or init_path(cfg, profile=profile, results_dir=results_dir)
    return (f"CUDA_VISIBLE_DEVICES={gpus} trl vllm-serve --model {shlex.quote(str(model))} "
            f"--max_model_len {cfg.max_prompt_length + cfg.max_completion_length} "
            f"--gpu_memory_utilization 0.9 --mm-processor-kwargs {shlex.quote(limits)}")


# ------------------------------------------------------------------------------------------------------------
# A whole run: build, train (or resume), save, record.

def _last_checkpoint(folder: Path) -> str | None:
    """The newest *complete* checkpoint: its ``trainer_state.json`` (the main process writes it last, not
    atomically) parses, and every ``rng_state_<rank>.pth`` is a whole file. The other ranks write their RNG state
    with no barrier before the main process's ``trainer_state.json`` (transformers ``Trainer._save_checkpoint``),
    so a kill can tear one even in a folder whose state parses. A torn newest folder is skipped, as a restarted job
    must; resuming from it would stop in ``torch.load``."""
    import zipfile

    from transformers.trainer_utils import sort_checkpoints

    if not folder.is_dir():
        return None
    for path in reversed(sort_checkpoints(str(folder))):  # newest first
        try:
            json.loads((Path(path) / "trainer_state.json").read_text())
            # torch.save writes a zip archive; its directory, at the end, is missing from a torn file
            torn = [p.name for p in sorted(Path(path).glob("rng_state*.pth")) if not zipfile.is_zipfile(p)]
        except (OSError, ValueError):
            torn = ["trainer_state.json"]
        if torn:
            print(f"[lmm-r1] {path} is incomplete (killed while saving?): {', '.join(torn)} not whole; not resuming "
                  "from it", file=sys.stderr)
            continue
        return str(path)
    return None


def _config_json(cfg: StageConfig) -> dict[str, Any]:
    return json.loads(json.dumps(to_dict(cfg), default=list))


def prepare_run_dir(cfg: StageConfig, folder: Path, existing: str) -> str:
    """Decide what to do with ``folder``: "fresh", "resume" (a checkpoint of the same config) or "done"
    (a finished run of the same config). A folder holding another config is an error unless overwritten."""
    if existing not in ("resume", "overwrite"):
        raise ValueError(f"existing must be 'resume' or 'overwrite', got {existing!r}")
    saved = folder / CONFIG_FILE
    if existing == "overwrite" and folder.exists():
        shutil.rmtree(folder)
    if not saved.is_file():
        return "fresh"
    if json.loads(saved.read_text()) != _config_json(cfg):
        raise ConfigError(f"{folder} holds a run with a different config ({saved}); pass existing='overwrite' "
                          "(CLI: --overwrite) to replace it, or choose another results dir")
    if (folder / "metrics.json").is_file() and (folder / MODEL_DIR).is_dir():
        return "done"
    return "resume" if _last_checkpoint(folder / CHECKPOINT_DIR) else "fresh"


def summarize(rows: list[dict[str, Any]], window: int = SUMMARY_WINDOW) -> dict[str, Any]:
    """First and last ``window`` logged steps, averaged, for each metric: the curve's start and end."""
    out: dict[str, Any] = {}
    keys = sorted({k for r in rows for k in r if k != "step"})
    for key in keys:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if not values:
            continue
        out[f"{key}/first"] = sum(values[:window]) / len(values[:window])
        out[f"{key}/last"] = sum(values[-window:]) / len(values[-window:])
    out["train/steps"] = max((r["step"] for r in rows), default=0)
    return out


def save_model(stage: Stage, folder: Path) -> Path:
    """Write the trained policy and its processor to ``folder/model``; a LoRA run also keeps ``adapter/`` and
    merges it into the base weights, so ``model/`` is always a full model the next stage or vLLM can load."""
    from lmm_r1.models import save_processor

    trainer = stage.trainer
    out = folder / MODEL_DIR
    if stage.cfg.lora_r:
        trainer.save_model(str(folder / ADAPTER_DIR))
        if trainer.accelerator.is_main_process:
            merge_adapter(stage.source, folder / ADAPTER_DIR, out)
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        save_processor(trainer.processing_class, out)
    return out


def merge_adapter(base: str | Path, adapter: str | Path, out: str | Path) -> Path:
    """Base weights + LoRA adapter -> one merged model folder (peft's merge_and_unload)."""
    import torch
    from peft import PeftModel

    from lmm_r1.models import load_model

    merged = PeftModel.from_pretrained(load_model(base, dtype=torch.float32), str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    return Path(out)


def train(cfg: StageConfig, *, results_dir: str | Path | None = None, profile: str | None = None,
          existing: str = "resume", callbacks: list | None = None) -> dict[str, Any]:
    """Train one stage and return its run record (also written to ``<run>/metrics.json``).

    ``existing="resume"`` continues an interrupted run of the same config from its last checkpoint (the step,
    optimizer, scheduler, RNG and data position are restored; the JSONL logs continue without duplicates) and
    returns the record of a finished one without training again; ``"overwrite"`` starts over.
    """
    from transformers import ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    from lmm_r1.training_log import RewardProgress, RunLog, load_metrics, quiet_libraries

    profile = profile or cfg.preset
    folder = run_dir(profile, cfg.run_name, results_dir)
    check_hardware(cfg)  # before touching the run folder, as is the batch arithmetic:
    gradient_accumulation_steps(cfg, world_size())  # a failed start must not leave a config that blocks the next
    launch = launch_state()
    # The main process prepares the folder first; the others then find it prepared (never delete it twice).
    with launch.main_process_first():
        state = prepare_run_dir(cfg, folder, existing if launch.is_main_process else "resume")
        if state != "done" and launch.is_main_process:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / CONFIG_FILE).write_text(json.dumps(_config_json(cfg), indent=2) + "\n")
    if state == "done":
        return json.loads((folder / "metrics.json").read_text())
    run_log = RunLog(folder, log_completions_steps=cfg.log_completions_steps,
                     num_completions_to_log=cfg.num_completions_to_log)
    with quiet_libraries():
        stage = build_trainer(cfg, output_dir=folder / CHECKPOINT_DIR, profile=profile, results_dir=results_dir,
                              callbacks=[run_log, *(callbacks or [])])
        run_log.bind(stage.trainer)
        # one bar with the reward: not one printed dict per step (ProgressCallback), nor, in a notebook kernel,
        # transformers' HTML table of the training loss, a GRPO number that says nothing (NotebookProgressCallback)
        stage.trainer.remove_callback(ProgressCallback)
        stage.trainer.remove_callback(NotebookProgressCallback)
        stage.trainer.add_callback(RewardProgress(cfg.run_name))
        run_log.extra_metrics = RewardCounterDeltas()
        stage.run_log = run_log
        resume_from = _last_checkpoint(folder / CHECKPOINT_DIR) if state == "resume" else None
        start = time.perf_counter()
        stage.trainer.train(resume_from_checkpoint=resume_from)
        seconds = time.perf_counter() - start
        model_dir = save_model(stage, folder)
    if not stage.trainer.accelerator.is_main_process:
        return {}
    metrics = summarize(load_metrics(folder))
    metrics["train/runtime_s"] = seconds  # this process's share when resumed
    path = write_run_record(
        cfg.run_name, config=cfg, metrics=metrics, profile=profile, seed=cfg.seed, root=results_dir,
        stage=cfg.stage, paper_name=cfg.paper_name, follows=cfg.follows, config_sources=cfg.sources,
        upstream_algorithm=cfg.upstream_algorithm, scale_rewards=cfg.scale_rewards, kl_placement=cfg.kl_placement,
        fidelity=fidelity.for_config(cfg), processes=stage.trainer.accelerator.num_processes,
        math_verify={"installed": package_version("math-verify"), "paper": fidelity.PAPER_MATH_VERIFY},
        init_source=stage.source, model_dir=str(model_dir), resumed_from=resume_from,
        n_train_prompts=stage.n_train, n_dropped_prompts=stage.n_dropped,
        trainer_summary=run_log.summary, global_step=stage.trainer.state.global_step,
        sentinels=stage.trainer.sentinels.summary(), cost=stage.trainer.cost(seconds),
    )
    return json.loads(path.read_text())


def _cli_train(cfg: StageConfig, config_file: str, *, profile: str, results_dir: str | Path | None,
               existing: str) -> list[str]:
    """``python -m lmm_r1.cli train`` for ``cfg`` (written to ``config_file`` by ``_write_config``), this
    interpreter's: the launched run is exactly this config, in this environment."""
    cmd = ["-m", "lmm_r1.cli", "train", "--config", config_file, "--profile", profile]
    if results_dir is not None:
        cmd += ["--results-dir", str(results_dir)]
    if existing == "overwrite":
        cmd.append("--overwrite")
    return cmd


def _write_config(cfg: StageConfig) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"config": _config_json(cfg), "sources": cfg.sources}, f)
    return f.name


def launch(cfg: StageConfig, *, accelerate_config: str | Path, results_dir: str | Path | None = None,
           profile: str | None = None, existing: str = "resume") -> dict[str, Any]:
    """Run ``train(cfg)`` under ``accelerate launch`` (several GPUs, DeepSpeed) from a notebook or script, and
    return its run record. The exact config travels as a JSON file, so the launched run is this config."""
    profile = profile or cfg.preset
    config_file = _write_config(cfg)
    # this interpreter's accelerate (not whichever is first on PATH), and its output line by line to our stdout:
    # a notebook cell shows the launched run's progress, and a failure's traceback lands where the user looks
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
           *_cli_train(cfg, config_file, profile=profile, results_dir=results_dir, existing=existing)]
    try:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              text=True, bufsize=1, cwd=Path(__file__).resolve().parent.parent) as proc:
            tail: list[str] = []
            for line in proc.stdout:
                print(line, end="", flush=True)
                tail = (tail + [line])[-40:]
        if proc.returncode:
            raise RuntimeError(f"{cfg.run_name}: `{' '.join(cmd)}` exited with {proc.returncode}; its last lines:\n"
                               + "".join(tail))
    finally:
        os.unlink(config_file)
    return json.loads((run_dir(profile, cfg.run_name, results_dir) / "metrics.json").read_text())


TRAIN_LOG = "train.log"


def default_jobs() -> int:
    """Runs side by side on this machine: one per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def train_runs(configs: dict[Any, StageConfig], *, results_dir: str | Path | None = None,
               profile: str | None = None, existing: str = "resume", jobs: int = 1, threads: int = 1,
               accelerate_config: str | Path | None = None, log=None) -> dict[Any, dict[str, Any]]:
    """Train independent runs (seeds, arms) and return their records, keyed as ``configs``.

    ``accelerate_config``: one after another, each launched on every GPU (``launch``). Else ``jobs=1``: one
    after another in this process (``train``). Else up to ``jobs`` runs at once (0: ``default_jobs()``), each
    its own process (``python -m lmm_r1.cli train``) with ``threads`` torch threads. A run's result depends on
    its config and its thread count, never on what runs beside it (tested). Each process writes
    ``<run>/train.log``; a failed run raises with its tail once the others have finished.

    Side by side pays only where cores are spare: a tiny step is mostly matrix arithmetic that two threads
    share well, and each process pays its imports, so on 2 cores three 8-step runs took 0.75x (2 at a time) and
    0.86x (3) the speed of one after another (``benchmarks/bench_toy_runs.py``, README "How long").
    """
    if accelerate_config:
        return {k: launch(c, accelerate_config=accelerate_config, results_dir=results_dir, profile=profile,
                          existing=existing) for k, c in configs.items()}
    jobs = jobs or default_jobs()
    if jobs == 1:
        return {k: train(c, results_dir=results_dir, profile=profile, existing=existing)
                for k, c in configs.items()}
    profile_of = {k: profile or c.preset for k, c in configs.items()}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false"}
    if results_dir is not None:
        env["LMM_R1_RESULTS"] = str(results_dir)
    waiting, running, failed = list(configs), {}, []
    while waiting or running:
        while waiting and len(running) < jobs:
            key = waiting.pop(0)
            folder = run_dir(profile_of[key], configs[key].run_name, results_dir)
            folder.mkdir(parents=True, exist_ok=True)
            config_file = _write_config(configs[key])
            out = open(folder / TRAIN_LOG, "a")
            cmd = [sys.executable, *_cli_train(configs[key], config_file, profile=profile_of[key],
                                               results_dir=results_dir, existing=existing)]
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            running[key] = (proc, out, config_file, folder, time.perf_counter())
        time.sleep(0.2)
        for key, (proc, out, config_file, folder, start) in list(running.items()):
            if proc.poll() is None:
                continue
            out.close()
            os.unlink(config_file)
            del running[key]
            if proc.returncode:
                tail = (folder / TRAIN_LOG).read_text()[-3000:]
                failed.append(f"{configs[key].run_name} (exit {proc.returncode}, log {folder / TRAIN_LOG}):\n{tail}")
            elif log:
                log(f"{configs[key].run_name}: done in {time.perf_counter() - start:.0f} s")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(configs)} runs failed:\n" + "\n".join(failed))
    return {k: json.loads((run_dir(profile_of[k], c.run_name, results_dir) / "metrics.json").read_text())
            for k, c in configs.items()}


@dataclass
class HeldOut:
    """A model's held-out results: ``metrics`` and the greedy ``records`` (scored completions) per set."""

    metrics: dict[str, float]
    records: dict[str, list]


def heldout(model: str | Path, benchmarks: list[str], *, name: str, profile: str,
            results_dir: str | Path | None = None, n: int | None = None, max_new_tokens: int = 64,
            batch_size: int = 64, min_pixels: int | None = None, max_pixels: int | None = None,
            backend: str = "transformers", sample_temperature: float | None = 1.0, protocol: str = "fork",
            judge=None) -> HeldOut:
    """Held-out evaluation of one model for notebooks 02/03, through ``lmm_r1.evaluate`` with the R1 system
    prompt for every model (before and after see the same prompt).

    ``eval/<set>/accuracy``, ``/format``, ``/completion_tokens``: greedy decoding, the paper's protocol.
    ``eval/<set>/sampled_accuracy``, ``/sampled_format``: one completion per problem sampled at
    ``sample_temperature`` (the rollouts' 1.0), seeded: the policy RL actually optimises. None skips them.
    ``protocol`` and ``judge`` (a ``lmm_r1.judge.Judge``) score hub benchmarks as ``lmm_r1.evaluate`` does: the
    fork protocol's judged sets (MathVista, ...) need the judge; the offline tasks are always scored by rules.
    """
    import torch

    from lmm_r1.evaluate import evaluate

    kw = dict(profile=profile, root=results_dir, n=n, seed=0, max_new_tokens=max_new_tokens,
              batch_size=batch_size, min_pixels=min_pixels, max_pixels=max_pixels, backend=backend,
              progress=False, record=False, protocol=protocol, judge=judge)
    greedy = evaluate(model, benchmarks, name=name, **kw)
    metrics = dict(greedy.metrics)
    if sample_temperature is not None:
        torch.manual_seed(0)
        sampled = evaluate(model, benchmarks, name=f"{name}_sampled", temperature=sample_temperature, **kw)
        for b in benchmarks:
            for m in ("accuracy", "format"):
                metrics[f"eval/{b}/sampled_{m}"] = sampled.metrics[f"eval/{b}/{m}"]
    return HeldOut(metrics=metrics, records=greedy.records)


# ------------------------------------------------------------------------------------------------------------
# Command line: lmm-r1 train

def _overrides(pairs: list[str]) -> dict[str, Any]:
    from lmm_r1.config import parse_value

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = parse_value(key.strip(), value)
    return out


def config_from_args(args) -> StageConfig:
    overrides = _overrides(args.set or [])
    if args.config:  # a whole config written by launch(): {"config": {...}, "sources": {...}}
        saved = json.loads(Path(args.config).read_text())
        from lmm_r1.config import from_dict

        values = {**saved["config"], **overrides, **({"seed": args.seed} if args.seed is not None else {})}
        return from_dict(values, sources={**saved.get("sources", {}), **{k: "override" for k in overrides}})
    if args.seed is not None:
        overrides["seed"] = args.seed
    return preset(args.stage, args.preset, follows=args.follows, **overrides)


def _train_command(args) -> int:
    from lmm_r1.config import field_docs

    if args.list_fields:
        cfg = config_from_args(args) if args.stage or args.config else None
        for name, doc in field_docs().items():
            value = f" = {getattr(cfg, name)!r}" if cfg else ""
            print(f"{name}{value}\n    {doc}")
        return 0
    if not args.stage and not args.config:
        raise ConfigError(f"--stage is required; stages: {', '.join(STAGES)}")
    cfg = config_from_args(args)
    if args.vllm_serve_command:
        print(vllm_serve_command(cfg, profile=args.profile, results_dir=args.results_dir))
        return 0
    if args.dry_run:
        sources = cfg.sources
        for name, value in to_dict(cfg).items():
            print(f"{name:30s} {value!r:40s} {sources.get(name, '')}")
        print(f"\nderived: {cfg.completions_per_update} completions per optimizer step, {cfg.updates_per_rollout} "
              f"optimizer steps per rollout, KL: {cfg.kl_placement}, upstream ran: {cfg.upstream_algorithm}")
        if cfg.algorithm == "ppo_gae":
            print(f"critic: a second {cfg.model if cfg.init_from is None else 'init_from'} backbone + value head, "
                  f"own AdamW at lr {cfg.critic_learning_rate:g} ({sources.get('critic_learning_rate', '')}), GAE "
                  f"gamma {cfg.gae_gamma:g} lambda {cfg.gae_lambda:g}, value clip {cfg.value_clip:g}, one critic step "
                  "per optimizer step")
        print("\nfidelity register (lmm_r1/fidelity.py): this run's value, the preset's for upstream")
        for row in fidelity.for_config(cfg):
            mark = "" if row["implemented"] else "   [upstream behaviour not selectable]"
            print(f"  {row['key']:26s} {str(row['run']):28s} {row['paper_preset']}{mark}")
        return 0
    from lmm_r1.preflight import raise_if, train_needs

    raise_if(train_needs(cfg), f"lmm-r1 train --stage {cfg.stage}")
    try:
        record = train(cfg, results_dir=args.results_dir, profile=args.profile,
                       existing="overwrite" if args.overwrite else "resume")
    except HardwareError as e:  # the CLI's handler prints ValueErrors; this one is a RuntimeError
        print(f"lmm-r1 train: error: {e}", file=sys.stderr)
        return 2
    end_launch()
    if record:
        folder = run_dir(record["profile"], record["name"], args.results_dir)
        keys = ("train/reward/total", "train/reward/accuracy", "train/reward/format")
        for key in keys:
            if f"{key}/first" in record["metrics"]:
                print(f"{key}: {record['metrics'][f'{key}/first']:.3f} -> {record['metrics'][f'{key}/last']:.3f}")
        print(f"model: {folder / MODEL_DIR}\nrecord: {folder / 'metrics.json'}")
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("train", help="run one RL stage (FRE, MGT, Direct-RL) with TRL's GRPOTrainer",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", help=f"one of: {', '.join(STAGES)} (or the paper's names, e.g. FRE-Text)")
    p.add_argument("--preset", choices=("tiny", "paper"), default="tiny",
                   help="tiny: offline tasks on a CPU; paper: Qwen2.5-VL-3B on 8 GPUs (PAPER.md §3)")
    p.add_argument("--follows", choices=("paper", "scripts"), default="paper",
                   help="where the paper table and the released scripts differ, which to follow")
    p.add_argument("--seed", type=int, default=None, help="default: the preset's (paper 42, tiny 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set learning_rate=1e-6")
    p.add_argument("--config", default=None, help="a config JSON written by lmm_r1.grpo.launch (instead of --stage)")
    p.add_argument("--profile", default=None, help="results/<profile>/ folder (default: the preset name)")
    p.add_argument("--results-dir", default=None, help="default: results/ (or $LMM_R1_RESULTS)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run folder instead of resuming")
    p.add_argument("--dry-run", action="store_true", help="print the config with the source of each value")
    p.add_argument("--list-fields", action="store_true", help="print every config field with its docstring")
    p.add_argument("--vllm-serve-command", action="store_true",
                   help="print the `trl vllm-serve` command for this stage's server mode (pixel limits included)")
    p.set_defaults(func=_train_command)


if __name__ == "__main__":  # `accelerate launch -m lmm_r1.grpo --stage ...` works as well as `-m lmm_r1.cli train`
    from lmm_r1.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
