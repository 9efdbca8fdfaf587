"""The paper-profile rehearsal (lmm_r1/rehearsal.py): its parameters are the paper files' plus one short list, its
stand-ins load through the kit's real loaders offline, its judge answers as the fork's calls expect. The rehearsal
itself (every cell of 01-04, ~10 minutes) runs in `make rehearse` (CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lmm_r1 import config, grpo, rehearsal, runner
from lmm_r1.cli import main

# What the rehearsal may change, per notebook: sizes, the generation backend, the judge's address and the launch
# config. Anything else (stages, seeds, arms, presets, benchmarks, protocol, pixel limits, models) is the paper
# file's; a key added to the override list outside these fails here.
ALLOWED = {
    "01_reward_design": {"n_prompts", "max_new_tokens", "batch_size"},
    "02_fre_text_rl": {"max_steps", "overrides", "eval_rows", "eval_max_new_tokens", "eval_backend", "judge_url",
                       "accelerate_config"},
    "03_mgt_multimodal_rl": {"max_steps", "overrides", "eval_rows", "eval_max_new_tokens", "eval_backend",
                             "judge_url", "accelerate_config"},
    "04_evaluation": {"n", "max_new_tokens", "backend", "judge_url", "benchmarks"},
}
# fields of every training stage the rehearsal changes (the rest is the paper preset's)
TRAIN_FIELDS = {"use_vllm", "bf16", "generation_batch_size", "micro_batch_size", "max_completion_length",
                "train_size", "log_completions_steps"}


def _paper_params():
    return {nb.stem: runner.load_params(nb, "paper") for nb in runner.notebooks()}


def test_the_rehearsal_changes_only_its_listed_parameters():
    paper = _paper_params()
    params = rehearsal.overrides("http://127.0.0.1:1/v1")
    rehearsal.drop_uncovered(params, paper["04_evaluation"]["benchmarks"])
    assert set(params) == set(paper)
    for stem, values in params.items():
        assert set(values) <= ALLOWED[stem], stem
        nb = next(b for b in runner.notebooks() if b.stem == stem)
        runner.check_params(nb, values, where=stem)  # names and types, as strictly as the files
    assert params["02_fre_text_rl"]["accelerate_config"] == str(rehearsal.ACCELERATE_CONFIG)
    assert set(params["02_fre_text_rl"]["overrides"]) == TRAIN_FIELDS
    # the paper file's benchmarks, less only what cannot run here (and says so)
    kept = params["04_evaluation"]["benchmarks"]
    assert kept == [b for b in paper["04_evaluation"]["benchmarks"] if b != "football_online"]  # in the file's order
    assert "football_online" in paper["04_evaluation"]["benchmarks"] and "Football-Online" in rehearsal.NOT_COVERED


@pytest.mark.parametrize("stage", sorted(config.STAGES))
def test_each_paper_stage_under_the_rehearsal_is_the_preset_but_for_the_sizes(stage):
    paper = config.preset(stage, "paper")
    cfg = config.preset(stage, "paper", max_steps=2, **rehearsal.TRAIN_OVERRIDES)
    a, b = config.to_dict(paper), config.to_dict(cfg)
    assert {k for k in a if a[k] != b[k]} <= TRAIN_FIELDS | {"max_steps"}
    assert cfg.num_generations == 16 and cfg.updates_per_rollout == 16 and not cfg.needs_gpu
    # the two processes of configs/cpu_2proc.yaml take one optimizer step's completions in whole micro-batches
    assert grpo.gradient_accumulation_steps(cfg, processes=2) == 1


def test_the_launch_config_starts_two_processes_through_accelerates_torchrun_launcher():
    import yaml

    spec = yaml.safe_load(rehearsal.ACCELERATE_CONFIG.read_text())
    # MULTI_CPU or --cpu start one process without MPI; MULTI_GPU is accelerate's torchrun launcher
    assert spec["distributed_type"] == "MULTI_GPU" and spec["num_processes"] == 2 and not spec.get("deepspeed_config")


def test_the_stand_in_judge_returns_the_shown_answer():
    assert rehearsal.stand_in_reply("Model response: <think>x</think><answer> 12 </answer>", {}) == "12"
    assert rehearsal.stand_in_reply("no tags here", {}) == "null"
    assert rehearsal.stand_in_reply("<answer>B</answer>", {"guided_choice": ["A", "B"]}) == "B"
    assert rehearsal.stand_in_reply("<answer>7</answer>", {"guided_choice": ["0", "1"]}) == "0"
    server = rehearsal.ChatServer(rehearsal.stand_in_reply)
    try:
        from lmm_r1.judge import Judge

        judge = Judge(server.url, model=rehearsal.JUDGE_MODEL)
        judge.check()  # serves the paper profile's judge_model name
        assert judge.complete("Response: <answer>5</answer>") == "5"
    finally:
        server.close()


_LOAD = """
import json
from lmm_r1.data import load_paper_dataset, load_report
from lmm_r1.evalsets import load_items
from lmm_r1.models import load_processor
from lmm_r1.config import PAPER_MODEL_ID
out = {"vocab": len(load_processor(PAPER_MODEL_ID).tokenizer)}
for name in ("deepscaler", "vermulti", "vermulti_geo"):
    ds = load_paper_dataset(name)
    row = ds[0]
    out[name] = [len(ds), load_report(ds)["skipped"], row["answer"], len(row.get("images") or []),
                 row["prompt"][0]["role"]]
for name in %r:
    items, counts = load_items(name, protocol_name="fork")
    out[name] = [len(items), counts["image_errors"], sum(len(i.images) for i in items)]
print(json.dumps(out))
"""


def test_the_stand_ins_load_offline_through_the_kits_loaders(tmp_path, tiny_model):
    from lmm_r1.evalsets import get
    from lmm_r1.models import load_processor

    env = rehearsal.write_fixtures(tmp_path / "ws")
    paper = _paper_params()
    sets = [b for b in paper["04_evaluation"]["benchmarks"] if get(b).source != "football"]
    proc = subprocess.run([sys.executable, "-c", _LOAD % (sets,)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "HF_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the paper's model id is the shipped tiny model (its own tokenizer), through the hub cache
    assert out["vocab"] == len(load_processor(tiny_model).tokenizer)
    # every training set: all rows, none skipped, the R1 system prompt put first, VerMulti's images re-rooted
    # from another machine's absolute paths into the unpacked tarball
    assert out["deepscaler"][:2] == [rehearsal.ROWS, 0] and out["deepscaler"][3] == 0
    for name in ("vermulti", "vermulti_geo"):
        assert out[name][:2] == [rehearsal.ROWS, 0] and out[name][3] == 1 and out[name][4] == "system"
    # every benchmark of notebook 04 but Football: rows in the real columns, images decoded (none lost)
    for name in sets:
        n, errors, images = out[name]
        assert n >= 1 and errors == 0, name
        assert images == (0 if get(name).modality == "text" else n), name
    records = [json.loads(line) for line in (tmp_path / "ws" / "hub").rglob("mathv60k_message.jsonl")
               .__next__().read_text().splitlines()]
    assert all(json.loads(r["message"])[0]["content"][0]["image"].startswith(rehearsal.CLUSTER) for r in records)


def test_rehearse_is_for_the_paper_profile(capsys):
    assert main(["run", "--profile", "tiny", "--rehearse"]) == 2
    assert "--rehearse rehearses --profile paper" in capsys.readouterr().err
