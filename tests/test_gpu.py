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
    # the guard compared the engine's image tokens with the trainer's on every rollout (a mismatch raises)
    parity = record["sentinels"]["image_tokens"]
    assert parity["readings"] >= 1 and parity["max"] == 0.0, parity
    gap = record["sentinels"]["engine_logp_gap"]
    assert gap["readings"] >= 1 and gap["fired"] == 0, gap


def test_vllm_engine_rebuilds_the_trainers_image_tokens(tiny_model):
    """A real vLLM engine, given the kit's one-pad-per-image prompt and the image, returns exactly the prompt
    the trainer trains on (tests/test_vllm_path.py checks the same against vLLM's rule on CPU)."""
    pytest.importorskip("vllm")
    from trl.data_utils import prepare_multimodal_messages
    from vllm import LLM, SamplingParams

    from lmm_r1.models import load_processor
    from lmm_r1.toy.tasks import percept
    from lmm_r1.trainer import collapse_image_pads

    processor = load_processor(tiny_model)
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    rows = percept.make_dataset("train", 4, seed=0)
    convs = [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]
    ids = processor.apply_chat_template(convs, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]
    llm = LLM(str(tiny_model), gpu_memory_utilization=0.2, max_model_len=1024, enforce_eager=True,
              mm_processor_kwargs={"min_pixels": processor.image_processor.size["shortest_edge"],
                                   "max_pixels": processor.image_processor.size["longest_edge"]})
    outs = llm.generate([{"prompt_token_ids": collapse_image_pads(list(x), pad),
                          "multi_modal_data": {"image": r["images"][0]}} for x, r in zip(ids, rows)],
                        SamplingParams(max_tokens=4))
    assert [list(o.prompt_token_ids) for o in outs] == [list(x) for x in ids]
    # and without the collapse, vLLM's second expansion (TRL #6294): 4 + 4 - 1 pads
    bad = llm.generate([{"prompt_token_ids": list(ids[0]), "multi_modal_data": {"image": rows[0]["images"][0]}}],
                       SamplingParams(max_tokens=1))
    assert list(bad[0].prompt_token_ids).count(pad) == 7


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
    # transformers 5.17 keeps the limits in size (max_pixels is popped into longest_edge; no attribute)
    assert processor.image_processor.size["longest_edge"] == 640 * 28 * 28
