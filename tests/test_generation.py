"""Generation: one prompt text for both backends (and for TRL's trainer), batched greedy decoding on CPU."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from lmm_r1.generation import generate, prompt_text, vllm_requests
from lmm_r1.prompts import R1_SYSTEM_PROMPT

IMAGE_PROMPT = [{"role": "system", "content": R1_SYSTEM_PROMPT},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}]
TEXT_PROMPT = [{"role": "system", "content": R1_SYSTEM_PROMPT}, {"role": "user", "content": "What is 2+3?"}]
BASELINE_PROMPT = [{"role": "user", "content": "What is 2+3?"}]  # no system prompt: the baseline's setting


def _image(w, h, color):
    return Image.new("RGB", (w, h), color)


@pytest.fixture(scope="module")
def processor(random_tiny_model):
    from lmm_r1.models import load_processor

    return load_processor(random_tiny_model)


@pytest.fixture(scope="module")
def lively_model(random_tiny_model):
    """The random tiny model with large weights: a freshly initialised one emits only newlines, and batching
    bugs (padding on the wrong side, image/prompt mix-ups) only show when outputs depend on the input."""
    from lmm_r1.models import load_model

    model = load_model(random_tiny_model, dtype=torch.float32)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.5)
    return model


def test_prompt_text_renders_the_chat_template(processor):
    text = prompt_text(processor, IMAGE_PROMPT)
    assert text == ("<|im_start|>system\n" + R1_SYSTEM_PROMPT + "<|im_end|>\n<|im_start|>user\n"
                    "<|vision_start|><|image_pad|><|vision_end|>How many circles?<|im_end|>\n<|im_start|>assistant\n")
    # Without a system message Qwen's template adds its default one (the baseline is evaluated that way).
    assert prompt_text(processor, BASELINE_PROMPT).startswith("<|im_start|>system\nYou are a helpful assistant.")


@pytest.mark.parametrize("messages, images", [
    (IMAGE_PROMPT, [_image(60, 60, "red")]),  # image placeholder in a content list
    (TEXT_PROMPT, None),  # string contents, no image
    ([{"role": "user", "content": "Count the squares."}], [_image(90, 40, "blue")]),  # TRL inserts the placeholder
])
def test_prompt_tokens_match_trl_training_path(processor, messages, images):
    """The tokens we generate from equal the tokens TRL's GRPOTrainer builds for the same row."""
    from trl.data_utils import prepare_multimodal_messages

    trl_ids = processor.apply_chat_template([prepare_multimodal_messages(messages, images=images or [])],
                                            add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    ours = processor(text=[prompt_text(processor, messages, images)], images=images, return_tensors="pt")
    assert ours["input_ids"].tolist() == [list(trl_ids[0])]


def test_vllm_requests_use_the_same_prompt_text(processor):
    """The vLLM backend is built from prompt_text too; checked here without importing vllm."""
    red, blue, green = _image(60, 60, "red"), _image(80, 40, "blue"), _image(40, 40, "green")
    two_images = [{"role": "user",
                   "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Same?"}]}]
    prompts = [IMAGE_PROMPT, TEXT_PROMPT, two_images]
    requests = vllm_requests(processor, prompts, [[red], None, [blue, green]])
    assert [r["prompt"] for r in requests] == [prompt_text(processor, p) for p in prompts]
    assert requests[0]["multi_modal_data"] == {"image": red}  # one image: passed bare, as vLLM documents
    assert "multi_modal_data" not in requests[1]  # text-only prompt: no multimodal field at all
    assert requests[2]["multi_modal_data"] == {"image": [blue, green]}  # several: a list, in placeholder order


@pytest.mark.parametrize("images, message", [
    ([[]], "prompt 0: Number of images provided (0) does not match"),  # placeholder without an image
    ([[Image.new("RGB", (28, 28))], [Image.new("RGB", (28, 28))]], "got 1 prompts but 2 image lists"),
])
def test_image_mismatch_is_a_clear_error(processor, lively_model, images, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        generate(lively_model, processor, [IMAGE_PROMPT], images, max_new_tokens=4, progress=False)


def test_batched_generation_equals_one_at_a_time(processor, lively_model):
    """Left padding and length-sorted batching must not change greedy outputs, nor their order."""
    prompts = [IMAGE_PROMPT, BASELINE_PROMPT, TEXT_PROMPT,
               [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count the squares now."}]}]]
    images = [[_image(60, 60, "red")], None, None, [_image(100, 50, "blue")]]
    batched = generate(lively_model, processor, prompts, images, max_new_tokens=12, batch_size=3, progress=False)
    single = [generate(lively_model, processor, [p], [i], max_new_tokens=12, progress=False)[0]
              for p, i in zip(prompts, images)]
    assert batched == single
    assert len(set(batched)) == len(prompts)  # outputs depend on the prompt, so the comparison can fail
    assert not any("<|im_end|>" in t or "<|endoftext|>" in t for t in batched)  # special tokens stripped


def test_max_new_tokens_bounds_the_completion(processor, lively_model):
    short = generate(lively_model, processor, [TEXT_PROMPT], max_new_tokens=3, progress=False)[0]
    long = generate(lively_model, processor, [TEXT_PROMPT], max_new_tokens=12, progress=False)[0]
    assert long.startswith(short) and len(short) < len(long)  # greedy: the short one is a prefix


def test_generation_is_greedy_and_leaves_training_mode(processor, lively_model):
    lively_model.train()
    a = generate(lively_model, processor, [TEXT_PROMPT], max_new_tokens=8, progress=False)
    b = generate(lively_model, processor, [TEXT_PROMPT], max_new_tokens=8, progress=False)
    assert a == b and lively_model.training  # deterministic, and the caller's train() mode is restored
    sampled = {generate(lively_model, processor, [TEXT_PROMPT], max_new_tokens=8, temperature=1.5,
                        progress=False)[0] for _ in range(4)}
    assert len(sampled) > 1  # temperature > 0 samples


@pytest.mark.gpu
def test_vllm_backend_matches_transformers_greedy(tiny_model):
    """GPU servers only (`pip install .[gpu]`): the same prompts through vLLM give the transformers completions.

    float32 on both sides so that greedy ties break alike; most, not all, must match (kernels differ)."""
    from lmm_r1.evalsets import load_items
    from lmm_r1.generation import load_vllm, vllm_generate
    from lmm_r1.models import load_model, load_processor

    items, _ = load_items("percept", n=16)
    prompts, images = [i.prompt for i in items], [i.images for i in items]
    processor = load_processor(tiny_model)
    hf = generate(load_model(tiny_model, dtype=torch.float32).to("cuda"), processor, prompts, images,
                  max_new_tokens=48, progress=False)
    llm = load_vllm(tiny_model, max_model_len=2048, gpu_memory_utilization=0.3, dtype="float32")
    vl = vllm_generate(llm, processor, prompts, images, max_new_tokens=48, progress=False)
    assert len(vl) == len(prompts)
    assert sum(a == b for a, b in zip(hf, vl)) >= 12
