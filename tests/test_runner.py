"""`lmm-r1 run`: parameter validation before any kernel starts, run records, failing notebooks."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from lmm_r1 import runner
from lmm_r1.cli import main

PARAMS = 'profile = "tiny"\nresults_dir = "results"\nsteps = 3\nlr = 0.5\nname = "demo"\n'
RECORD = ("from lmm_r1.results import write_run_record\n"
          "path = write_run_record(name, config={'steps': steps, 'lr': lr}, metrics={'score': steps * lr},"
          " profile=profile, seed=0, root=results_dir)")


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path):
    books, params = tmp_path / "notebooks", tmp_path / "notebooks" / "params"
    params.mkdir(parents=True)
    _notebook(books / "01_first.ipynb", RECORD)
    _notebook(books / "02_second.ipynb", "x = 1", "raise ValueError('boom in cell two')")
    (params / "01_first.tiny.yaml").write_text("steps: 4\nlr: 0.25\n")
    (params / "02_second.tiny.yaml").write_text("steps: 1\n")
    (params / "01_first.paper.yaml").write_text("steps: 1000\n")
    return dict(notebook_dir=books, params_dir=params, results_dir=tmp_path / "results")


def test_profiles_and_numbered_notebooks(project):
    assert runner.profiles(project["params_dir"]) == ["paper", "tiny"]
    assert [p.name for p in runner.notebooks(project["notebook_dir"])] == ["01_first.ipynb", "02_second.ipynb"]


def test_runs_with_params_and_writes_a_record(project):
    [out] = runner.run_profile("tiny", only="01", progress_bar=False, **project)
    assert out == project["results_dir"] / "tiny" / "01_first.ipynb"
    record = json.loads((project["results_dir"] / "tiny" / "demo" / "metrics.json").read_text())
    # the yaml's values reached the notebook: 4 steps * 0.25 = 1.0
    assert record["config"] == {"steps": 4, "lr": 0.25} and record["metrics"] == {"score": 1.0}
    assert record["profile"] == "tiny" and record["seed"] == 0
    assert record["versions"]["torch"] and record["versions"]["python"]
    assert "cpu_count" in record["hardware"] and "commit" in record["git"]


def test_unknown_profile_lists_the_profiles(project):
    with pytest.raises(runner.RunError, match=r"unknown profile 'nosuch'; available profiles: paper, tiny"):
        runner.run_profile("nosuch", **project)


def test_unknown_parameter_names_file_and_key(project):
    (project["params_dir"] / "01_first.tiny.yaml").write_text("steps: 4\nlearning_rate: 0.1\n")
    with pytest.raises(runner.RunError, match=r"01_first\.tiny\.yaml: unknown parameter 'learning_rate'"):
        runner.run_profile("tiny", **project)
    # nothing ran: validation happens before the first kernel starts
    assert not (project["results_dir"] / "tiny" / "01_first.ipynb").exists()


@pytest.mark.parametrize("line, kind", [
    ("steps: '4'", "int"),      # a quoted number is a string
    ("steps: true", "int"),     # a bool is not an int here
    ("lr: fast", "float"),
    ("name: 3", "str"),
])
def test_mistyped_parameter_names_file_key_and_type(project, line, kind):
    (project["params_dir"] / "01_first.tiny.yaml").write_text(line + "\n")
    key = line.split(":")[0]
    with pytest.raises(runner.RunError, match=rf"01_first\.tiny\.yaml: parameter '{key}' should be {kind}"):
        runner.load_params(project["notebook_dir"] / "01_first.ipynb", "tiny", project["params_dir"])


def test_an_int_is_accepted_for_a_float(project):
    (project["params_dir"] / "01_first.tiny.yaml").write_text("lr: 1\n")
    assert runner.load_params(project["notebook_dir"] / "01_first.ipynb", "tiny", project["params_dir"]) == {"lr": 1}


def test_failing_notebook_names_cell_and_keeps_partial_copy(project):
    with pytest.raises(runner.RunError) as err:
        runner.run_profile("tiny", only="02", progress_bar=False, **project)
    msg = str(err.value)
    # cell 0 = injected parameters, 1 = the parameters cell, 2 = "x = 1", 3 = the raise
    assert "notebook 02_second.ipynb failed in cell" in msg and "ValueError: boom in cell two" in msg
    kept = project["results_dir"] / "tiny" / "02_second.ipynb"
    assert str(kept) in msg
    executed = nbformat.read(kept, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells for o in c.get("outputs", []))


def test_cli_exit_codes(project, capsys, monkeypatch):
    monkeypatch.setattr(runner, "PARAMS_DIR", project["params_dir"])
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", project["notebook_dir"])
    assert main(["run", "--profile", "nosuch"]) == 2
    assert "available profiles" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "lmm_r1.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "tiny-model" in out.stdout and "run" in out.stdout


def _executed(tmp_path, *outputs):
    """A notebook with one code cell holding ``outputs`` (nbformat output dicts), as papermill writes them."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells = [cell]
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    return path


def _display(data):
    return {"output_type": "display_data", "data": data, "metadata": {}}


