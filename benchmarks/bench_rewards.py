"""Accuracy-reward throughput: lmm_r1's worker pool vs naive serial math-verify, in the same process.

    python benchmarks/bench_rewards.py                # 2400 completions, the default 3 s limit
    python benchmarks/bench_rewards.py --n 4000 --timeout 2

The set is fixed (seeded) and mixed like a GRPO batch: groups of 8 completions share a gold answer; about 45%
are correct (plain, boxed, fraction vs decimal, units), 30% wrong, 25% malformed (no tags, no LaTeX, empty,
None, long rambling, broken LaTeX), plus a few pathological ones that math-verify cannot finish.

- lmm_r1: the accuracy reward's judging (``VerifierPool.judge``, one worker per CPU) in batches of ``--batch``
  completions, as a trainer calls it once per step. Each run gets new workers, started and warmed on 800
  completions of another draw (as by earlier training steps) before the timing. Per-item latency is the time
  from a worker starting an item to its verdict (a killed item counts until it was killed).
- naive: upstream LMM-R1's ``verify_math`` as it would run in-process, one item after another: parse the gold,
  parse the response, ``verify``, with math-verify's own SIGALRM timeouts (5 s each, main thread only).
  On the pathological items even that may never return (Math-Verify issue #65), so those run under a guard:
  each in a forked child killed after ``--guard`` seconds; a killed one is charged the guard time (a lower
  bound for naive). They are reported separately, and the ratio is given with and without them.

Both scorers get the same warm-up. Also printed: CPU time per item (the workers' summed), which does not
depend on what else the machine runs. Target (2 cores): lmm_r1 >= 1.5x naive, no item slower than limit + 1 s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PATHOLOGICAL = [
    "<think>big</think><answer>$\\boxed{9^{9^{9^{9}}}}$</answer>",
    "<think>tower</think><answer>$\\boxed{2^{2^{2^{2^{2^{2}}}}}}$</answer>",
    "<answer>$\\boxed{\\dfrac{5^{\\left(5^{\\left(5^{\\left(5^5\\right)}\\right)} - 4\\right)} - 5}{16}}$</answer>",
    "<answer>$\\boxed{10^{10^{9}}}$</answer>",
    "<answer>$\\boxed{(10^{7})!}$</answer>",
    "<answer>$" + "{" * 200_000 + "}" * 200_000 + "$</answer>",
]


def _think(rng: random.Random) -> str:
    words = ["first", "compute", "the", "product", "then", "add", "so", "we", "get", "check", "again", "carry"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))


def make_set(n: int, n_pathological: int, seed: int = 0) -> tuple[list, list[str], list[str]]:
    """(completions, golds, kinds): a fixed mixed set; kinds are correct/wrong/malformed/pathological."""
    rng = random.Random(seed)
    completions, golds, kinds = [], [], []
    while len(completions) < n - n_pathological:
        a, b = rng.randint(1, 99), rng.randint(2, 12)
        gold_kind = rng.random()
        if gold_kind < 0.6:
            gold, wrong = f"${a}$", f"${a + 1}$"
            right = [f"${a}$", f"$\\boxed{{{a}}}$", f"$x = {a}$", f"${a}\\text{{ cm}}$"]
        elif gold_kind < 0.85:
            gold = f"$\\frac{{{a}}}{{{b}}}$"
            right = [f"$\\frac{{{a}}}{{{b}}}$", f"$\\dfrac{{{a}}}{{{b}}}$", f"${a}/{b}$"]
            if (a / b) * 1000 == int((a / b) * 1000):
                right.append(f"${a / b}$")
            wrong = f"$\\frac{{{a + 1}}}{{{b}}}$"
        else:
            gold = f"$\\sqrt{{{a}}}$"
            right, wrong = [f"$\\sqrt{{{a}}}$", f"${a}^{{1/2}}$"], f"$\\sqrt{{{a + 1}}}$"
        for _ in range(8):  # a GRPO group: several samples of one prompt
            r = rng.random()
            think = _think(rng)
            if r < 0.45:
                ans, kind = rng.choice(right), "correct"
                text = f"<think>{think}</think><answer>{ans}</answer>"
            elif r < 0.75:
                ans, kind = wrong, "wrong"
                text = f"<think>{think}</think><answer>{ans}</answer>"
            else:
                kind = "malformed"
                text = rng.choice([
                    f"{think} so the result is {a}",  # no tags, no LaTeX
                    f"<think>{think}</think><answer>{a}</answer>",  # no $...$
                    "",
                    None,
                    f"<think>{think * 40}",  # long rambling, cut off
                    f"<think>{think}</think><answer>$\\frac{{{a}}}{{$</answer>",  # broken LaTeX
                    f"<think>{think}</think><answer>${a}",  # unterminated
                ])
            completions.append(text)
            golds.append(gold)
            kinds.append(kind)
    keep = n - n_pathological
    completions, golds, kinds = completions[:keep], golds[:keep], kinds[:keep]
    for i in range(n_pathological):
        at = rng.randrange(len(completions) + 1)
        completions.insert(at, PATHOLOGICAL[i % len(PATHOLOGICAL)])
        golds.insert(at, golds[min(at, len(golds) - 1)])  # one more sample of a neighbouring prompt
        kinds.insert(at, "pathological")
    return completions, golds, kinds


def naive_score(completion, gold: str) -> float:
    """Upstream LMM-R1's ``verify_math`` in-process (math-verify's default SIGALRM timeouts), our verify order."""
    from lmm_r1.rewards import completion_text
    from lmm_r1.verifier import _configs, wrap_gold
    from math_verify import parse, verify

    text = completion_text(completion)
    gold_parsed = parse(wrap_gold(gold), extraction_config=_configs()[0], extraction_mode="first_match")
    if not gold_parsed:
        return 1.0
    answer_parsed = parse(text, extraction_config=_configs()[1], extraction_mode="first_match")
    return float(verify(gold_parsed, answer_parsed))


def _naive_child(completion, gold, conn):
    conn.send(naive_score(completion, gold))


def naive_guarded(completion, gold: str, guard: float) -> tuple[float, float, bool]:
    """(score, seconds, hung): naive scoring in a forked child, killed after ``guard`` seconds."""
    parent, child = mp.get_context("fork").Pipe(duplex=False)
    t = time.perf_counter()
    p = mp.get_context("fork").Process(target=_naive_child, args=(completion, gold, child))
    p.start()
    ready = parent.poll(guard)
    seconds = time.perf_counter() - t
    score = parent.recv() if ready else 0.0
    p.kill()
    p.join()
    return score, (seconds if ready else guard), not ready


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2400, help="completions in the set (>= 2000 for the README number)")
    ap.add_argument("--pathological", type=int, default=6, help="how many of them are pathological")
    ap.add_argument("--timeout", type=float, default=None, help="lmm_r1's per-item limit (default: the kit's)")
    ap.add_argument("--batch", type=int, default=256, help="completions per reward call (a training step's worth)")
    ap.add_argument("--guard", type=float, default=30.0, help="seconds before a naive pathological item is killed")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each scorer on the clean items (best kept)")
    ap.add_argument("--warmup", type=int, default=800, help="completions of another draw scored before timing")
    args = ap.parse_args(argv)

    import logging

    # naive timeouts and the deprecated equations=True log a warning per item: silence, as the workers do
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
    from lmm_r1 import rewards, verifier

    limit = args.timeout or verifier.DEFAULT_TIMEOUT
    completions, golds, kinds = make_set(args.n, args.pathological)
    clean = [i for i, k in enumerate(kinds) if k != "pathological"]
    patho = [i for i, k in enumerate(kinds) if k == "pathological"]
    counts = {k: kinds.count(k) for k in ("correct", "wrong", "malformed", "pathological")}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"set: {len(completions)} completions {counts}; cpus={os.cpu_count()}, "
          f"workers={verifier.VerifierPool().size}, limit={limit:g} s, load avg {load:.1f}")

    # "Earlier training steps": a different draw of the same kind of batch, scored before the timing by both
    # scorers, so caches hold what a running trainer's would (common answers), not the timed items themselves.
    warm_completions, warm_golds, _ = make_set(args.warmup, 0, seed=1)
    warm_texts = [rewards.completion_text(c) for c in warm_completions]

    def fresh_pool() -> verifier.VerifierPool:
        """New workers started and warmed outside the timing, as by a trainer's earlier steps."""
        pool = verifier.VerifierPool()
        while not all(w.ready for w in pool._workers) or len(pool._workers) < pool.size:
            pool.judge(["1"], ["$1$"])
        pool.judge(warm_golds, warm_texts, timeout=limit)
        return pool

    def cpu_seconds(pool: verifier.VerifierPool) -> float:
        """CPU time of the pool's live workers (Linux /proc; 0 elsewhere)."""
        total = 0.0
        for pid in pool.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return total

    cpu = {"ours": [], "naive": []}

    def ours(idx: list[int]) -> tuple[float, list[float], list[float], int]:
        scores, latencies, timeouts = [], [], 0
        with fresh_pool() as pool:
            c0 = cpu_seconds(pool)
            t = time.perf_counter()
            for s in range(0, len(idx), args.batch):  # one reward call per training step's worth
                part = idx[s:s + args.batch]
                texts = [rewards.completion_text(completions[i]) for i in part]
                verdicts = pool.judge([golds[i] for i in part], texts, timeout=limit)
                scores += [0.0 if v.correct is None else float(v.correct) for v in verdicts]
                latencies += [v.seconds for v in verdicts]
                timeouts += sum(v.status == "timeout" for v in verdicts)
            wall = time.perf_counter() - t
            cpu["ours"].append((cpu_seconds(pool) - c0) / len(idx))  # meaningful without killed workers only
            return wall, scores, latencies, timeouts

    def naive(idx: list[int]) -> tuple[float, dict[int, float]]:
        t, c = time.perf_counter(), time.process_time()
        scores = {i: naive_score(completions[i], golds[i]) for i in idx}
        cpu["naive"].append((time.process_time() - c) / len(idx))
        return time.perf_counter() - t, scores

    ours_all_s, ours_scores, latencies, timeouts = ours(list(range(len(completions))))
    for c, g in zip(warm_completions, warm_golds):  # the same warm-up as the workers had
        naive_score(c, g)
    # The clean items alternately, best of --repeats each: the machine may be shared, and the best run is the one
    # least disturbed by other processes.
    ours_runs, naive_runs = [], []
    for _ in range(args.repeats):
        ours_runs.append(ours(clean)[0])
        seconds, naive_scores = naive(clean)
        naive_runs.append(seconds)
    ours_clean_s, naive_clean_s = min(ours_runs), min(naive_runs)
    print(f"clean runs (s): lmm_r1 {[round(x, 2) for x in ours_runs]}, naive {[round(x, 2) for x in naive_runs]}")
    guarded = {i: naive_guarded(completions[i], golds[i], args.guard) for i in patho}
    naive_patho_s = sum(g[1] for g in guarded.values())
    hung = sum(g[2] for g in guarded.values())

    agree = sum(naive_scores[i] == ours_scores[i] for i in clean)
    max_lat = max(latencies)
    print(f"{'':22}{'lmm_r1':>12}{'naive':>12}{'ratio':>8}")
    print(f"{'clean items/s (best)':22}{len(clean) / ours_clean_s:12.1f}{len(clean) / naive_clean_s:12.1f}"
          f"{naive_clean_s / ours_clean_s:8.2f}x")
    print(f"{'all items/s':22}{len(completions) / ours_all_s:12.1f}"
          f"{len(completions) / (naive_clean_s + naive_patho_s):12.1f}"
          f"{(naive_clean_s + naive_patho_s) / ours_all_s:8.2f}x")
    print(f"naive on the {len(patho)} pathological items: {naive_patho_s:.1f} s "
          f"({hung} still running at the {args.guard:g} s guard, charged the guard)")
    print(f"lmm_r1: {timeouts} of {len(patho)} pathological items timed out; largest per-item latency "
          f"{max_lat:.2f} s (limit + 1 s = {limit + 1:g} s): {'OK' if max_lat <= limit + 1 else 'OVER'}")
    print(f"same score on {agree}/{len(clean)} clean items")
    # On a shared machine the wall-clock ratio depends on what else runs; CPU per item does not.
    print(f"CPU per clean item (best run): lmm_r1 {min(cpu['ours'][1:]) * 1e3:.2f} ms summed over workers, "
          f"naive {min(cpu['naive']) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
