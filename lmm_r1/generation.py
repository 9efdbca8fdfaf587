"""Generation for evaluation: one prompt builder, two backends (transformers on CPU, vLLM on GPU).

Both backends build their prompt text with :func:`prompt_text`, the chat template applied exactly as TRL's
GRPOTrainer applies it during training (``prepare_multimodal_messages`` then ``apply_chat_template`` with a
generation prompt), so a model is evaluated on the prompts it was trained on, whichever backend runs.

    from lmm_r1.generation import generate
    texts = generate(model, processor, prompts, images, max_new_tokens=4096)        # transformers, batched
    texts = vllm_generate(load_vllm("Qwen/Qwen2.5-VL-3B-Instruct"), processor, prompts, images,
                          max_new_tokens=4096)                                        # GPU servers only

``prompts`` are TRL conversational lists, e.g.
``[{"role": "system", "content": R1_SYSTEM_PROMPT},
   {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}]``,
and ``images`` is ``None`` or one list of PIL images per prompt, in placeholder order. Decoding is greedy by
default (PAPER.md §7: every benchmark is decoded greedily).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

Messages = list[dict[str, Any]]


def _is_multimodal(processor) -> bool:
    """A processor with an image processor (Qwen2.5-VL's); a bare tokenizer means a text-only model."""
    return getattr(processor, "image_processor", None) is not None


def _tokenizer(processor):
    return getattr(processor, "tokenizer", processor)


def count_image_placeholders(messages: Messages) -> int:
    """Number of unfilled ``{"type": "image"}`` items in a conversation (each takes one image, in order)."""
    n = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            n += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image"
                     and "image" not in part)
    return n


def prompt_text(processor, messages: Messages, images: Sequence[Any] | None = None) -> str:
    """The prompt string for one conversation: the text both backends (and TRL's trainer) feed the model.

    For a vision-language processor the messages go through TRL's ``prepare_multimodal_messages`` first, as in
    GRPOTrainer: string contents become content blocks and, when ``images`` are given for a string-content
    prompt, placeholders are inserted before the first user text. Image items render as
    ``<|vision_start|><|image_pad|><|vision_end|>``; the processor expands each pad to the image's token count
    later, from the image itself, so the text does not depend on the images' content.
    """
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise ValueError(f"a prompt must be a list of chat messages with a 'role', got {messages!r:.200}")
    if _is_multimodal(processor):
        from trl.data_utils import prepare_multimodal_messages

        if images is None:  # rendering only needs to know where the images go, not what they are
            images = [None] * count_image_placeholders(messages)
        messages = prepare_multimodal_messages(messages, images=list(images))
    elif images or count_image_placeholders(messages):
        raise ValueError("a text-only model (no image processor) got a prompt with images")
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _prompts_and_images(processor, prompts: Sequence[Messages],
                        images: Sequence[Sequence[Any] | None] | None) -> tuple[list[str], list[list[Any]]]:
    """Prompt texts and one (possibly empty) image list per prompt; errors name the prompt's index."""
    if images is None:
        images = [None] * len(prompts)
    if len(images) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(images)} image lists: pass one list per prompt")
    texts, image_lists = [], []
    for i, (messages, imgs) in enumerate(zip(prompts, images)):
        imgs = list(imgs or [])
        try:
            texts.append(prompt_text(processor, messages, imgs))
        except ValueError as e:
            raise ValueError(f"prompt {i}: {e}") from None
        image_lists.append(imgs)
    return texts, image_lists


def _generation_config(model, tokenizer, max_new_tokens: int, temperature: float, top_p: float,
                       repetition_penalty: float = 1.0):
    from transformers import GenerationConfig

    eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    extra = {"repetition_penalty": repetition_penalty} if repetition_penalty != 1.0 else {}
    if temperature > 0:
        return GenerationConfig(do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                                max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad, **extra)
    # Greedy: temperature/top_p left unset so transformers does not warn that they are ignored.
    return GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad,
                            **extra)