@pytest.mark.parametrize("output, problem", [
    ({"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []}, "error ValueError"),
    ({"output_type": "stream", "name": "stderr", "text": "TqdmWarning: IProgress not found"}, "a warning on stderr"),
    ({"output_type": "stream", "name": "stderr", "text": "SentinelWarning: sentinel x fired\nUserWarning: y"},
     "a warning on stderr"),
    (_display({"text/plain": "(<PIL.Image.Image image mode=RGB size=224x112>, "
                             "<IPython.core.display.Markdown object>)"}), "a raw object repr"),
    (_display({"text/markdown": "| a | b |\n|---|---|\n| x | y | z |\n"}), "row 2 has 3 cells, not 2"),
    # notebook 01 once ended a cell on a tuple with a path in it; a class without __repr__ prints its address
    ({"output_type": "execute_result", "execution_count": 1, "metadata": {},
      "data": {"text/plain": "(32, PosixPath('/tmp/model'))"}}, "a raw object repr"),
    (_display({"text/plain": "<__main__.Thing at 0x7f3a2c1d0e50>"}), "a raw object repr"),
    (_display({"text/html": "<table><tr><th>Step</th><th>Training Loss</th></tr></table>",
               "text/plain": "<IPython.core.display.HTML object>"}), "training-loss table"),
])
def test_output_problems_finds_each_defect(tmp_path, output, problem):
    found = runner.output_problems(_executed(tmp_path, output))
    assert len(found) == 1 and problem in found[0] and found[0].startswith("cell 0:")


def test_output_problems_passes_clean_outputs(tmp_path):
    clean = [{"output_type": "stream", "name": "stdout", "text": "done\n"},
             {"output_type": "stream", "name": "stderr", "text": "fre_text_seed0: 100%|##| 50/50\n"},
             # a fired sentinel is a finding about the run (recorded, shown), not a defect of the notebook
             {"output_type": "stream", "name": "stderr", "text": "lmm_r1/trainer.py:187: SentinelWarning: sentinel "
              "vision_gap fired at step 0 (0.0001698, threshold 0.001): ...\n  value = self.sentinels.record()\n"},
             # an escaped pipe stays in its cell, in a code span too (GFM splits on a bare one even there)
             _display({"text/markdown": "| a \\| b | c |\n|---|---|\n| `x\\|y` | 2 |\n",
                       "text/plain": "<IPython.core.display.Markdown object>"}),
             _display({"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"})]
    assert runner.output_problems(_executed(tmp_path, *clean)) == []


def test_every_parameter_file_of_every_profile_loads():
    """`lmm-r1 run --profile paper` once stopped before any kernel started: 04's paper file gave a string where
    the notebook's default was a bool. Every real notebook's file for every profile must validate."""
    books = runner.notebooks()
    assert [b.name[:2] for b in books] == ["01", "02", "03", "04"]
    assert set(runner.profiles()) >= {"tiny", "tiny_full", "paper"}
    for profile in runner.profiles():
        for nb in books:
            runner.load_params(nb, profile)  # raises RunError naming the file and key
    assert runner.load_params(books[3], "paper")["base_system_prompt"] == "cot"


def test_a_union_annotation_accepts_either_type(project):
    nb = project["notebook_dir"] / "01_first.ipynb"
    book = nbformat.read(nb, as_version=4)
    book.cells[0].source += '\nprompt: "Union[bool, str]" = True'
    nbformat.write(book, nb)
    for value, ok in (("true", True), ("cot", True), ("3", False)):
        (project["params_dir"] / "01_first.tiny.yaml").write_text(f"prompt: {value}\n")
        if ok:
            runner.load_params(nb, "tiny", project["params_dir"])
        else:
            with pytest.raises(runner.RunError, match=r"parameter 'prompt' should be Union\[bool, str\]"):
                runner.load_params(nb, "tiny", project["params_dir"])


def test_a_warning_after_a_finished_notebook_is_reported_not_a_failure(project):
    """A notebook that ran to the end and printed a warning on stderr (a FutureWarning from torch, vLLM or
    DeepSpeed on a GPU node) is not a failed run, and the next notebook still starts; other output defects fail
    the run once every notebook has run."""
    books = project["notebook_dir"]
    _notebook(books / "02_second.ipynb", "import warnings; warnings.warn('old API', FutureWarning)")
    _notebook(books / "03_third.ipynb", "from IPython.display import Markdown; (1, Markdown('x'))", RECORD.replace("name,", "'third',"))
    (project["params_dir"] / "02_second.tiny.yaml").write_text("steps: 1\n")
    (project["params_dir"] / "03_third.tiny.yaml").write_text("steps: 2\n")
    said = []
    with pytest.raises(runner.RunError) as err:
        runner.run_profile("tiny", progress_bar=False, log=said.append, **project)
    assert len(said) == 1 and "02_second.ipynb: 1 warning(s) on stderr" in said[0] and "FutureWarning" in said[0]
    # 03 ran after 02's warning; its raw repr is the one defect, raised after it ran
    assert "03_third.ipynb ran, but its outputs have 1 defect(s)" in str(err.value)
    assert "02_second" not in str(err.value)
    assert (project["results_dir"] / "tiny" / "third" / "metrics.json").is_file()
    # asked to, a warning fails the run
    (books / "03_third.ipynb").unlink()
    with pytest.raises(runner.RunError, match=r"02_second\.ipynb ran, but (?s:.*) a warning on stderr"):
        runner.run_profile("tiny", progress_bar=False, fail_on_warnings=True, **project)
