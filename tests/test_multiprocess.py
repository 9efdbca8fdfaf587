"""Two training processes on CPU (gloo), started by torchrun: the code path of 8 GPUs, run here.

`accelerate launch --cpu --num_processes 2` starts ONE process on these machines (accelerate's state sees world
size 1), so the launcher is torchrun, which gives two gloo ranks with the kit's ``use_cpu``. One tiny FRE-Text
run is killed after its first checkpoint and resumed, then chained into MGT-PerceReason. Marker
``multiprocess``: about two minutes on 2 cores; ``make test-multiprocess`` (CI runs it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.multiprocess

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _command(results: Path, model: Path, stage: str, *sets: str) -> list[str]:
    # micro batch 16: the tiny presets' rollouts (128 and 32 completions) split over 2 processes in whole batches
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "lmm_r1.cli", "train",
           "--stage", stage, "--preset", "tiny", "--results-dir", str(results), "--set", f"model={model}",
           "--set", "micro_batch_size=16"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def _run(cmd: list[str], timeout: float = 300) -> None:
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def _checkpoint_done(folder: Path, step: int) -> bool:
    # done when the resume would take it (its state parses, its RNG files are whole) and both ranks wrote theirs:
    # rank 1 writes its RNG state with no barrier before rank 0's trainer_state.json, so a kill can tear it
    from lmm_r1.grpo import _last_checkpoint

    checkpoint = folder / f"checkpoint-{step}"
    return (all((checkpoint / f"rng_state_{rank}.pth").is_file() for rank in (0, 1))
            and _last_checkpoint(folder) == str(checkpoint))


_RANK_SCRIPT = """
import json, sys, time
from pathlib import Path
from lmm_r1.grpo import launch_state

out = Path(sys.argv[1])
state = launch_state()
with state.main_process_first():
    if state.is_main_process:
        time.sleep(2.0)  # the other rank, if it does not wait, enters now and finds no file
        (out / "main_done").write_text("")
    waited = (out / "main_done").exists()
(out / f"rank{state.process_index}.json").write_text(json.dumps(
    {"processes": state.num_processes, "main": state.is_main_process, "waited": waited}))
"""


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun not found beside the interpreter")
def test_the_run_folder_is_prepared_by_one_rank_while_the_other_waits(tmp_path):
    # train() prepares the run folder under launch_state().main_process_first(). A bare PartialState() on a
    # CPU machine is one process per rank, each "main": both rewrote config.json while the other read it
    # (CI saw "Expecting value: line 1 column 1" on the resumed run).
    script = tmp_path / "ranks.py"
    script.write_text(_RANK_SCRIPT)
    _run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)], timeout=120)
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert ranks == [{"processes": 2, "main": True, "waited": True}, {"processes": 2, "main": False, "waited": True}]


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun not found beside the interpreter")
def test_two_processes_train_resume_after_kill_and_chain(tiny_model, tmp_path):
    results = tmp_path / "results"
    run = results / "tiny" / "fre_text_seed0"
    fre = _command(results, tiny_model, "fre_text", "max_steps=4", "save_steps=2")

    # 1. start, kill the whole process group once checkpoint-2 is written
    proc = subprocess.Popen(fre, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not _checkpoint_done(run / "checkpoints", 2):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint-2 within 300 s"
            time.sleep(0.5)
    finally:  # torchrun starts each rank in a session of its own: kill the ranks too, as a lost node would
        import psutil  # accelerate's dependency

        for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            p.kill()
        proc.wait()
    assert not (run / "metrics.json").exists()  # killed before the end: no run record yet

    # 2. the same command resumes from the checkpoint and finishes
    _run(fre)
    record = json.loads((run / "metrics.json").read_text())
    assert record["processes"] == 2
    assert record["global_step"] == 4
    assert record["resumed_from"].endswith("checkpoint-2")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one log, each step once across the kill
    # the reward counters are summed over both ranks: every completion of the 128-completion rollout is scored
    assert all(r["train/reward/accuracy_completions"] == 128 for r in rows), rows
    assert [p.name for p in run.iterdir() if p.name.startswith("model")] == ["model"]
    assert record["sentinels"]["special_tokens"]["readings"] >= 1

    # 3. chained: MGT-PerceReason starts from the FRE folder, with both processes
    _run(_command(results, tiny_model, "mgt_percept", f"init_from={run / 'model'}", "max_steps=1"))
    chained = json.loads((results / "tiny" / "mgt_percept_seed0" / "metrics.json").read_text())
    assert chained["processes"] == 2 and chained["global_step"] == 1
    assert chained["init_source"] == str(run / "model")
    # the vision ablation read on the first rollout, on the image stage: the warm-started model reads the images
    gap = chained["sentinels"]["vision_gap"]
    assert gap["readings"] == 1 and gap["fired"] == 0, gap
