"""The embedded tiny Qwen2.5-VL: built here, offline, in minutes, then warm-started on the toy tasks.

    lmm-r1 tiny-model              # build (or reuse) the cached default model, print its folder
    lmm-r1 tiny-model --out DIR    # build into DIR

It is a real ``Qwen2_5_VLForConditionalGeneration`` (vision tower, M-RoPE, ``<|image_pad|>`` expansion), only
small, with a byte-level BPE tokenizer trained here that carries Qwen's special tokens and the Qwen2-VL chat
template. ``lmm_r1.toy.warmstart`` then gives it a supervised warm start on the offline tasks
(``lmm_r1.toy.tasks``), so that RL has a partial accuracy to raise. It loads as any model folder does
(``lmm_r1.models.load_model_and_processor``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from lmm_r1.models import save_processor

# Bump whenever the built folder would differ (tokenizer corpus, sizes, warm start): cached copies rebuild.
BUILDER_VERSION = 8
BUILD_INFO = "lmm_r1_build.json"

# Qwen2.5-VL's special tokens, in Qwen's order, so ids are stable across builds.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# Sizes of the tiny model: small enough for GRPO at ~0.1 s/step on 2 CPU cores, large enough to learn the
# offline tasks' formats and some of their arithmetic during the warm start.
TINY_TEXT = dict(hidden_size=96, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096)
# mrope_section sums to head_dim / 2 (96 / 4 / 2 = 12), split over (temporal, height, width). rope_theta is 1e4,
# not Qwen's 1e6: with 12 rotary frequencies, 1e6 leaves only two or three that resolve offsets of a few tokens,
# and the warm start never learned to copy the question's numbers (arith-only: 1.5% held-out vs 11% with 1e4).
TINY_ROPE = {"rope_type": "default", "mrope_section": [4, 4, 4], "rope_theta": 10_000.0}
TINY_VISION = dict(depth=2, hidden_size=48, intermediate_size=96, num_heads=2, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
# Small images keep vision cost tiny: at most 64 patches of 14 px (16 image tokens after 2x2 merging).
TINY_MIN_PIXELS = 4 * 28 * 28
TINY_MAX_PIXELS = 16 * 28 * 28
TINY_VOCAB = 1024


def default_cache_dir() -> Path:
    """Where the default tiny model lives: ``$LMM_R1_CACHE`` or ``~/.cache/lmm_r1``."""
    return Path(os.environ.get("LMM_R1_CACHE", Path.home() / ".cache" / "lmm_r1"))


def chat_template() -> str:
    """The Qwen2-VL chat template (TRL ships the exact upstream text; we reuse it rather than copy it)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen2_5_vl.jinja").read_text()


def _tokenizer_corpus() -> list[str]:
    """Text the BPE is trained on: the prompts, the answer format, and the offline tasks' vocabulary."""
    from lmm_r1 import prompts

    corpus = [prompts.R1_SYSTEM_PROMPT, prompts.SOKOBAN_SYSTEM_PROMPT, "You are a helpful assistant."]
    corpus += [
        "<think> Since $1+1=2$, so the answer is $2$. </think><answer> $2$ </answer>",
        "<think> First compute the product, then add. </think><answer> $\\boxed{14}$ </answer>",
        "What is the value of the expression? Answer with a number. Left, Right, Up, Down",
        "left, right, up, down, up, left, down, right",
        "The triangle has a right angle. Find the length of the side, the angle in degrees, the area.",
        "How many circles are in the image? Count the squares and the triangles. The chart shows the bars.",
        "Solve for x: 3x + 4 = 19. The answer is $5$. \\frac{1}{2} = 0.5, \\sqrt{2}, \\pi, ^{2}",
        "A. B. C. D. (A) (B) (C) (D) Choices: Which option is correct?",
    ]
    try:  # the tasks' own prompts, when the tasks package is present
        from lmm_r1.toy.tasks import tokenizer_corpus

        corpus += tokenizer_corpus()
    except ImportError:
        pass
    return corpus * 4


