"""The embedded tiny Qwen2.5-VL: built here, offline, in minutes, then warm-started on the toy tasks.

    lmm-r1 tiny-model              # the default model: the copy shipped with the kit, at once
    lmm-r1 tiny-model --rebuild    # build the default recipe from scratch (minutes) into the cache
    lmm-r1 tiny-model --out DIR    # build into DIR (any --seed builds too)

The default model (build seed 0, warm-started) ships with the kit as package data (``SHIPPED_DIR``, ~2 MB), so
every machine starts its toy runs from the same bytes, whatever its CPU's float kernels would have built: the
warm start's phase transitions depend on them (``data_cards/tiny_model.md``). Its build record names the builder
it came from (``builder_fingerprint``), and a test fails when the builder's code changes under it.

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

# The shipped default build (package data): weights, tokenizer, processor, lmm_r1_build.json, warm_start.json.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_model"
SHIPPED_SEED = 0
# What decides the built bytes (and the build report the property tests read): the toy world, the prompts in
# the tokenizer corpus and the rows, and what the warm start's gated probes generate and score with. The package
# versions are pinned in pyproject.toml. Paths relative to the lmm_r1 package.
BUILDER_SOURCES = ("toy/**/*.py", "prompts.py", "models.py", "compat.py", "generation.py", "scoring.py",
                   "evalsets.py")

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


def builder_fingerprint(files: bool = False, root: Path | None = None) -> str | dict[str, str]:
    """A SHA-256 over the builder's code (``BUILDER_SOURCES`` under ``root``, the lmm_r1 package) as Python
    reads it: comments, docstrings and layout do not count, every name, number and string does.
    ``files=True``: one digest per file instead."""
    import ast
    import hashlib

    root = root or Path(__file__).resolve().parent.parent
    digests = {}
    for pattern in BUILDER_SOURCES:
        for path in sorted(root.glob(pattern)):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):  # drop docstrings: a reworded docstring builds the same bytes
                body = getattr(node, "body", None)
                if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                        and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
            digests[path.relative_to(root).as_posix()] = hashlib.sha256(ast.dump(tree).encode()).hexdigest()
    if files:
        return digests
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def shipped_record() -> dict:
    """The shipped default model's build record (``lmm_r1_build.json``), or {} if the kit was installed without it."""
    info = SHIPPED_DIR / BUILD_INFO
    return json.loads(info.read_text()) if info.is_file() else {}


def build_tiny_model(out: str | Path | None = None, seed: int = 0, warm_start: bool = True,
                     force: bool = False, log=None) -> Path:
    """The embedded tiny model's folder: the shipped default, or a build.

    The default (``out=None``, seed 0, warm-started, no ``force``) is the copy shipped with the kit
    (``SHIPPED_DIR``), returned at once. Anything else builds: with ``out=None`` into
    ``default_cache_dir()/tiny-qwen2.5-vl-seed{seed}``, rebuilt only when missing, when its builder version
    changed, or with ``force``. A build is deterministic for a seed, a torch thread count and a CPU's kernels.
    """
    from filelock import FileLock

    if out is None and seed == SHIPPED_SEED and warm_start and not force \
            and shipped_record().get("builder_version") == BUILDER_VERSION:
        return SHIPPED_DIR
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


def weights_sha256(folder: str | Path) -> str:
    import hashlib

    return hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()


def ship(built: str | Path) -> dict:
    """Replace the shipped default model with the warm-started seed-0 build at ``built`` (developers: after a
    builder change, with the README's and the cards' toy numbers measured again on it). Records the builder's
    fingerprint, the machine that built it (this one, for a fresh build) and the weights' SHA-256; returns the
    new record. ``ship(SHIPPED_DIR)`` refreshes the fingerprint alone, after a change that builds the same bytes
    (checked with a rebuild on a machine of the recorded kind)."""
    import platform

    built = Path(built)
    record = json.loads((built / BUILD_INFO).read_text())
    if record != {**record, **_build_record(SHIPPED_SEED, True)}:
        raise ValueError(f"{built} is not a warm-started seed-{SHIPPED_SEED} build of builder version "
                         f"{BUILDER_VERSION}: {record.get('builder_version')}, seed {record.get('seed')}")
    record.update(builder_fingerprint=builder_fingerprint(), builder_files=builder_fingerprint(files=True),
                  weights_sha256=weights_sha256(built))
    # a fresh build was made here; the shipped copy itself (a fingerprint refreshed) keeps where it was built
    record.setdefault("built_on", {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                   "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                   "machine": platform.machine(), "torch": torch.__version__})
    tmp = Path(tempfile.mkdtemp(prefix="shipped_model.", dir=SHIPPED_DIR.parent))
    try:
        for f in sorted(built.iterdir()):
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        (tmp / BUILD_INFO).write_text(json.dumps(record, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp's 0o700 would travel into the package
        for f in tmp.iterdir():
            f.chmod(0o644)
        if SHIPPED_DIR.exists():
            shutil.rmtree(SHIPPED_DIR)
        tmp.rename(SHIPPED_DIR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


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
