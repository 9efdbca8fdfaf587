"""The kit's side of vLLM rollouts, run here through TRL 1.16's real ``VLLMGeneration`` with vLLM stood in.

vLLM 0.31 cannot start on a CPU, so ``StandInLLM`` below does what its source does to a token prompt with images
(vllm 0.31.0, read from the wheel): every image's next ``<|image_pad|>`` is replaced by the image's N tokens,
N = grid_t * grid_h * grid_w / merge_size**2 from the image processor with the engine's pixel limits
(model_executor/models/qwen2_vl.py:1124-1157 ``PromptReplacement(target=[pad], replacement=[pad] * N)``,
multimodal/processing/processor.py:511-548 non-overlapping matches, 807-832 one per image, in order;
``mm_processor_kwargs`` min/max_pixels override the folder's ``size``, qwen2_vl.py:894-901). Everything else,
TRL's prompt building, sampling-parameter handling and output parsing, is TRL's own code. The GPU tests
(``tests/test_gpu.py``) check the same parity against a real engine.
"""

from __future__ import annotations

import types

import pytest
import torch

from lmm_r1.config import preset
from lmm_r1.grpo import pixel_limits, vllm_serve_command
from lmm_r1.sentinels import ImageTokenMismatch
from lmm_r1.trainer import (VISION_TOKENS, LMMR1Trainer, collapse_image_pads, cut_at_tokens, engine_pixel_limits,
                            guarded_generate)
from lmm_r1.toy.tasks import percept

PAD = "<|image_pad|>"


def vllm_expand(ids: list[int], tokens_per_image: list[int], pad: int) -> list[int]:
    """vLLM 0.31's prompt update for a token prompt: the k-th pad found becomes ``[pad] * tokens_per_image[k]``."""
    out, item = [], 0
    for t in ids:
        if t == pad and item < len(tokens_per_image):
            out += [pad] * tokens_per_image[item]
            item += 1
        else:
            out.append(t)
    return out


def image_tokens(image_processor, image, limits: dict | None = None) -> int:
    """N for one image, as vLLM computes it (the processor's grid with the engine's pixel limits)."""
    size = dict(image_processor.size)
    if limits:
        size = size | {"shortest_edge": limits["min_pixels"], "longest_edge": limits["max_pixels"]}
    grid = image_processor(images=[image], size=size, return_tensors="pt")["image_grid_thw"][0]
    return int(grid.prod()) // image_processor.merge_size ** 2


class StandInLLM:
    """vLLM's ``LLM`` as far as TRL's colocate path uses it: built from the model folder (its processor's
    limits unless ``mm_processor_kwargs`` overrides them); ``generate`` expands token prompts by vLLM's rule
    and returns RequestOutput-shaped objects. ``completion`` is what every request "samples"."""

    built: list[dict] = []
    completion: list[int] = []

    def __init__(self, model, mm_processor_kwargs=None, **kwargs):
        from transformers import AutoProcessor

        StandInLLM.built.append({"model": model, "mm_processor_kwargs": mm_processor_kwargs, **kwargs})
        self.processor = AutoProcessor.from_pretrained(model)
        self.limits = mm_processor_kwargs
        self.seen: list[dict] = []

    def generate(self, prompts, sampling_params=None, use_tqdm=False):
        pad = self.processor.tokenizer.convert_tokens_to_ids(PAD)
        outputs = []
        for p in prompts:
            self.seen.append(p)
            images = p.get("multi_modal_data", {}).get("image")
            images = [] if images is None else images if isinstance(images, list) else [images]
            n = [image_tokens(self.processor.image_processor, im, self.limits) for im in images]
            expanded = vllm_expand(list(p["prompt_token_ids"]), n, pad)
            lp = [{t: types.SimpleNamespace(logprob=-0.5, rank=1)} for t in self.completion]
            outputs.append(types.SimpleNamespace(prompt_token_ids=expanded, outputs=[
                types.SimpleNamespace(token_ids=list(self.completion), logprobs=lp)]))
        return outputs


class StandInSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@pytest.fixture
def processor(random_tiny_model):
    from lmm_r1.models import load_processor

    return load_processor(random_tiny_model)


@pytest.fixture
def rows():
    return percept.make_dataset("train", 3, seed=0)


