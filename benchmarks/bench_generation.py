"""Evaluation throughput: batched, left-padded greedy generation vs one prompt at a time, same process.

    .venv/bin/python benchmarks/bench_generation.py [--model tiny|PATH] [--n 32] [--max-new-tokens 64]

Prints seconds per prompt for each batch size and the speed-up over batch size 1 (the baseline, run first), on
the offline tasks' held-out prompts (text: arith; image: percept). Outputs are also checked identical across
batch sizes: batching must change speed only.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="'tiny' (the kit's warm-started model) or a folder")
    parser.add_argument("--n", type=int, default=32, help="prompts per task")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,8,32", help="the first is the baseline")
    args = parser.parse_args()

    from lmm_r1.evalsets import load_items
    from lmm_r1.evaluate import resolve_model
    from lmm_r1.generation import generate
    from lmm_r1.models import load_model, load_processor

    path = resolve_model(args.model)
    model, processor = load_model(path), load_processor(path)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for task in ("arith", "percept"):
        items, _ = load_items(task, n=args.n)
        prompts, images = [i.prompt for i in items], [i.images for i in items]
        generate(model, processor, prompts[:2], images[:2], max_new_tokens=4, progress=False)  # warm-up
        base_time, base_out = None, None
        for bs in sizes:
            start = time.perf_counter()
            out = generate(model, processor, prompts, images, max_new_tokens=args.max_new_tokens, batch_size=bs,
                           progress=False)
            seconds = time.perf_counter() - start
            base_time, base_out = (seconds, out) if base_time is None else (base_time, base_out)
            same = "identical" if out == base_out else "DIFFERENT outputs"
            print(f"{task:8s} batch {bs:3d}: {seconds / len(prompts) * 1000:7.1f} ms/prompt, "
                  f"x{base_time / seconds:5.2f} vs batch {sizes[0]} ({same})", flush=True)


if __name__ == "__main__":
    main()
