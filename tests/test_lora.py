"""LoRA through peft: adapters train, the base stays frozen, and save, reload and merge agree."""

from __future__ import annotations

import pytest
import torch

from lmm_r1.config import preset
from lmm_r1.grpo import build_trainer, merge_adapter, train

# Two steps of 4 prompts x 8 completions; rank 4 on the language model's linear layers; lr 1e-2 because LoRA's
# B starts at zero and two steps at 1e-3 move it by little more than rounding.
SMALL = dict(max_steps=2, generation_batch_size=32, num_generations=8, micro_batch_size=32, train_size=32,
             max_completion_length=64, warmup_ratio=0.0, save_steps=100, lora_r=4, lora_alpha=8,
             learning_rate=1e-2)


def test_lora_trains_adapters_only(tiny_model, tmp_path):
    stage = build_trainer(preset("fre_text", "tiny", **SMALL), output_dir=tmp_path / "o")
    model = stage.trainer.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all("language_model" in n for n in trainable)  # the vision tower gets no adapters
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stage.trainer.train()
    after = dict(model.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert moved and moved <= trainable                        # adapters changed, nothing else did
    assert any(n.endswith("lora_B.default.weight") for n in moved)


def test_lora_save_reload_merge(tiny_model, tmp_path):
    from peft import PeftModel

    from lmm_r1.models import is_model_dir, load_model, load_processor

    record = train(preset("fre_text", "tiny", **SMALL), results_dir=tmp_path)
    run = tmp_path / "tiny" / "fre_text_seed0"
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert is_model_dir(run / "model")  # merged: the next stage and vLLM load a plain model
    assert record["model_dir"] == str(run / "model")

    processor = load_processor(run / "model")
    ids = processor.tokenizer(["Compute 3 + 4 * 2."], return_tensors="pt")
    peft_model = PeftModel.from_pretrained(load_model(tiny_model, dtype=torch.float32), str(run / "adapter"))
    merged = load_model(run / "model", dtype=torch.float32)
    base = load_model(tiny_model, dtype=torch.float32)
    with torch.inference_mode():
        a, b, c = (m(**ids).logits for m in (peft_model.eval(), merged.eval(), base.eval()))
    assert torch.allclose(a, b, atol=1e-4)  # merged == base + adapter
    assert not torch.allclose(b, c, atol=1e-4)  # and differs from the base model
    # merging again from the saved files reproduces the saved merged model
    again = load_model(merge_adapter(tiny_model, run / "adapter", tmp_path / "again"), dtype=torch.float32)
    for (n1, p1), (n2, p2) in zip(merged.named_parameters(), again.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
