"""Local mirrors: a folder put into the hub cache under a hub id is what the kit's loaders find with
HF_HUB_OFFLINE=1, through the same resolution a GPU run uses (huggingface_hub, transformers, datasets read their
offline settings at import, so each check runs in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lmm_r1 import mirror


def _offline(code: str, cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
           "HF_HOME": str(cache.parent / "home")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_the_paper_model_id_resolves_to_a_mirrored_folder(tiny_model, tmp_path):
    cache = tmp_path / "hub"
    snap = mirror.add("Qwen/Qwen2.5-VL-3B-Instruct", tiny_model, cache_dir=cache)
    assert snap.parent.parent.name == "models--Qwen--Qwen2.5-VL-3B-Instruct"
    assert mirror.add("Qwen/Qwen2.5-VL-3B-Instruct", tiny_model, cache_dir=cache) == snap  # idempotent
    out = _offline("from lmm_r1.models import load_model_and_processor\n"
                   "m, p = load_model_and_processor('Qwen/Qwen2.5-VL-3B-Instruct')\n"
                   "print(m.config.text_config.hidden_size, len(p.tokenizer))", cache)
    assert out.returncode == 0, out.stderr[-2000:]
    from lmm_r1.models import load_processor

    # the tiny model (hidden size 96, its own tokenizer), under the paper's id
    assert out.stdout.split() == ["96", str(len(load_processor(tiny_model).tokenizer))]
    # without the mirror, offline, the id does not resolve (and says so)
    out = _offline("from lmm_r1.models import load_processor; load_processor('Qwen/Qwen2.5-VL-7B-Instruct')", cache)
    assert out.returncode != 0


def _load_mirrored(tmp_path, repo_id: str, files, code: str) -> list[str]:
    """``files`` put into a fresh hub cache as the data set ``repo_id``; ``code`` run offline; its printed words."""
    cache = tmp_path / "hub"
    mirror.add(repo_id, files, repo_type="dataset", cache_dir=cache)
    out = _offline(code, cache)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_a_paper_training_set_loads_from_a_mirror(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    rows = [{"message": json.dumps([{"role": "user", "content": f"What is {i} + 1?"}]), "answer": f"${i + 1}$"}
            for i in range(3)]
    (files / "deepscaler_message.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    printed = _load_mirrored(tmp_path, "VLM-Reasoner/deepscaler", files,
                             "from lmm_r1.data import load_paper_dataset\n"
                             "ds = load_paper_dataset('deepscaler')\n"
                             "print(len(ds), ds[0]['answer'])")
    assert printed == ["3", "$1$"]


def test_a_benchmark_loads_from_a_mirror(tmp_path):
    import datasets

    files = tmp_path / "files"
    datasets.Dataset.from_list([{"problem": "What is $1+1$?", "answer": "2", "subject": "Algebra", "level": 1,
                                 "unique_id": "test/algebra/1.json", "solution": "2"}]).to_parquet(
        files / "test.parquet")
    printed = _load_mirrored(tmp_path, "HuggingFaceH4/MATH-500", files,
                             "from lmm_r1.evalsets import load_items\n"
                             "items, _ = load_items('math500', protocol_name='rule')\n"
                             "print(len(items), items[0].answer)")
    assert printed[-2:] == ["1", "2"]


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="'org/name'"):
        mirror.add("qwen", tmp_path, cache_dir=tmp_path / "hub")
    with pytest.raises(ValueError, match="not a folder with files"):
        mirror.add("a/b", tmp_path / "nothing", cache_dir=tmp_path / "hub")
    with pytest.raises(ValueError, match="repo_type must be one of"):
        mirror.add("a/b", tmp_path, repo_type="space", cache_dir=tmp_path / "hub")
