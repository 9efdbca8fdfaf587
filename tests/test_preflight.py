"""Pre-flight: what a run needs, found in seconds before anything loads, every missing item at once."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from lmm_r1 import preflight, runner
from lmm_r1.config import preset


def test_the_tiny_profiles_need_nothing_this_machine_lacks():
    for profile in ("tiny", "tiny_full"):
        for nb in runner.notebooks():
            params = {**runner.defaults(nb), **runner.load_params(nb, profile)}
            assert preflight.notebook_needs(nb.name, params, profile) == [], (profile, nb.name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="lists what a CPU machine lacks")
def test_the_paper_profile_lists_everything_missing_before_any_kernel(tmp_path, monkeypatch):
    """On this machine (no GPU, no vLLM, no judge, no MageBench, no gfootball) `lmm-r1 run --profile paper`
    stops in seconds, before any kernel, naming each missing item once, for every notebook."""
    monkeypatch.delenv("LMM_R1_MAGEBENCH", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(preflight, "_hf_token", lambda: None)
    monkeypatch.chdir(tmp_path)  # started from another folder: the paper files' relative accelerate config still counts
    start = time.perf_counter()
    with pytest.raises(runner.RunError) as err:
        runner.run_profile("paper", results_dir=tmp_path)
    assert time.perf_counter() - start < 60
    msg = str(err.value)
    assert not (tmp_path / "paper").exists()  # no kernel started, nothing written
    for what in ("02_fre_text_rl.ipynb: fre_text (paper preset) needs CUDA GPUs",
                 "02_fre_text_rl.ipynb: fre_multi (paper preset) needs CUDA GPUs",
                 "03_mgt_multimodal_rl.ipynb: mgt_sokoban (paper preset) needs CUDA GPUs",
                 "02_fre_text_rl.ipynb: the fork protocol scores mathvista with an LLM judge: give judge_url",
                 "03_mgt_multimodal_rl.ipynb: the fork protocol scores mathvista, mathverse, mathvision, mmstar",
                 "02_fre_text_rl.ipynb: the vLLM backend needs vllm",
                 "04_evaluation.ipynb: sokoban_global: MageBench's Sokoban scenarios are not shipped",
                 "04_evaluation.ipynb: football_online: gfootball is not installed",
                 "04_evaluation.ipynb: gpqa_diamond: Idavidrein/gpqa is gated on the hub"):
        assert what in msg, what
    assert msg.count("fre_text (paper preset) needs CUDA") == 1  # each item once, though seed and reasons repeat
    assert "accelerate_config" not in msg  # configs/zero3_8gpu.yaml, relative to the repository root, exists


class _Judge(BaseHTTPRequestHandler):
    served = ["Qwen/Qwen2.5-14B-Instruct"]

    def do_GET(self):  # noqa: N802 - the /v1/models listing an OpenAI-compatible server gives
        body = json.dumps({"data": [{"id": m} for m in self.served]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_the_judge_must_answer_and_serve_the_model_named(judge_url, tmp_path, monkeypatch):
    needs = preflight.eval_needs
    assert needs(["mathvista", "math500"], judge_url=judge_url) == []
    assert needs(["mathvista"], protocol="rule") == []  # the kit's rules need no judge
    assert needs(["mathvista"], judge_fallback=True) == []  # asked to fall back to the rules
    [wrong] = needs(["mathvista"], judge_url=judge_url, judge_model="other/model")
    assert "serves ['Qwen/Qwen2.5-14B-Instruct'], not 'other/model'" in wrong
    [down] = needs(["mathverse"], judge_url="http://127.0.0.1:9/v1")
    assert "LLM judge at http://127.0.0.1:9/v1/models failed" in down
    [unknown] = needs(["mathvistaa"])
    assert "unknown benchmark 'mathvistaa'" in unknown
    # MageBench's resources: named, then present
    monkeypatch.setenv("LMM_R1_MAGEBENCH", str(tmp_path))
    [missing] = needs(["sokoban_global"])
    assert f"LMM_R1_MAGEBENCH={tmp_path} has no Sokoban/ folder" in missing
    (tmp_path / "Sokoban").mkdir()
    assert needs(["sokoban_global"]) == []


def test_training_needs_its_data_and_disk(tmp_path, monkeypatch):
    cfg = preset("fre_text", "tiny", dataset=str(tmp_path / "mine.jsonl"))
    assert preflight.train_needs(cfg) == [f"fre_text_seed0: dataset='{tmp_path / 'mine.jsonl'}': no such message-JSONL file"]
    (tmp_path / "mine.jsonl").write_text("")
    assert preflight.train_needs(cfg) == []
    monkeypatch.setattr(preflight, "_free_gb", lambda path: 1.0)
    [disk] = preflight.train_needs(preset("fre_multi", "tiny", dataset="vermulti", data_dir=str(tmp_path / "hub")))
    assert "vermulti needs about 5.5 GB of disk under" in disk and "1.0 GB free" in disk


def test_the_cli_commands_check_first(capsys, tmp_path):
    from lmm_r1.cli import main

    assert main(["eval", "--model", "tiny", "--benchmarks", "mathvista,sokoban_global", "--results-dir",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "lmm-r1 eval cannot start: 2 thing(s) missing" in err and "judge_url" in err
    assert not (tmp_path / "tiny").exists()
