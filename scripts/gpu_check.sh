#!/usr/bin/env bash
# The GPU check for the day a device is lent (issue 12; the `device` tool's README): one script, under 8 minutes
# on one GPU, run from the repository root. Prepare on a CPU machine first (`make gpu-check-prepare`: the tiny
# model and the pure-Python wheels the device image lacks, under .whl/ and results/gpu_check/, both ignored
# paths to carry), then:  run(command="bash scripts/gpu_check.sh", carry=[".whl", "results/gpu_check"],
# timeout_s=540). It prints one CHECK line per step (ok / FAILED / skipped); the device's run returns $OUT too.
set -uo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD
export LMM_R1_CACHE=$PWD/results/gpu_check/cache
OUT=${OUT:-$PWD/results/gpu_check/out}; mkdir -p "$OUT"
R="$OUT/runs"; PY=python3
check() { local name=$1; shift; local t=$SECONDS
  if timeout "${LIMIT:-150}" "$@" >"$OUT/$name.log" 2>&1; then echo "CHECK $name ok ($((SECONDS - t)) s)";
  else echo "CHECK $name FAILED ($((SECONDS - t)) s): $(grep -E 'Error|error' "$OUT/$name.log" | tail -1)"; fi; }

[ -d .whl ] && $PY -m pip install -q --no-index --no-deps .whl/*.whl 2>&1 | tail -2
$PY -c "import torch, transformers, trl, accelerate, datasets; print('versions', torch.__version__, transformers.__version__,
trl.__version__, accelerate.__version__, datasets.__version__, torch.cuda.get_device_name())" | tee "$OUT/versions.txt"
A="--preset tiny --profile gpu_check --results-dir $R --overwrite --set bf16=true --set save_steps=2"

# 1. bf16 GRPO on one GPU, transformers rollouts, the kit's estimator
check bf16_grpo $PY -m lmm_r1.cli train --stage fre_text $A --set max_steps=3
# 2. ZeRO-3 through the kit's own accelerate/DeepSpeed configs (auto values, the 16-bit save), one process
Z="$PY -m accelerate.commands.launch --config_file configs/zero3_8gpu.yaml --num_processes 1 -m lmm_r1.cli train"
if $PY -c "import deepspeed" 2>/dev/null; then
  check zero3_fre $Z --stage fre_text $A --set max_steps=3
  # 3. the ZeRO-3 folder reloads as the next stage's init_from; images through the vision tower under ZeRO-3
  check zero3_reload $PY -c "
import json, sys, torch; from pathlib import Path; from lmm_r1.models import is_model_dir, load_model
p = Path('$R/gpu_check/fre_text_seed0/model'); assert is_model_dir(p), sorted(x.name for x in p.iterdir())
m = load_model(p, dtype=torch.bfloat16); assert sum(t.numel() for t in m.parameters()) > 1e5
print(json.loads((p / 'processor_config.json').read_text())['image_processor']['size'])"
  check zero3_mgt $Z --stage mgt_percept $A --set max_steps=2 --set init_from=$R/gpu_check/fre_text_seed0/model
  # 3b. PPO with GAE under ZeRO-3: the critic as a second DeepSpeed engine and its engine checkpoint (issue 27)
  check zero3_ppo_gae $Z --stage mgt_geometry $A --set max_steps=3 --set algorithm=ppo_gae \
    --set critic_learning_rate=1e-4 --set init_from=$R/gpu_check/fre_text_seed0/model
  check ppo_gae_record $PY -c "
import json; from pathlib import Path; run = Path('$R/gpu_check/mgt_geometry_seed0'); r = json.load(open(run / 'metrics.json'))
print('peak MiB', r['cost']['peak_memory_mib'], 'value loss', r['metrics'].get('train/critic/value_loss/last'))
assert r['global_step'] == 3 and (run / 'checkpoints/checkpoint-2/critic').is_dir()"
else
  echo "CHECK zero3 skipped: deepspeed not importable"
fi
# 4. vLLM: colocated rollouts with image-token parity, the engine's own expansion (skipped without vllm)
if $PY -c "import vllm" 2>/dev/null; then
  LIMIT=300 check vllm_parity $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider
else
  echo "CHECK vllm skipped: vllm not importable here (the parity is then verified on CPU against vLLM's rule only)"
fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee "$OUT/nvidia-smi.txt"
