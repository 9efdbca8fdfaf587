"""One shim: Qwen2.5-VL processors without torchvision.

transformers builds the Qwen2-VL *video* processor with torchvision, and ``Qwen2_5_VLProcessor`` insists on
one, so on a machine without torchvision (our CPU environment: PyPI's torchvision does not import beside the
CPU torch wheel) neither ``Qwen2_5_VLProcessor(...)`` nor ``AutoProcessor.from_pretrained`` works
(transformers issues #43986, #48556). The image processor has a PIL backend and needs nothing more.

The shim, applied only when torchvision cannot be imported, drops ``video_processor`` from the processor's
``__init__`` signature: transformers derives a processor's sub-processors from that signature, so building
and loading both skip the video part. Videos are never used by LMM-R1. ``models.save_processor`` puts the
video entry back into ``processor_config.json`` so the same folder loads normally where torchvision exists.
"""

from __future__ import annotations

import functools
import importlib.util


@functools.cache
def has_torchvision() -> bool:
    """True when torchvision imports (a GPU server); its presence alone is not enough (ABI mismatches)."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # a mismatched wheel raises RuntimeError/OSError at import
        return False
    return True


def apply() -> bool:
    """Patch Qwen2-VL-family processors to image+text only when torchvision is missing. Returns True if patched."""
    if has_torchvision():
        return False
    from transformers.models.qwen2_5_vl import processing_qwen2_5_vl
    from transformers.models.qwen2_vl import processing_qwen2_vl

    patched = False
    for cls in (processing_qwen2_5_vl.Qwen2_5_VLProcessor, processing_qwen2_vl.Qwen2VLProcessor):
        if getattr(cls, "_lmm_r1_image_only", False):
            continue
        original = cls.__init__

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, _orig=original, **kwargs):
            kwargs.pop("video_processor", None)
            _orig(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

        cls.__init__ = __init__
        cls._lmm_r1_image_only = True
        patched = True
    return patched
