"""Sentinels for silent failure: readings that say a run is training on broken inputs while its loss looks normal.

Users of TRL, verl and EasyR1 report this class of failure more than any other: vision inputs dropped or wrong,
rollouts sampled from another prompt than the one trained on, a reward that never moves. ``LMMR1Trainer`` takes a
reading of each sentinel as it trains (``lmm_r1.trainer``), logs it as ``train/sentinel/<name>`` in
``metrics.jsonl``, warns when one crosses its threshold and writes a summary into the run record (``sentinels``).

=====================  =========================================================  ==========================
sentinel               reading                                                    fires when
=====================  =========================================================  ==========================
vision_gap             mean log-prob per completion token of the policy's own     below 1e-3 nats (warn): the
                       completions with the real image minus with a blank one     image does not reach it
                       (each image's pixels replaced by its mean colour)
engine_logp_gap        mean |log pi_trainer - log pi_rollout engine| over the     above 0.2 nats (warn):
                       sampled tokens (vLLM rollouts only)                        rollouts from another prompt
image_tokens           the trainer's and the rollout engine's image-token counts  any row differs (stop)
                       per prompt (vLLM rollouts only)
special_tokens         share of completions holding a special token (vision       above 0 (warn)
                       placeholders, chat markers) before their end
constant_reward        spread (max - min) of every reward seen so far             0 after 2 steps (warn)
unparseable_gold       share of accuracy-scored completions whose gold does not   above 0.05 (warn)
                       parse
verify_timeouts        share of accuracy-scored completions killed at the limit   above 0.05 (warn)
=====================  =========================================================  ==========================

The thresholds are loose on purpose: each names a state that is certainly wrong or worth a look, never a
tuned margin. A mismatched image-token count stops the run (``ImageTokenMismatch``): the prompt the engine sampled
from is not the prompt the policy is trained on, so every later step would learn from corrupted rollouts.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

logger = logging.getLogger(__name__)


class SentinelWarning(RuntimeWarning):
    """A sentinel fired: a finding about the run (in its record too), not a defect of the code that ran it."""


class ImageTokenMismatch(RuntimeError):
    """The rollout engine saw other image tokens than the trainer: the run cannot train on these rollouts."""


@dataclass(frozen=True)
class Sentinel:
    name: str
    fires: str  # "below", "above", "equal"
    threshold: float
    action: str  # "warn" or "stop"
    meaning: str


SENTINELS = {s.name: s for s in (
    Sentinel("vision_gap", "below", 1e-3, "warn",
             "the policy's completions are as likely with a blank image as with the real one: the image is not "
             "reaching the model (dropped pixel values, a frozen or broken vision path)"),
    Sentinel("engine_logp_gap", "above", 0.2, "warn",
             "the rollout engine's log-probs differ from the trainer's on the same tokens: the engine sampled from "
             "another prompt (image tokens, pixel limits) or another model"),
    Sentinel("image_tokens", "above", 0.0, "stop",
             "rows whose image-token count differs between the trainer and the rollout engine"),
    Sentinel("special_tokens", "above", 0.0, "warn",
             "completions that sampled a special token (an image placeholder would break the training forward)"),
    Sentinel("constant_reward", "equal", 0.0, "warn",
             "every reward so far is the same value: the policy gets no learning signal (a reward bug, or data "
             "the rewards cannot score)"),
    Sentinel("unparseable_gold", "above", 0.05, "warn",
             "gold answers the verifier cannot parse (upstream scores them 1.0: free reward)"),
    Sentinel("verify_timeouts", "above", 0.05, "warn",
             "verifications killed at the time limit (scored 0)"),
)}


def crossed(name: str, value: float | None) -> bool:
    """Whether a reading fires its sentinel (None and NaN never do: nothing was measured)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    s = SENTINELS[name]
    if s.fires == "below":
        return value < s.threshold
    if s.fires == "above":
        return value > s.threshold
    return value == s.threshold


class Watch:
    """The sentinel readings of one run: ``record`` each, read ``summary()`` at the end.

    A reading that fires warns once per sentinel (``warnings.warn`` and the log: a notebook shows it, a
    headless run logs it) and is counted; ``stop`` sentinels raise instead (``ImageTokenMismatch``).
    """

    def __init__(self):
        self.readings: dict[str, list[tuple[int, float]]] = {}
        self.fired: dict[str, int] = {}

    def record(self, name: str, value: float | None, step: int) -> float | None:
        if value is None:
            return None
        self.readings.setdefault(name, []).append((step, float(value)))
        if crossed(name, value):
            s = SENTINELS[name]
            self.fired[name] = self.fired.get(name, 0) + 1
            message = f"sentinel {name} fired at step {step} ({value:.4g}, threshold {s.threshold:g}): {s.meaning}"
            if s.action == "stop":
                raise ImageTokenMismatch(message)
            if self.fired[name] == 1:
                warnings.warn(message, SentinelWarning, stacklevel=2)
                logger.warning(message)
        return value

    def summary(self) -> dict:
        """Per sentinel: readings taken, last and extreme value, threshold, how often it fired."""
        out = {}
        for name, s in SENTINELS.items():
            values = [v for _, v in self.readings.get(name, [])]
            out[name] = {"readings": len(values), "last": values[-1] if values else None,
                         "min": min(values) if values else None, "max": max(values) if values else None,
                         "threshold": s.threshold, "fires": s.fires, "action": s.action,
                         "fired": self.fired.get(name, 0)}
        return out


def special_token_share(completion_ids, completion_mask, special_ids) -> float:
    """Share of completions holding one of ``special_ids`` among their unmasked tokens."""
    import torch

    special = torch.isin(completion_ids, torch.as_tensor(sorted(special_ids), device=completion_ids.device))
    hit = (special & completion_mask.bool()).any(dim=1)
    return hit.float().mean().item() if len(hit) else 0.0


def blank_pixels(pixel_values, image_grid_thw, channels: int = 3):
    """Each image's patches replaced by that image's mean colour: the same tokens and shapes, no content.

    Qwen2-VL processors flatten a patch channel first (``channels x temporal x patch x patch``), so the mean per
    channel over an image's patches is its mean colour, normalised. A uniform image is left as it is.
    """
    import torch

    sizes = [int(t.prod()) for t in image_grid_thw]
    out = []
    for part in pixel_values.split(sizes):
        shaped = part.reshape(part.shape[0], channels, -1)
        out.append(shaped.mean(dim=(0, 2), keepdim=True).expand_as(shaped).reshape(part.shape))
    return torch.cat(out)