def build_tokenizer(vocab_size: int = TINY_VOCAB):
    """Train a byte-level BPE with Qwen's special tokens and chat template. Deterministic for a corpus."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits stay single tokens, as in Qwen's pre-tokenizer: arithmetic is learnable digit by digit.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_tokenizer_corpus(), trainer)
    hf = Qwen2TokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                            pad_token="<|endoftext|>", unk_token=None, errors="replace")
    hf.chat_template = chat_template()
    hf.padding_side = "left"  # generation pads on the left
    return hf


def build_processor(tokenizer, min_pixels: int = TINY_MIN_PIXELS, max_pixels: int = TINY_MAX_PIXELS):
    """Qwen2-VL image processor (PIL backend, no torchvision needed) joined with the tokenizer."""
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    kwargs = dict(image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template)
    from lmm_r1.compat import has_torchvision

    if has_torchvision():
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

        kwargs["video_processor"] = Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    return Qwen2_5_VLProcessor(**kwargs)


def build_config(tokenizer):
    from transformers import Qwen2_5_VLConfig

    ids = tokenizer.convert_tokens_to_ids
    text = dict(TINY_TEXT, vocab_size=len(tokenizer), rope_parameters=TINY_ROPE, tie_word_embeddings=True,
                eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"), bos_token_id=None)
    vision = dict(TINY_VISION, out_hidden_size=TINY_TEXT["hidden_size"])
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=True,
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )


def build_random_tiny_model(out: str | Path, seed: int = 0) -> Path:
    """Write a randomly initialised tiny Qwen2.5-VL (model, tokenizer, processor) to ``out``."""
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(build_config(tokenizer))
    ids = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
        do_sample=False, max_new_tokens=64,
    )
    model.save_pretrained(out)
    save_processor(processor, out)
    return out


def print_progress(line: str) -> None:
    """A build's ``log`` for a terminal: the phases on stderr as they go (a build takes minutes)."""
    import sys

    print(f"[tiny model] {line}", file=sys.stderr, flush=True)


def build_tiny_model(out: str | Path | None = None, seed: int = 0, warm_start: bool = True,
                     force: bool = False, log=None) -> Path:
    """Build the embedded default model and return its folder.

    With ``out=None`` the model goes to ``default_cache_dir()/tiny-qwen2.5-vl-seed{seed}`` and is rebuilt only
    when missing, when its builder version changed, or with ``force``. The build is deterministic for a seed.
    """
    from filelock import FileLock

    target = Path(out) if out is not None else default_cache_dir() / f"tiny-qwen2.5-vl-seed{seed}"
    if not force and _is_current(target, seed, warm_start):
        return target  # no lock taken: a built model in a read-only shared folder loads as it is
    target.parent.mkdir(parents=True, exist_ok=True)
    # Several processes may ask at once (the ranks of a torchrun launch, two notebooks): one builds, the others
    # wait here and then find it built. Without the lock each built its own copy and the last to finish deleted
    # the folder another was already loading from.
    with FileLock(str(target.parent / (target.name + ".lock"))):
        if not force and _is_current(target, seed, warm_start):
            return target
        return _build(target, seed, warm_start, log)


def _is_current(target: Path, seed: int, warm_start: bool) -> bool:
    info = target / BUILD_INFO
    if not info.exists():
        return False
    have = json.loads(info.read_text())
    return all(have.get(k) == v for k, v in _build_record(seed, warm_start).items())


def _build_record(seed: int, warm_start: bool) -> dict:
    return {"builder_version": BUILDER_VERSION, "seed": seed, "warm_start": warm_start}


def _build(target: Path, seed: int, warm_start: bool, log) -> Path:
    want = _build_record(seed, warm_start)
    if log:
        log(f"building {target} (builder version {BUILDER_VERSION}, seed {seed}"
            f"{', warm start' if warm_start else ''}) ...")
    # Build in a sibling temp folder and move it in place, so an interrupted build never looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build_random_tiny_model(tmp, seed=seed)
        record = dict(want)
        if warm_start:
            from lmm_r1.toy.warmstart import warm_start as run_warm_start

            record["warm_start_report"] = run_warm_start(tmp, seed=seed, log=log)
        (tmp / BUILD_INFO).write_text(json.dumps(record, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
