"""Models and processors: loading from a hub id or a local folder, saving a processor whole.

On GPU servers ``load_model_and_processor("Qwen/Qwen2.5-VL-3B-Instruct")`` loads the paper's model; the kit's
tests and ``tiny`` profile load the embedded tiny Qwen2.5-VL (``lmm_r1.toy.model``) through the same code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

PAPER_MODEL_ID = "Qwen/Qwen2.5-VL-3B-Instruct"


def save_processor(processor, out: str | Path) -> None:
    """Save, then give ``processor_config.json`` back its video entry if the compat shim dropped it.

    Without the entry a torchvision machine builds the video processor from defaults (a different pixel
    budget than the image processor); with it, the folder loads there exactly as here.
    """
    processor.save_pretrained(out)
    path = Path(out) / "processor_config.json"
    cfg = json.loads(path.read_text())
    if "video_processor" not in cfg:
        ip = cfg["image_processor"]
        cfg["video_processor"] = {
            "video_processor_type": "Qwen2VLVideoProcessor",
            "size": dict(ip["size"]),
            "patch_size": ip["patch_size"],
            "temporal_patch_size": ip["temporal_patch_size"],
            "merge_size": ip["merge_size"],
            "image_mean": ip["image_mean"],
            "image_std": ip["image_std"],
            "do_resize": True, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True,
            "do_sample_frames": False,
            "resample": ip.get("resample", 3),
            "rescale_factor": ip["rescale_factor"],
        }
        path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def is_model_dir(path: str | Path) -> bool:
    """A local folder that holds a transformers model (config.json plus weights)."""
    p = Path(path)
    return (p / "config.json").is_file() and any(p.glob("*.safetensors"))


def load_processor(name_or_path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """AutoProcessor with LMM-R1's pixel limits (PAPER.md §3: always set max_pixels explicitly)."""
    from transformers import AutoProcessor

    kwargs = {}
    if min_pixels is not None:
        kwargs["min_pixels"] = min_pixels
    if max_pixels is not None:
        kwargs["max_pixels"] = max_pixels
    processor = AutoProcessor.from_pretrained(str(name_or_path), **kwargs)
    processor.tokenizer.padding_side = "left"
    return processor


def inference_device() -> str:
    """Where a model that generates outside the trainer belongs: the GPU when there is one. Without this a 3B
    model on a GPU node generated on its CPU, for hours, with no error (notebook 01, ``lmm-r1 eval``)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(name_or_path: str | Path, dtype: torch.dtype | str = "auto", device_map=None,
               device: str | None = None):
    """AutoModelForImageTextToText from a hub id (GPU servers) or a local folder; ``device``: moved there."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(name_or_path), dtype=dtype, device_map=device_map)
    return model.to(device) if device is not None else model


def load_model_and_processor(name_or_path: str | Path, device: str | None = "auto", **processor_kwargs):
    """Model and processor for generation; ``device="auto"``: ``inference_device()``."""
    device = inference_device() if device == "auto" else device
    return load_model(name_or_path, device=device), load_processor(name_or_path, **processor_kwargs)
