"""The paper profile, rehearsed on CPU: ``lmm-r1 run --profile paper --rehearse``, the step before renting GPUs.

Every cell of notebooks 01-04 runs with the paper profile's parameter files, stages, presets, notebook code and
launch path (``grpo.launch``: ``accelerate launch`` with two processes), offline. What stands in, and only that:

- **the model**: the kit's shipped tiny Qwen2.5-VL, put into a private hub cache under ``Qwen/Qwen2.5-VL-3B-Instruct``
  (``lmm_r1.mirror.add``, the mechanism an offline GPU node uses), so every hub-id lookup is the real one;
- **the training sets**: files in the released formats, in the same cache under their hub ids: DeepScaleR's and
  VerMulti's message JSONL (images at absolute paths of another machine) and VerMulti's image tarballs, so the real
  download, locked unpack and re-rooting code runs; the rows are the offline tasks' (``lmm_r1.toy.tasks``);
- **the benchmarks**: a few rows of each paper benchmark in its real columns, splits and configs;
- **MageBench Sokoban**: scenarios pickled as MageBench pickles them; the paper's Sokoban levels: 16 small levels in
  the kit's level format, where the 11,500 would be generated;
- **the judge**: a local OpenAI-compatible server (``ChatServer``) that returns the ``<answer>`` of the response it
  is shown, in place of ``vllm serve Qwen/Qwen2.5-14B-Instruct``;
- **the sizes**: ``overrides`` below, one short list, applied on top of the ``*.paper.yaml`` files read at run
  time (so the rehearsal cannot drift from them) and checked like them.

What it does not exercise: ``NOT_COVERED`` (vLLM, DeepSpeed, bf16, CUDA, memory, gfootball); ``scripts/gpu_check.sh``
checks those on one GPU. Its numbers mean nothing: it proves that the paper run's code path completes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from unittest import mock

from lmm_r1.results import REPO_ROOT

PROFILE = "paper"
ACCELERATE_CONFIG = REPO_ROOT / "configs" / "cpu_2proc.yaml"
JUDGE_MODEL = "Qwen/Qwen2.5-14B-Instruct"  # the paper profile's judge_model: the stand-in serves that name
CLUSTER = "/mnt/cluster/lmm-r1/data"  # an absolute path prefix of another machine, as the released JSONL hold
SOKOBAN_MIX = (("Sokoban-small-v0", 16),)  # ~2 s of gym-sokoban, in place of the paper's 11,500 levels
ROWS = 16  # rows of each generated training set

NOT_COVERED = (
    "vLLM (rollouts and the evaluation backend: the transformers backend stands in), "
    "DeepSpeed ZeRO-3 and the 8-GPU accelerate config (two CPU processes through accelerate's torchrun launcher "
    "stand in), bf16, CUDA and GPU memory (the sizes of the real runs), "
    "Football-Online (gfootball and MageBench's Football scenarios are not installed here), "
    "the hub download itself (the files are in the hub cache already, as after `hf download`), "
    "and every number: the model is the 2 MB tiny one"
)

# Training values every stage of notebooks 02 and 03 gets on CPU: the GPU-only switches off, and a rollout small
# enough for seconds (2 prompts x the paper's 16 samples, split into the paper's 16 updates, 1 completion per
# process and update). Everything else (learning rates, KL, clip, schedule, G, updates per rollout, pixel
# limits, prompt length, data loading, init_from chaining, freezing) stays the paper preset's.
TRAIN_OVERRIDES = {"use_vllm": False, "bf16": False, "generation_batch_size": 32, "micro_batch_size": 1,
                   "max_completion_length": 48, "train_size": ROWS,
                   "log_completions_steps": 1}  # the paper's 10 would log none in 2 steps: the notebooks show them


def overrides(judge_url: str) -> dict[str, dict[str, Any]]:
    """The rehearsal's parameter values, per notebook, applied on top of ``notebooks/params/*.paper.yaml``."""
    judge = {"judge_url": judge_url}
    trained = dict(max_steps=2, overrides=dict(TRAIN_OVERRIDES), eval_rows=2, eval_max_new_tokens=48,
                   eval_backend="transformers", accelerate_config=str(ACCELERATE_CONFIG), **judge)
    return {
        "01_reward_design": dict(n_prompts=2, max_new_tokens=48, batch_size=32),
        "02_fre_text_rl": dict(trained),
        "03_mgt_multimodal_rl": dict(trained),
        "04_evaluation": dict(n=2, max_new_tokens=48, backend="transformers", **judge),
    }


