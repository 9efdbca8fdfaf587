"""The warm start's data preparation: geometry diagrams and a phase's rows, against the way builder 7 first did
them, in the same process.

    python benchmarks/bench_toy_data.py            # 600 diagrams, the reading phase's 12,000 rows
    python benchmarks/bench_toy_data.py --n 2000 --skip-phase

- diagrams: ``geometry.render`` (one matplotlib canvas per thread, emptied after each diagram) against the same
  drawing on a new ``Figure`` and ``Axes`` per diagram, saved as PNG and decoded (the baseline), on the same
  figures; the pixels must be equal, or the benchmark stops: a faster renderer that changed them would change the
  tiny model.
- phase rows: ``warmstart.phase_rows(READING)`` as the build runs it, and the same rows with every image decoded
  and encoded again on the way into the phase's dataset (the baseline).

Prints seconds and the ratios (baseline / kit). A build's own data times are in its ``warm_start.json``
(``data_seconds`` per phase).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=600, help="diagrams to render each way")
    parser.add_argument("--skip-phase", action="store_true", help="only the diagrams")
    args = parser.parse_args()

    import numpy as np

    from lmm_r1.toy.tasks import base, geometry

    figs = base.draw_unique(geometry.NAME, "train", args.n, 0, geometry._draw)
    geometry.render(figs[0])  # import matplotlib and build the canvas before timing
    baseline_render(figs[0])
    t = time.perf_counter()
    kit = [np.asarray(geometry.render(f)) for f in figs]
    kit_s = time.perf_counter() - t
    t = time.perf_counter()
    ref = [np.asarray(baseline_render(f)) for f in figs]
    ref_s = time.perf_counter() - t
    differ = sum(not np.array_equal(a, b) for a, b in zip(kit, ref))
    if differ:
        sys.exit(f"{differ} of {len(figs)} diagrams differ from the baseline's pixels")
    print(f"diagrams ({len(figs)}, pixels equal): kit {kit_s / len(figs) * 1e3:.2f} ms, baseline "
          f"{ref_s / len(figs) * 1e3:.2f} ms a diagram, ratio {ref_s / kit_s:.2f}x")
    if args.skip_phase:
        return

    import datasets

    from lmm_r1.toy import warmstart

    t = time.perf_counter()
    rows, _, _ = warmstart.phase_rows(warmstart.READING, seed=0)
    kit_s = time.perf_counter() - t
    original = warmstart._encoded_images
    # the baseline: every image decoded here and encoded again by from_dict (text rows as in the kit)
    warmstart._encoded_images = lambda ds: ds["images"] if "images" in ds.column_names else original(ds)
    try:
        datasets.disable_progress_bars()
        t = time.perf_counter()
        again, _, _ = warmstart.phase_rows(warmstart.READING, seed=0)
        ref_s = time.perf_counter() - t
    finally:
        warmstart._encoded_images = original
    same = all(np.array_equal(np.asarray(a["images"][0]), np.asarray(b["images"][0]))
               for a, b in zip(rows.select(range(200)), again.select(range(200))) if a["images"])
    print(f"reading phase rows ({len(rows)}, first 200 images equal: {same}): kit {kit_s:.1f} s, baseline "
          f"(images decoded and encoded again) {ref_s:.1f} s, ratio {ref_s / kit_s:.2f}x")


def baseline_render(fig: dict):
    """Builder 7's first renderer: a new Figure and Axes per diagram, saved as PNG, decoded back."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    from lmm_r1.toy.tasks import geometry

    canvas, ax = geometry._canvas()
    f = Figure(figsize=(geometry.IMAGE_SIZE / 100, geometry.IMAGE_SIZE / 100), dpi=100)
    FigureCanvasAgg(f)
    geometry._CANVASES.value = f.canvas, f.add_axes((0.0, 0.0, 1.0, 1.0))  # draw this one on a fresh figure
    geometry._CANVASES.value[1].axis("off")
    try:
        image = geometry.render(fig)
    finally:
        geometry._CANVASES.value = canvas, ax
    buf = io.BytesIO()
    image.save(buf, format="png")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


if __name__ == "__main__":
    main()