def trl_prompt_ids(processor, rows) -> list[list[int]]:
    """The prompt ids TRL 1.16's GRPOTrainer hands vLLM: the processor's chat template, tokenized, image pads
    expanded (grpo_trainer.py:1737-1748)."""
    from trl.data_utils import prepare_multimodal_messages

    convs = [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]
    return [list(ids) for ids in processor.apply_chat_template(convs, add_generation_prompt=True, tokenize=True,
                                                               return_dict=True)["input_ids"]]


def pad_id(processor) -> int:
    return processor.tokenizer.convert_tokens_to_ids(PAD)


def test_vllm_expands_trl_prompts_a_second_time(processor, rows):
    """The bug (TRL #6294) on real tiny-model prompts: a percept image (112 x 28 px -> grid 1 x 2 x 8, 4 tokens
    after the 2 x 2 merge) is 4 pads in TRL's ids; vLLM replaces the first with 4 more and keeps the other 3."""
    pad = pad_id(processor)
    ids = trl_prompt_ids(processor, rows)[0]
    assert ids.count(pad) == 4
    n = image_tokens(processor.image_processor, rows[0]["images"][0])
    assert n == 4
    assert vllm_expand(ids, [n], pad).count(pad) == 7  # 4 embedded as the image + 3 stray pads as text
    collapsed = collapse_image_pads(ids, pad)
    assert collapsed.count(pad) == 1 and len(collapsed) == len(ids) - 3
    assert vllm_expand(collapsed, [n], pad) == ids  # one pad per image: vLLM rebuilds exactly the trainer's prompt


def _generation(monkeypatch, processor, model_dir, limits=None):
    """TRL's real VLLMGeneration in colocate mode over the stand-in engine, built as the kit builds it."""
    from accelerate import Accelerator
    from transformers import AutoModelForImageTextToText
    from trl.generation import vllm_generation

    monkeypatch.setattr(vllm_generation, "is_vllm_available", lambda: True)
    monkeypatch.setattr(vllm_generation, "LLM", StandInLLM, raising=False)
    monkeypatch.setattr(vllm_generation, "SamplingParams", StandInSamplingParams, raising=False)
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    StandInLLM.built.clear()
    with engine_pixel_limits(limits):
        gen = vllm_generation.VLLMGeneration(model=model, accelerator=Accelerator(cpu=True),
                                             processing_class=processor, mode="colocate", max_completion_length=8)
    return gen


