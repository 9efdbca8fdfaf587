"""GPU-only checks: vLLM colocated rollouts on the tiny model, the vLLM hand-off check, the 3B model loading.

All are marked ``gpu`` (skipped without CUDA by conftest) and skip when vLLM or the 3B weights are missing.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.gpu

# 2 steps of 4 prompts x 8 completions: enough to see vLLM generate, sync weights and train.
SMALL = dict(max_steps=2, generation_batch_size=32, num_generations=8, micro_batch_size=32, train_size=32,
             max_completion_length=64, warmup_ratio=0.0, save_steps=100)


def test_vllm_colocate_tiny(tiny_model, tmp_path):
    pytest.importorskip("vllm")
    from lmm_r1.config import preset
    from lmm_r1.grpo import train

    cfg = preset("mgt_percept", "tiny", init_from=None, use_vllm=True, vllm_mode="colocate",
                 vllm_gpu_memory_utilization=0.3, vllm_enable_sleep_mode=False, bf16=True, **SMALL)
    record = train(cfg, results_dir=tmp_path)
    assert record["global_step"] == 2
    assert math.isfinite(record["metrics"]["train/loss/last"])
    assert record["metrics"]["train/completion_length/last"] > 0


def test_vllm_load_check(tiny_model):
    pytest.importorskip("vllm")
    from lmm_r1.grpo import InitFromError, vllm_load_check

    vllm_load_check(str(tiny_model), max_model_len=1024)  # a good folder passes
    with pytest.raises(InitFromError):
        vllm_load_check("/nonexistent/model", max_model_len=1024)


def test_paper_model_loads_and_answers():
    """Qwen2.5-VL-3B-Instruct from the local hub cache (never downloaded here) passes the hand-off check."""
    import torch
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from lmm_r1.config import preset
    from lmm_r1.grpo import load_check
    from lmm_r1.models import PAPER_MODEL_ID

    try:
        path = snapshot_download(PAPER_MODEL_ID, local_files_only=True)
    except LocalEntryNotFoundError:
        pytest.skip(f"{PAPER_MODEL_ID} is not in the local Hugging Face cache")
    cfg = preset("fre_text", "paper", use_vllm=False)
    model, processor = load_check(path, cfg)
    assert model.dtype == torch.bfloat16
    assert sum(p.numel() for p in model.parameters()) > 3e9
    assert processor.image_processor.max_pixels == 640 * 28 * 28
