"""The warm start's data preparation: a phase's rows, against decoding and encoding every image again, in the
same process.

    python benchmarks/bench_toy_data.py            # the reading phase's 14,000 rows

``warmstart.phase_rows(READING)`` as the build runs it (the tasks' PNG bytes passed on as they are), and the same
rows with every image decoded and encoded again on the way into the phase's dataset (the baseline, builder 7's
first way). Prints seconds and the ratio (baseline / kit). A build's own data times are in its
``warm_start.json`` (``data_seconds`` per phase). (Builder 7 also drew geometry with matplotlib and this script
compared two ways of doing that; builder 8 draws geometry as cells with PIL, as percept.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import datasets
    import numpy as np

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


if __name__ == "__main__":
    main()