def generate(model, processor, prompts: Sequence[Messages], images: Sequence[Sequence[Any] | None] | None = None,
             *, max_new_tokens: int, batch_size: int = 8, temperature: float = 0.0, top_p: float = 1.0,
             repetition_penalty: float = 1.0, progress: bool = True, desc: str = "generate") -> list[str]:
    """Completions for ``prompts`` with ``model.generate``, batched with left padding, in the input order.

    Prompts are batched in order of prompt length (less padding; the order is restored on return). Returns the
    decoded new tokens without special tokens (as TRL decodes completions), one string per prompt; an empty
    string when the model stops at once.
    """
    from tqdm import tqdm  # not tqdm.auto: no ipywidgets warning in notebook kernels

    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens} and {batch_size}")
    texts, image_lists = _prompts_and_images(processor, prompts, images)
    tokenizer = _tokenizer(processor)
    config = _generation_config(model, tokenizer, max_new_tokens, temperature, top_p, repetition_penalty)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str | None] = [None] * len(texts)
    was_training = model.training
    model.eval()
    try:
        bar = tqdm(total=len(texts), desc=desc, disable=not progress)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            flat = [img for i in idx for img in image_lists[i]]
            kwargs = {"images": flat} if flat else {}
            if _is_multimodal(processor):
                inputs = processor(text=[texts[i] for i in idx], padding=True, padding_side="left",
                                   return_tensors="pt", **kwargs)
            else:
                inputs = tokenizer([texts[i] for i in idx], padding=True, padding_side="left",
                                   return_tensors="pt", add_special_tokens=False)
            inputs = inputs.to(model.device)
            with torch.inference_mode():
                ids = model.generate(**inputs, generation_config=config)
            # (batch, prompt_len + new) -> the new tokens only; left padding aligns every prompt's end.
            new = ids[:, inputs["input_ids"].shape[1]:]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                out[i] = text
            bar.update(len(idx))
        bar.close()
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


# vLLM (GPU servers; vllm is never imported on CPU machines)

def vllm_requests(processor, prompts: Sequence[Messages],
                  images: Sequence[Sequence[Any] | None] | None = None) -> list[dict[str, Any]]:
    """vLLM's prompt dicts: the same :func:`prompt_text`, images through ``multi_modal_data``."""
    texts, image_lists = _prompts_and_images(processor, prompts, images)
    requests = []
    for text, imgs in zip(texts, image_lists):
        request: dict[str, Any] = {"prompt": text}
        if imgs:
            request["multi_modal_data"] = {"image": imgs if len(imgs) > 1 else imgs[0]}
        requests.append(request)
    return requests


def load_vllm(model: str, *, max_model_len: int = 8192, gpu_memory_utilization: float = 0.8,
              max_images_per_prompt: int = 5, min_pixels: int | None = None, max_pixels: int | None = None,
              seed: int = 42, **kwargs):
    """A ``vllm.LLM`` for evaluation (GPU only; ``pip install .[gpu]``), with explicit pixel limits.

    Up to 5 images per prompt (OlympiadBench has multi-figure problems), as the authors' lmms-eval runs allowed;
    8192 tokens of context: a 4096-token prompt plus 4096 new tokens (PAPER.md §3, §7).

    One engine per process: the same model and settings asked again (``heldout``'s greedy then sampled pass)
    get the engine already built; another model (notebook 04's next checkpoint) frees the last engine first.
    Before, every call built one beside the last, each claiming 80% of the GPU.
    """
    global _ENGINE
    try:
        from vllm import LLM
    except ImportError as e:
        raise RuntimeError("the vLLM backend needs a GPU server with `pip install .[gpu]`; on CPU use "
                           "backend='transformers'") from e
    mm_kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    settings = dict(model=str(model), max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                    limit_mm_per_prompt={"image": max_images_per_prompt}, mm_processor_kwargs=mm_kwargs or None,
                    seed=seed, **kwargs)
    key = repr(sorted(settings.items()))
    if _ENGINE is not None and _ENGINE[0] == key:
        return _ENGINE[1]
    free_vllm()
    llm = LLM(**settings)
    _ENGINE = (key, llm)
    return llm


_ENGINE: tuple[str, Any] | None = None  # (settings, vllm.LLM): load_vllm's one engine


def free_vllm() -> None:
    """Shut down ``load_vllm``'s engine and give its GPU memory back (vLLM v1: the engine core's processes)."""
    global _ENGINE
    if _ENGINE is None:
        return
    llm, _ENGINE = _ENGINE[1], None
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if hasattr(core, "shutdown"):
        core.shutdown()
    del llm
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def vllm_generate(llm, processor, prompts: Sequence[Messages], images: Sequence[Sequence[Any] | None] | None = None,
                  *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                  repetition_penalty: float = 1.0, progress: bool = True) -> list[str]:
    """Completions from a ``vllm.LLM``: one batched ``LLM.generate`` call (vLLM schedules the batches)."""
    from vllm import SamplingParams

    params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                            repetition_penalty=repetition_penalty, skip_special_tokens=True)
    outputs = llm.generate(vllm_requests(processor, prompts, images), params, use_tqdm=progress)
    return [o.outputs[0].text for o in outputs]