def _trainer_like(processor, generation):
    """The attributes of LMMR1Trainer that its vLLM guard reads (the real method then wraps ``generation``)."""
    tok = processor.tokenizer
    vision = {tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    t = types.SimpleNamespace(vllm_generation=generation, _image_pad_token_id=pad_id(processor), _pending={},
                              vision_token_ids=vision, special_token_ids=vision | {tok.convert_tokens_to_ids("<|im_start|>")})
    LMMR1Trainer._guard_vllm(t)
    return t


def test_colocated_rollouts_see_the_trainers_image_tokens(monkeypatch, processor, rows, random_tiny_model):
    gen = _generation(monkeypatch, processor, random_tiny_model)
    trainer = _trainer_like(processor, gen)
    ids = trl_prompt_ids(processor, rows)
    StandInLLM.completion = [5, 6, 7]
    prompt_ids, completion_ids, logprobs, _ = gen.generate(ids, [r["images"] for r in rows], num_generations=1)
    engine = gen.llm
    pad = pad_id(processor)
    assert [p["prompt_token_ids"].count(pad) for p in engine.seen] == [1, 1, 1]  # one pad per image sent
    assert prompt_ids == ids  # the engine's expanded prompt is the trainer's
    assert trainer._pending["image_tokens"] == 0.0
    assert completion_ids == [[5, 6, 7]] * 3 and logprobs == [[[-0.5]] * 3] * 3
    # the vision tokens carry vLLM's logit bias in the sampling parameters TRL builds
    bias = gen.generation_kwargs["logit_bias"]
    assert set(bias) == trainer.vision_token_ids and set(bias.values()) == {-100.0}


def test_without_the_guard_vllm_gets_a_corrupted_prompt(monkeypatch, processor, rows, random_tiny_model):
    """TRL alone: the same real call gives vLLM 4 pads per image and gets 7 back (what the guard prevents)."""
    gen = _generation(monkeypatch, processor, random_tiny_model)
    ids = trl_prompt_ids(processor, rows)
    prompt_ids, *_ = gen.generate(ids, [r["images"] for r in rows], num_generations=1)
    assert [p.count(pad_id(processor)) for p in prompt_ids] == [7, 7, 7]


def test_other_pixel_limits_stop_the_run_and_the_kits_limits_reach_the_engine(monkeypatch, random_tiny_model,
                                                                              rows):
    """A stage whose processor has other pixel limits than the engine's folder (a hub model's default 12.8 MP
    against training's 501,760 px): 16 image tokens in training, 4 in the engine. The guard stops the run;
    the kit's pixel limits given to the engine (as LMMR1Trainer gives them) make the counts agree."""
    from lmm_r1.models import load_processor

    limits = {"min_pixels": 16 * 28 * 28, "max_pixels": 16 * 28 * 28}
    big = load_processor(random_tiny_model, **limits)  # the trainer's processor: every image 16 tokens
    ids = trl_prompt_ids(big, rows)
    assert ids[0].count(pad_id(big)) == 16

    gen = _generation(monkeypatch, big, random_tiny_model)  # engine with the folder's limits (4 tokens)
    _trainer_like(big, gen)
    with pytest.raises(ImageTokenMismatch, match=r"3 of 3 prompts \(row 0: trainer 16, engine 4"):
        gen.generate(ids, [r["images"] for r in rows], num_generations=1)

    gen = _generation(monkeypatch, big, random_tiny_model, limits=limits)
    assert StandInLLM.built[-1]["mm_processor_kwargs"] == limits
    trainer = _trainer_like(big, gen)
    prompt_ids, *_ = gen.generate(ids, [r["images"] for r in rows], num_generations=1)
    assert prompt_ids == ids and trainer._pending["image_tokens"] == 0.0


def test_a_sampled_vision_token_is_cut_and_counted(monkeypatch, processor, rows, random_tiny_model):
    gen = _generation(monkeypatch, processor, random_tiny_model)
    trainer = _trainer_like(processor, gen)
    pad = pad_id(processor)
    StandInLLM.completion = [5, 6, pad, 7]  # the pad got through the logit bias
    _, completion_ids, logprobs, token_ids = gen.generate(trl_prompt_ids(processor, rows),
                                                          [r["images"] for r in rows], num_generations=1)
    assert completion_ids == [[5, 6]] * 3  # cut before it: the tokens sampled before it stay
    assert [len(x) for x in logprobs] == [2, 2, 2] and [len(x) for x in token_ids] == [2, 2, 2]
    assert trainer._pending["special_tokens"] == 1.0


def test_cut_at_tokens_by_hand():
    ids, lps, lpt, cut = cut_at_tokens([[1, 2, 9, 3], [4, 5]], [[[-1.0]] * 4, [[-2.0]] * 2], None, {9})
    assert ids == [[1, 2], [4, 5]] and lps == [[[-1.0]] * 2, [[-2.0]] * 2] and lpt is None and cut == 1


def test_guard_in_server_mode_checks_without_collapsing(processor, rows):
    """Server mode: TRL places the server's image features on the trainer's expanded pads itself
    (vllm_generation.py:607-632), so the guard sends the ids as they are and only checks what comes back."""
    ids = trl_prompt_ids(processor, rows)
    sent = []

    def server(prompts, images, num_generations, profiler=None):
        sent.extend(prompts)
        return prompts, [[5]] * len(prompts), None, None

    trainer = types.SimpleNamespace(_image_pad_token_id=pad_id(processor), _pending={}, vision_token_ids=set(),
                                    special_token_ids=set())
    guarded_generate(server, ids, [r["images"] for r in rows], 1, trainer=trainer, mode="server")
    assert sent == ids and trainer._pending["image_tokens"] == 0.0


def test_transformers_rollouts_never_sample_a_vision_token(random_tiny_model, tmp_path):
    """TRL suppresses only <|image_pad|>; the kit's trainer suppresses every vision token. A model pushed to
    sample them (their lm_head rows scaled up) still never does under the trainer's generation config."""
    from lmm_r1.grpo import build_trainer

    cfg = preset("mgt_percept", "tiny", init_from=str(random_tiny_model), max_steps=1, train_size=8,
                 generation_batch_size=8, num_generations=4, micro_batch_size=8, max_completion_length=8)
    trainer = build_trainer(cfg, output_dir=tmp_path / "ckpt", results_dir=tmp_path).trainer
    assert trainer.vision_token_ids <= set(trainer.generation_config.suppress_tokens)
    model, tok = trainer.model, trainer._tokenizer
    push = {(t,): 100.0 for t in trainer.vision_token_ids}  # +100 on every vision token's logit
    ids = tok(["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"] * 4, return_tensors="pt")
    n = ids["input_ids"].shape[1]
    plain = model.generate(**ids, max_new_tokens=6, do_sample=True, sequence_bias=push)
    assert set(plain[:, n:].flatten().tolist()) <= trainer.vision_token_ids  # pushed, it samples nothing else
    config = trainer.generation_config
    out = model.generate(**ids, generation_config=config, max_new_tokens=6, do_sample=True, sequence_bias=push)
    assert not set(out[:, n:].flatten().tolist()) & trainer.vision_token_ids


def test_vllm_serve_command_carries_the_stage_pixel_limits():
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    cfg = preset("fre_multi", "paper")
    cmd = vllm_serve_command(cfg)
    assert cmd.startswith("CUDA_VISIBLE_DEVICES=4,5,6,7 trl vllm-serve --model Qwen/Qwen2.5-VL-3B-Instruct ")
    assert "--max_model_len 12288" in cmd  # 4096 prompt + 8192 completion
    assert """--mm-processor-kwargs '{"min_pixels": 3136, "max_pixels": 501760}'""" in cmd
    assert pixel_limits(cfg) == {"min_pixels": 3136, "max_pixels": 501760}
    # TRL forwards what it does not know to `vllm serve` unchanged, after its own arguments
    extra = ["--mm-processor-kwargs", '{"min_pixels": 3136, "max_pixels": 501760}']
    assert build_command(ScriptArguments(model="m"), extra)[-2:] == extra


def test_vllm_serve_command_resolves_init_from_in_the_profile_and_results_folder(tmp_path, capsys):
    """One resolution of ``init_from`` (grpo.init_path) for training and for the server's command: an MGT stage's
    server starts from the FRE run of the same profile, seed and results folder (it once printed results/<preset>)."""
    from lmm_r1.cli import main

    argv = ["train", "--stage", "mgt_geometry", "--preset", "paper", "--seed", "3", "--profile", "paper_try",
            "--results-dir", str(tmp_path), "--set", "vllm_mode=server", "--vllm-serve-command"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"--model {tmp_path / 'paper_try' / 'fre_text_seed3' / 'model'} " in out


def test_one_evaluation_engine_per_process(monkeypatch):
    """Each evaluate() once built a new vLLM engine beside the last (twice per heldout, once per checkpoint in
    notebook 04), each claiming 80% of the GPU. The same model and settings reuse the engine; another model frees
    the last engine (its engine core shut down) before building. vLLM cannot start here: its LLM is stood in for."""
    import sys
    import types

    from lmm_r1 import generation

    built, shut = [], []

    class Core:
        def __init__(self, model):
            self.model = model

        def shutdown(self):
            shut.append(self.model)

    class LLM:
        def __init__(self, model, **kwargs):
            built.append(model)
            self.llm_engine = types.SimpleNamespace(engine_core=Core(model))

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    monkeypatch.setattr(generation, "_ENGINE", None)
    a = generation.load_vllm("ckpt_a", max_pixels=501760)
    assert generation.load_vllm("ckpt_a", max_pixels=501760) is a  # heldout's sampled pass: the same engine
    b = generation.load_vllm("ckpt_b", max_pixels=501760)
    assert b is not a and built == ["ckpt_a", "ckpt_b"] and shut == ["ckpt_a"]  # a freed before b was built
    generation.load_vllm("ckpt_b", max_pixels=12544)  # other pixel limits: another engine
    assert built == ["ckpt_a", "ckpt_b", "ckpt_b"] and shut == ["ckpt_a", "ckpt_b"]
    generation.free_vllm()
    assert shut == ["ckpt_a", "ckpt_b", "ckpt_b"] and generation._ENGINE is None