def drop_uncovered(params: dict[str, dict[str, Any]], paper_benchmarks: list[str]) -> None:
    """Notebook 04's benchmarks less Football-Online, which the rehearsal cannot run (no gfootball build and no
    MageBench Football scenarios among its stand-ins; ``NOT_COVERED``)."""
    params["04_evaluation"]["benchmarks"] = [b for b in paper_benchmarks if b != "football_online"]


# ---- a local OpenAI-compatible chat server (the judge's stand-in; the tests' too) ----

class ChatServer:
    """A chat-completions server on localhost: ``reply(prompt, payload) -> text`` answers every request;
    ``requests`` keeps each payload. ``GET /v1/models`` lists ``model``."""

    def __init__(self, reply: Callable[[str, dict], str], model: str = JUDGE_MODEL):
        self.reply, self.requests = reply, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send({"data": [{"id": model}]})

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(payload)
                text = server.reply(payload["messages"][0]["content"], payload)
                self._send({"choices": [{"message": {"role": "assistant", "content": text}}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def prompts(self) -> list[str]:
        return [p["messages"][0]["content"] for p in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def stand_in_reply(prompt: str, payload: dict) -> str:
    """The judge's stand-in: the last ``<answer>`` in the prompt (the response it was shown), else "null"; one of
    the offered choices when the request constrains them (the first if the answer is not one)."""
    found = _ANSWER.findall(prompt)
    answer = found[-1].strip() if found else "null"
    choices = payload.get("guided_choice")
    if choices:
        return answer if answer in choices else choices[0]
    return answer


# ---- fixtures in the released formats ----

def _message_rows(task: str, folder: Path, images_under: str | None) -> list[dict]:
    """``ROWS`` rows of an offline task as released message-JSONL records; images saved under ``folder`` at the
    tail of their absolute path ``CLUSTER/<images_under>/<id>.png``."""
    from lmm_r1.toy.tasks import TASKS
    from lmm_r1.toy.tasks.base import prompt_text_of

    rows = []
    for row in TASKS[task].make_dataset("train", ROWS, seed=0, system_prompt="none"):
        content = []
        for k, image in enumerate(row.get("images") or []):
            name = f"{images_under}/{row['id']}_{k}.png"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            image.save(folder / name)
            content.append({"type": "image", "image": f"{CLUSTER}/{name}"})
        content.append({"type": "text", "text": prompt_text_of(row)})
        rows.append({"message": json.dumps([{"role": "user", "content": content}]), "answer": row["answer"]})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def training_sets(root: Path, cache: Path) -> None:
    """DeepScaleR and VerMulti (with its Geo subset) in the hub cache under their ids, in the released files."""
    from lmm_r1 import mirror
    from lmm_r1.data import PAPER_DATASETS

    for name, task in (("deepscaler", "arith"), ("vermulti", "percept"), ("vermulti_geo", "geometry")):
        spec = PAPER_DATASETS[name]
        repo = root / spec.repo_id
        repo.mkdir(parents=True, exist_ok=True)
        images = root / "images" / name
        under = spec.image_archive.removesuffix("_img.tar.gz") + "/images" if spec.image_archive else None
        _write_jsonl(repo / spec.message_file, _message_rows(task, images, under))
        if spec.image_archive:
            with tarfile.open(repo / spec.image_archive, "w:gz") as tar:
                tar.add(images / under.split("/")[0], arcname=under.split("/")[0])
    for repo_id in {s.repo_id for s in PAPER_DATASETS.values()}:
        mirror.add(repo_id, root / repo_id, repo_type="dataset", cache_dir=cache)


def _readme(config: str, split: str) -> str:
    return (f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: {split}\n"
            f"    path: data/{split}.parquet\n---\nRehearsal fixture (lmm_r1.rehearsal): a few rows in the real "
            "columns.\n")


def _benchmark_rows() -> dict[str, list[dict]]:
    """Rows per hub set, in each set's own columns (the ones ``lmm_r1.evalsets`` and ``lmm_r1.protocol`` read,
    plus the others the hub's files carry), drawn from the offline tasks."""
    from lmm_r1.toy.tasks import TASKS
    from lmm_r1.toy.tasks.base import prompt_text_of

    def drawn(task, n):
        return [(prompt_text_of(r), r["answer"].strip("$"), (r.get("images") or [None])[0])
                for r in TASKS[task].make_dataset("test", n, seed=1, system_prompt="none")]

    text, percept, geo = drawn("arith", 4), drawn("percept", 4), drawn("geometry", 5)
    versions = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only")
    subjects = ("metric geometry - length", "solid geometry", "analytic geometry", "combinatorial geometry", "counting")
    return {
        "HuggingFaceH4/MATH-500": [dict(problem=q, solution=f"So it is $\\boxed{{{a}}}$.", answer=a,
                                        subject="Algebra", level=1, unique_id=f"test/algebra/{i}.json")
                                   for i, (q, a, _) in enumerate(text)],
        "Idavidrein/gpqa": [{"Record ID": f"rec{i}", "Question": q, "Correct Answer": a,
                             "Incorrect Answer 1": str(int(a) + 1), "Incorrect Answer 2": str(int(a) + 2),
                             "Incorrect Answer 3": str(int(a) + 3), "High-level domain": "Physics",
                             "Subdomain": "Quantum Mechanics"} for i, (q, a, _) in enumerate(text)],
        "lmms-lab/OlympiadBench": [dict(question_id=i, question=q, solution=[f"$\\boxed{{{a}}}$"],
                                        final_answer=[f"${a}$"], context=None, images=[img], modality="Multimodal",
                                        difficulty="Competition", is_multiple_answer=False, unit=None,
                                        answer_type="Numerical", error=None, question_type="Open-ended",
                                        subfield="Geometry", subject="Math", language="English",
                                        source="OE_MM_maths_en_COMP") for i, (q, a, img) in enumerate(geo[:3])],
        "MathLLMs/MathVision": [dict(id=str(i), question=f"<image1>\n{q}", options=[], image=f"images/{i}.jpg",
                                     decoded_image=img, answer=a, solution=None, level=1, subject=subjects[i])
                                for i, (q, a, img) in enumerate(geo)],
        "CaraJ/MathVerse-lmmseval": [dict(sample_index=str(i), problem_index=str(i), problem_version=v,
                                          question="" if v == "Vision Only" else q, image=img, answer=a,
                                          question_type="free-form", metadata={"split": "testmini"},
                                          query_wo=f"Please directly answer the question.\nQuestion: {q}",
                                          query_cot=f"Please first conduct reasoning.\nQuestion: {q}",
                                          question_for_eval=q)
                                     for i, (v, (q, a, img)) in enumerate(zip(versions, geo))],
        "Lin-Chen/MMStar": [dict(index=i, question=f"{q}\nOptions: A: {a}, B: {int(a) + 1}, C: {int(a) + 2}, "
                                                    f"D: {int(a) + 3}", image=img, answer="A",
                                 category="math", l2_category="numeric commonsense and calculation",
                                 meta_info={"source": "rehearsal", "split": "val"})
                            for i, (q, a, img) in enumerate(percept[:3])],
        "AI4Math/MathVista": [dict(pid=str(i), question=q, image=f"images/{i}.jpg", decoded_image=img,
                                   choices=None, unit=None, precision=None, answer=a, question_type="free_form",
                                   answer_type="integer", metadata={"task": "math word problem"},
                                   query=f"Hint: Please answer the question requiring an integer answer.\n"
                                         f"Question: {q}") for i, (q, a, img) in enumerate(percept)],
    }


# hub id -> (config name, split), as lmm_r1.evalsets asks for them
_SPLITS = {"HuggingFaceH4/MATH-500": ("default", "test"), "Idavidrein/gpqa": ("gpqa_diamond", "train"),
           "lmms-lab/OlympiadBench": ("default", "test_en"), "MathLLMs/MathVision": ("default", "test"),
           "CaraJ/MathVerse-lmmseval": ("testmini", "testmini"), "Lin-Chen/MMStar": ("default", "val"),
           "AI4Math/MathVista": ("default", "testmini")}


def benchmarks(root: Path, cache: Path) -> None:
    """Every paper hub benchmark in the hub cache under its id: parquet with the real columns, its config and split
    named in the README's ``configs`` (as the hub's own repositories declare them)."""
    import datasets

    from lmm_r1 import mirror

    datasets.disable_progress_bars()
    for repo_id, rows in _benchmark_rows().items():
        config, split = _SPLITS[repo_id]
        folder = root / "benchmarks" / repo_id
        (folder / "data").mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows).to_parquet(str(folder / "data" / f"{split}.parquet"))
        (folder / "README.md").write_text(_readme(config, split))
        mirror.add(repo_id, folder, repo_type="dataset", cache_dir=cache)


def magebench_scenarios(root: Path, variants=("Sokoban-small-v0", "Sokoban-small-v0", "Sokoban-small-v1"),
                        seed: int = 21) -> tuple[list[str], dict[str, list[str]], dict[str, dict]]:
    """Scenarios in MageBench's layout under ``root``: ``Sokoban_all.json``, ``Sokoban/<i>-<variant>.pkl`` (a
    pickled gym-sokoban environment after reset, as MageBench stores them) and ``Sokoban/upper_bound.json`` (the
    optimal steps and reward, from the kit's solver). Returns (names, solutions, bounds)."""
    import pickle

    from lmm_r1 import sokoban_levels
    from lmm_r1.toy.tasks import sokoban

    (root / "Sokoban").mkdir(parents=True, exist_ok=True)
    names, bounds, solutions = [], {}, {}
    for i, variant in enumerate(variants):
        env = sokoban_levels.make_env(variant, seed, i)
        level = sokoban_levels.room_to_xsb(env.room_state)
        solution = sokoban.solve(level, max_states=200_000)
        if solution is None:
            raise RuntimeError(f"the solver found no solution for {variant} level {i} (seed {seed})")
        name = f"{i}-{variant}"
        with open(root / "Sokoban" / f"{name}.pkl", "wb") as f:
            pickle.dump(env, f)
        names.append(name)
        solutions[name] = solution
        bounds[name] = {"steps": len(solution), "reward": sokoban.simulate(level, solution)[-1]}
    (root / "Sokoban_all.json").write_text(json.dumps([f"Sokoban/{n}.pkl" for n in names]))
    (root / "Sokoban" / "upper_bound.json").write_text(json.dumps(bounds))
    return names, solutions, bounds


def write_fixtures(workspace: Path) -> dict[str, str]:
    """Every stand-in under ``workspace``; returns the environment that points the kit at them."""
    from lmm_r1 import mirror, sokoban_levels
    from lmm_r1.config import PAPER_MODEL_ID
    from lmm_r1.toy.model import SHIPPED_DIR

    cache, files = workspace / "hub", workspace / "files"
    mirror.add(PAPER_MODEL_ID, SHIPPED_DIR, cache_dir=cache)
    training_sets(files, cache)
    benchmarks(files, cache)
    magebench_scenarios(workspace / "magebench")
    # where the paper's levels are generated (grpo._sokoban_levels: $LMM_R1_CACHE/sokoban_levels/seed<seed>)
    for seed in (42,):
        sokoban_levels.ensure(workspace / "cache" / "sokoban_levels" / f"seed{seed}", seed=seed, mix=SOKOBAN_MIX)
    return {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_CACHE": str(workspace / "datasets"),
            "LMM_R1_MAGEBENCH": str(workspace / "magebench"), "LMM_R1_CACHE": str(workspace / "cache")}


def check_runs(folder: Path, processes: int = 2) -> list[dict[str, Any]]:
    """The training runs' records under ``folder`` (``<run>/metrics.json`` of every ``*_seed*`` run): each
    must have run in ``processes`` processes to its ``max_steps`` (and a ppo_gae run trained its critic); a
    RunError lists every one that did not."""
    from lmm_r1.runner import RunError

    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*_seed*/metrics.json"))]
    bad = [f"{r['name']}: {r.get('processes')} process(es), step {r.get('global_step')} of "
           f"{r['config']['max_steps']}" for r in records
           if r.get("processes") != processes or r.get("global_step") != r["config"]["max_steps"]]
    bad += [f"{r['name']}: algorithm ppo_gae but no critic value loss logged" for r in records
            if r["config"].get("algorithm") == "ppo_gae" and "train/critic/value_loss/last" not in r["metrics"]]
    if bad:
        raise RunError("the rehearsal's training runs did not all run as launched:\n  " + "\n  ".join(bad))
    return records


def rehearse(results_dir: str | Path | None = None, only: str | None = None, log=None,
             progress_bar: bool = True) -> list[Path]:
    """Run notebooks 01-04 (or ``only`` one) with the paper profile on CPU, offline, against the stand-ins;
    return the executed notebooks (under ``<results_dir>/paper/``, default ``results/rehearsal/paper/``).
    The folder starts empty each time (a rehearsal never resumes an earlier one), except with ``only``: notebooks
    03 and 04 read the runs of the earlier notebooks, so ``only`` reruns one notebook on the last rehearsal's
    folder (stand-ins rewritten). Afterwards every training run's
    record must show two processes and its steps (``check_runs``); ``rehearsal.json`` records what ran, how
    long it took on which CPU, and what was not exercised."""
    import sys
    import time

    import torch

    from lmm_r1.results import results_root
    from lmm_r1.runner import load_params, notebooks, run_profile

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    root = Path(results_dir) if results_dir else results_root() / "rehearsal"
    if only is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        shutil.rmtree(root / "stand-ins", ignore_errors=True)
    workspace = root / "stand-ins"
    start = time.perf_counter()
    log(f"[rehearsal] writing the stand-ins under {workspace} ...")
    env = write_fixtures(workspace)
    judge = ChatServer(stand_in_reply)
    try:
        params = overrides(judge.url)
        evaluation = next(nb for nb in notebooks() if nb.stem == "04_evaluation")
        drop_uncovered(params, load_params(evaluation, PROFILE)["benchmarks"])
        log(f"[rehearsal] the paper profile, on CPU, offline; not exercised: {NOT_COVERED}")
        with mock.patch.dict(os.environ, env):  # the kernels and launched ranks inherit it; restored after
            executed = run_profile(PROFILE, only=only, results_dir=root, param_overrides=params, log=log,
                                   progress_bar=progress_bar)
    finally:
        judge.close()
    runs = check_runs(root / PROFILE)
    seconds = time.perf_counter() - start
    summary = {"notebooks": [p.name for p in executed], "training_runs": [r["name"] for r in runs],
               "processes_per_run": 2, "seconds": round(seconds, 1), "judge_requests": len(judge.requests),
               "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_count": os.cpu_count(),
               "overrides": {k: {p: v for p, v in vals.items() if p != "judge_url"} for k, vals in params.items()},
               "not_covered": NOT_COVERED}
    (root / "rehearsal.json").write_text(json.dumps(summary, indent=1))
    log(f"[rehearsal] passed in {seconds / 60:.1f} min ({summary['cpu_capability']}, {os.cpu_count()} cores): "
        f"{len(executed)} notebook(s), {len(runs)} training run(s) of 2 processes each, "
        f"{len(judge.requests)} judge request(s). Not exercised: vLLM, DeepSpeed, bf16, CUDA, memory, Football "
        "(scripts/gpu_check.sh on one GPU checks the first four)")
    return executed
