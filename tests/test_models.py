"""The embedded tiny Qwen2.5-VL: offline build, reload, generation with and without an image, the cache."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from PIL import Image

from lmm_r1 import models
from lmm_r1.toy import model as toy_model
from lmm_r1.compat import has_torchvision


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.suffix in (".safetensors", ".json", ".jinja")}


def _image_messages(text="What is 3 + 4?"):
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def test_reload_with_auto_classes_and_forward_with_image(random_tiny_model):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(random_tiny_model)
    model = AutoModelForImageTextToText.from_pretrained(random_tiny_model)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    text = processor.apply_chat_template(_image_messages(), add_generation_prompt=True, tokenize=False)
    # 100x80 px: smart_resize rounds to multiples of 28 -> 112x84 (within 4..16 * 28*28 pixels),
    # i.e. a grid of 1 x 6 x 8 patches of 14 px, merged 2x2 -> 48 / 4 = 12 image tokens.
    batch = processor(text=[text], images=[Image.new("RGB", (100, 80), "white")], return_tensors="pt")
    assert batch["image_grid_thw"].tolist() == [[1, 6, 8]]
    n_pad = int((batch["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == 12 == int(batch["image_grid_thw"].prod()) // processor.image_processor.merge_size ** 2
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(processor.tokenizer))
    assert torch.isfinite(logits).all()


def test_generates_with_and_without_image(random_tiny_model):
    model, processor = models.load_model_and_processor(random_tiny_model)
    for messages, images in ((_image_messages(), [Image.new("RGB", (56, 56), "red")]),
                             ([{"role": "user", "content": "What is 3 + 4?"}], None)):
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = processor(text=[text], images=images, return_tensors="pt")
        out = model.generate(**batch, max_new_tokens=6, do_sample=False)
        assert out.shape[1] == batch["input_ids"].shape[1] + 6 or out[0, -1] == model.generation_config.eos_token_id


def test_tokenizer_has_qwen_special_tokens_and_chat_template(random_tiny_model):
    processor = models.load_processor(random_tiny_model)
    tok = processor.tokenizer
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>",
                    "<|image_pad|>", "<|video_pad|>"):
        assert tok.tokenize(special) == [special], special
    text = processor.apply_chat_template(_image_messages("hi"), add_generation_prompt=True, tokenize=False)
    # Qwen2-VL template: default system turn, image placeholder inside the user turn, assistant header
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    # digits are single tokens (as in Qwen's pre-tokenizer), so arithmetic is learnable digit by digit
    assert tok.tokenize("2025") == ["2", "0", "2", "5"]


def test_build_is_deterministic_for_a_seed(tmp_path):
    a = toy_model.build_tiny_model(tmp_path / "a", seed=3, warm_start=False)
    b = toy_model.build_tiny_model(tmp_path / "b", seed=3, warm_start=False)
    c = toy_model.build_tiny_model(tmp_path / "c", seed=4, warm_start=False)
    assert _digest(a) == _digest(b)
    assert _digest(a)["model.safetensors"] != _digest(c)["model.safetensors"]


def test_cache_is_reused_and_rebuilt_when_the_builder_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("LMM_R1_CACHE", str(tmp_path))
    first = toy_model.build_tiny_model(warm_start=False)
    assert first.parent == tmp_path
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert toy_model.build_tiny_model(warm_start=False) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt
    monkeypatch.setattr(toy_model, "BUILDER_VERSION", toy_model.BUILDER_VERSION + 1)
    toy_model.build_tiny_model(warm_start=False)
    assert (first / "model.safetensors").stat().st_mtime_ns != stamp
    assert json.loads((first / toy_model.BUILD_INFO).read_text())["builder_version"] == toy_model.BUILDER_VERSION


def _build_at_once(out, start, said, returned):
    # one of the processes below: waits for the other, then asks for the same model folder
    lines = []
    start.wait(timeout=60)
    returned.append(str(toy_model.build_tiny_model(out, seed=0, warm_start=False, log=lines.append)))
    said.extend(lines)


def test_processes_asking_at_once_build_the_model_once(tmp_path):
    """The ranks of a torchrun launch (or two notebooks) ask for the tiny model at the same moment: one builds, the
    other waits and gets the same folder (without the lock both built, and the second deleted the first's folder
    to put its own in place)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start, said, returned = manager.Barrier(2), manager.list(), manager.list()
        procs = [ctx.Process(target=_build_at_once, args=(tmp_path / "m", start, said, returned)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=300)
        assert [p.exitcode for p in procs] == [0, 0]
        assert len(said) == 1 and said[0].startswith("building "), list(said)
        assert list(returned) == [str(tmp_path / "m")] * 2
    assert models.is_model_dir(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.lock"]  # no half-built sibling left behind


def test_saved_processor_config_keeps_a_video_entry(random_tiny_model):
    # the compat shim drops the video processor here; a torchvision machine needs the entry back
    cfg = json.loads((random_tiny_model / "processor_config.json").read_text())
    assert cfg["processor_class"] == "Qwen2_5_VLProcessor"
    assert cfg["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    assert cfg["video_processor"]["size"] == cfg["image_processor"]["size"]


def test_is_model_dir(random_tiny_model, tmp_path):
    assert models.is_model_dir(random_tiny_model)
    (tmp_path / "config.json").write_text("{}")
    assert not models.is_model_dir(tmp_path)  # a config without weights is not a model


@pytest.mark.skipif(not has_torchvision(), reason="needs torchvision (as on a GPU server)")
def test_loads_with_torchvision_including_video_processor(random_tiny_model):
    processor = models.load_processor(random_tiny_model)
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    assert processor.video_processor.size == processor.image_processor.size


def test_the_default_model_is_the_shipped_copy(tmp_path, monkeypatch):
    """Every default use (``model: tiny``, ``lmm-r1 tiny-model``) gets the copy shipped with the kit at once,
    the same bytes on every machine: nothing is built or written to the cache."""
    from lmm_r1.cli import main

    monkeypatch.setenv("LMM_R1_CACHE", str(tmp_path))
    monkeypatch.setattr(toy_model, "_build", lambda *a, **k: pytest.fail("the default model must not be built"))
    assert toy_model.build_tiny_model() == toy_model.SHIPPED_DIR
    assert main(["tiny-model"]) == 0
    assert list(tmp_path.iterdir()) == []
    record = toy_model.shipped_record()
    assert record["seed"] == 0 and record["warm_start"] is True
    # the recorded weights are the shipped weights, and they load as any model folder does
    assert toy_model.weights_sha256(toy_model.SHIPPED_DIR) == record["weights_sha256"]
    assert models.is_model_dir(toy_model.SHIPPED_DIR)
    assert (toy_model.SHIPPED_DIR / "warm_start.json").is_file()
    assert record["built_on"]["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512")


def test_the_shipped_model_was_built_by_this_builder():
    """The shipped copy cannot drift from the code that builds it: change the builder (its code or its data) and
    this fails until the model is shipped again (or the fingerprint refreshed after checking the bytes)."""
    record = toy_model.shipped_record()
    assert record["builder_version"] == toy_model.BUILDER_VERSION, (
        f"the shipped tiny model is builder {record['builder_version']}, the code is builder "
        f"{toy_model.BUILDER_VERSION}: run `lmm-r1 tiny-model --ship` and measure the toy tables again")
    now = toy_model.builder_fingerprint(files=True)
    changed = sorted(f for f in set(now) | set(record["builder_files"]) if now.get(f) != record["builder_files"].get(f))
    assert not changed, (
        f"the tiny model's builder changed since the shipped build: {', '.join(changed)}. If the built weights "
        "change, bump BUILDER_VERSION; either way `lmm-r1 tiny-model --ship` rebuilds, ships and says whether the "
        "weights are the same (README, 'The embedded tiny model')")
    assert record["builder_fingerprint"] == toy_model.builder_fingerprint()


def test_the_fingerprint_sees_code_and_data_not_comments(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    source = tmp_path / "toy" / "rows.py"
    source.write_text('"""Rows."""\nROWS = 12000  # rows\n\n\ndef f():\n    """Doc."""\n    return ROWS\n')
    monkeypatch.setattr(toy_model, "BUILDER_SOURCES", ("toy/**/*.py",))
    before = toy_model.builder_fingerprint(root=tmp_path)
    source.write_text('"""Rows, reworded."""\nROWS = 12000  # another comment\n\ndef f():\n    return ROWS\n')
    assert toy_model.builder_fingerprint(root=tmp_path) == before
    source.write_text('"""Rows."""\nROWS = 12001\n\n\ndef f():\n    return ROWS\n')
    assert toy_model.builder_fingerprint(root=tmp_path) != before
    assert list(toy_model.builder_fingerprint(files=True, root=tmp_path)) == ["toy/rows.py"]


def test_rebuild_other_seeds_and_folders_build(tmp_path, monkeypatch):
    built = []
    monkeypatch.setenv("LMM_R1_CACHE", str(tmp_path))
    monkeypatch.setattr(toy_model, "_build", lambda target, seed, warm, log: built.append((target, seed)) or target)
    assert toy_model.build_tiny_model(force=True) == tmp_path / "tiny-qwen2.5-vl-seed0"  # --rebuild
    toy_model.build_tiny_model(seed=1)
    toy_model.build_tiny_model(tmp_path / "mine")
    assert built == [(tmp_path / "tiny-qwen2.5-vl-seed0", 0), (tmp_path / "tiny-qwen2.5-vl-seed1", 1),
                     (tmp_path / "mine", 0)]


def test_ship_records_the_builder_and_refuses_another_build(tmp_path, monkeypatch):
    monkeypatch.setattr(toy_model, "SHIPPED_DIR", tmp_path / "shipped")
    built = toy_model.build_tiny_model(tmp_path / "b", seed=0, warm_start=False)
    with pytest.raises(ValueError, match="not a warm-started seed-0 build"):
        toy_model.ship(built)  # random weights are not the default model
    info = built / toy_model.BUILD_INFO
    info.write_text(json.dumps({**json.loads(info.read_text()), "warm_start": True}))
    record = toy_model.ship(built)
    assert toy_model.shipped_record() == record
    assert record["builder_fingerprint"] == toy_model.builder_fingerprint()
    assert record["weights_sha256"] == toy_model.weights_sha256(tmp_path / "shipped")
    assert models.is_model_dir(tmp_path / "shipped") and not list(tmp_path.glob("shipped_model.*"))


def test_models_that_generate_outside_the_trainer_go_to_the_gpu(random_tiny_model, monkeypatch):
    """Notebook 01 and `lmm-r1 eval --backend transformers` once ran the 3B model on a GPU node's CPU, for hours.
    Here (no GPU) the model stays on the CPU; with CUDA reported, it is moved there (stood in for: the move is
    recorded, not made; scripts/gpu_check.sh runs the real one)."""
    model, _ = models.load_model_and_processor(random_tiny_model)
    assert model.device.type == "cpu" and models.inference_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    moved = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(a) or self)
    models.load_model_and_processor(random_tiny_model)
    assert moved == [("cuda",)]
    from lmm_r1 import evaluate

    moved.clear()
    evaluate.evaluate(random_tiny_model, ["arith"], n=1, max_new_tokens=2, record=False, progress=False)
    assert ("cuda",) in moved
