"""What the machine offers a run: CUDA (and, where torch sees no GPU though NVIDIA's driver is loaded, why) and vLLM.

``check_hardware(cfg)`` is called before anything loads, by training (``lmm_r1.grpo``) and by the pre-flight
(``lmm_r1.preflight``); a paper preset on a CPU machine stops there with what it needs.
"""

from __future__ import annotations

from pathlib import Path

from lmm_r1.config import StageConfig


class HardwareError(RuntimeError):
    """The config needs hardware (CUDA, vLLM) this machine lacks; the message says what it needs."""


def check_hardware(cfg: StageConfig) -> None:
    """bf16 and vLLM need CUDA; a paper preset on a CPU machine stops here with what it needs."""
    import importlib.util

    import torch

    if cfg.needs_gpu and not torch.cuda.is_available():
        needs = [what for what, on in (("bf16", cfg.bf16), ("vLLM rollouts (use_vllm)", cfg.use_vllm)) if on]
        problem = cuda_problem()
        if problem:
            raise HardwareError(f"{cfg.stage} ({cfg.preset} preset) needs CUDA for {' and '.join(needs)}: {problem}")
        raise HardwareError(
            f"{cfg.stage} ({cfg.preset} preset) needs CUDA GPUs for {' and '.join(needs)}, and this machine has "
            "none. The paper runs take one node of 8 x 80 GB GPUs (A100/H100), bf16, DeepSpeed ZeRO-3 and vLLM "
            "(PAPER.md §2): `accelerate launch --config_file configs/zero3_8gpu.yaml -m lmm_r1.cli train --stage "
            f"{cfg.stage} --preset paper`. Here, use `--preset tiny`.")
    if cfg.use_vllm and importlib.util.find_spec("vllm") is None:
        raise HardwareError("use_vllm=True but vllm is not installed: `pip install .[gpu]` on the GPU server, "
                            "or --set use_vllm=false to generate with transformers (slow for long rollouts)")


NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def cuda_problem() -> str | None:
    """Why torch sees no GPU on a machine that has NVIDIA's driver loaded, or None (no driver: no GPU here).

    The usual cause on a GPU node: a torch wheel built for a newer CUDA than the node's driver supports, which
    makes ``torch.cuda.is_available()`` False with only a warning; "this machine has no GPU" would send the user
    looking for the wrong thing."""
    import warnings

    import torch

    if not NVIDIA_DRIVER.is_file():
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            return None
    driver = NVIDIA_DRIVER.read_text().splitlines()[0].strip() if NVIDIA_DRIVER.read_text() else "?"
    said = "; ".join(str(w.message).strip().splitlines()[0] for w in caught) or "no message"
    if torch.version.cuda is None:
        return (f"this machine has NVIDIA's driver ({driver}) but torch {torch.__version__} is a CPU-only build: "
                "install a CUDA build of torch==2.13.0 for the node's driver")
    return (f"this machine has NVIDIA's driver ({driver}), but torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda}, cannot use it ({said}). The driver is most likely older than CUDA "
            f"{torch.version.cuda} needs: install the torch==2.13.0 build for the CUDA version `nvidia-smi` shows, "
            "or update the driver")
