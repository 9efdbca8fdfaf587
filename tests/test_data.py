"""The message-JSONL loader, its error reporting, the hub registry offline, system prompts, prompt-length filter.

Every file here is written by the test: JSONL lines in the paper's format and real PNG images.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from lmm_r1 import data, prompts


def _png(path, color=(255, 0, 0), size=(56, 28)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _line(messages, answer="$3$", as_string=True, **extra) -> str:
    """One record as the released files write it: ``message`` is a JSON *string* holding the list."""
    record = {"message": json.dumps(messages) if as_string else messages, **extra}
    if answer is not None:
        record["answer"] = answer
    return json.dumps(record)


def _user(*items):
    return [{"role": "user", "content": list(items)}]


def _text(t):
    return {"type": "text", "text": t}


def _img(ref):
    return {"type": "image", "image": ref}


@pytest.fixture
def images(tmp_path):
    """Two real PNGs under an unpacked-tarball layout: <root>/mathv60k/images/{a,b}.png."""
    root = tmp_path / "unpacked"
    return root, _png(root / "mathv60k" / "images" / "a.png", (255, 0, 0)), \
        _png(root / "mathv60k" / "images" / "b.png", (0, 0, 255), size=(28, 84))


def test_loads_paper_records_with_rerooted_images(tmp_path, images):
    root, a, b = images
    jsonl = tmp_path / "mathv.jsonl"
    jsonl.write_text("\n".join([
        # absolute path of the authors' cluster, re-rooted by image_root (its tail exists under root)
        _line(_user(_img("/mnt/cluster/data/mathv60k/images/a.png"), _text("How many?")), "$3$", source="geoqa"),
        # file:// prefix, two images, content order kept
        _line(_user(_img(f"file://{a}"), _text("Compare"), _img(str(b))), "$\\boxed{A}$", source="tqa"),
        # a string content (text only) and a system message of the record's own
        _line([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+2?"}], "$3$",
              source="x"),
    ]) + "\n\n")  # trailing blank lines are not records
    ds = data.load_message_jsonl(jsonl, image_root=root)

    assert ds.column_names == ["prompt", "images", "answer", "source"]
    assert len(ds) == 3 and ds["answer"] == ["$3$", "$\\boxed{A}$", "$3$"] and ds["source"] == ["geoqa", "tqa", "x"]
    first, second, third = ds
    assert first["prompt"] == [{"role": "user", "content": [{"type": "image", "text": None},
                                                           {"type": "text", "text": "How many?"}]}]
    assert [im.size for im in first["images"]] == [(56, 28)] and first["images"][0].getpixel((0, 0)) == (255, 0, 0)
    assert [p["type"] for p in second["prompt"][0]["content"]] == ["image", "text", "image"]
    assert [im.getpixel((0, 0)) for im in second["images"]] == [(255, 0, 0), (0, 0, 255)]
    assert third["images"] == [] and third["prompt"][0]["content"][0]["text"] == "Be brief."
    assert data.load_report(ds)["skipped"] == 0


def test_relative_paths_resolve_against_the_jsonl_folder(tmp_path):
    import numpy as np

    _png(tmp_path / "imgs" / "c.png")
    (tmp_path / "levels").mkdir()
    np.save(tmp_path / "levels" / "1.npy", np.array([[0, 0, 0, 0], [0, 5, 4, 2], [0, 0, 0, 0]]))
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(_line(_user(_img("imgs/c.png"), _text("q")), env_path="levels/1.npy") + "\n")
    ds = data.load_message_jsonl(jsonl)
    assert ds[0]["images"][0].size == (56, 28) and ds[0]["env_path"] == "levels/1.npy"
    assert ds[0]["level"] == "####\n#@$.\n####"  # the .npy read as gym-sokoban codes (lmm_r1.sokoban_levels)


def test_text_only_files_have_no_images_column(tmp_path):
    jsonl = tmp_path / "deepscaler.jsonl"
    jsonl.write_text(_line(_user(_text("What is 1+2?"))) + "\n" + _line(_user(_text("2+2?")), "$4$") + "\n")
    ds = data.load_message_jsonl(jsonl)
    assert ds.column_names == ["prompt", "answer"] and ds["answer"] == ["$3$", "$4$"]


@pytest.mark.parametrize("system_prompt,expected", [
    (None, None),  # records kept as they are (this one has no system message)
    ("r1", prompts.R1_SYSTEM_PROMPT),  # the paper's training and evaluation prompt, verbatim
    ("none", None),  # the baseline: no system message
])
def test_system_prompt_is_selectable(tmp_path, system_prompt, expected):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(_line(_user(_text("1+2?"))) + "\n")
    prompt = data.load_message_jsonl(jsonl, system_prompt=system_prompt)[0]["prompt"]
    system = [m["content"][0]["text"] for m in prompt if m["role"] == "system"]
    assert system == ([expected] if expected else [])
    # and swapping it afterwards gives the same rows
    swapped = data.set_system_prompt(data.load_message_jsonl(jsonl), system_prompt or "none")
    assert swapped[0]["prompt"] == prompt


# ---- bad input: every case names file:line and the field ----

def _bad_cases(tmp_path):
    good = _png(tmp_path / "ok.png")
    (tmp_path / "not_image.png").write_text("this is text, not a PNG")
    return [
        # a line that is not JSON at all
        ("{not json", "json", "not valid JSON"),
        # message is a JSON string, but of an object rather than a list
        (json.dumps({"message": json.dumps({"role": "user"}), "answer": "$1$"}), "message",
         "field 'message' must be a non-empty JSON list"),
        # message is a string that is not JSON
        (json.dumps({"message": "[{oops", "answer": "$1$"}), "message", "field 'message' is a string but not JSON"),
        # the gold answer is missing
        (_line(_user(_text("q")), answer=None), "answer", "field 'answer' is missing"),
        # an image file that does not exist
        (_line(_user(_img(str(tmp_path / "missing.png")), _text("q"))), "image",
         r"field 'message\[0\]\.content\[0\]': image file not found"),
        # a file that exists but is not an image
        (_line(_user(_text("q"), _img(str(tmp_path / "not_image.png")))), "image",
         r"field 'message\[0\]\.content\[1\]'.*is not an image"),
        # an image item without a path
        (_line(_user({"type": "image"}, _text("q"))), "image",
         r"field 'message\[0\]\.content\[0\]' is an image item without a path"),
        # a column that would overwrite the loader's own prompt column
        (_line(_user(_text("q")), prompt="mine"), "column", "field 'prompt' would overwrite"),
        # sanity: a good record between bad ones (never reported)
        (_line(_user(_img(str(good)), _text("q"))), None, None),
    ]


def test_each_malformed_record_raises_with_file_line_and_field(tmp_path):
    for i, (line, kind, match) in enumerate(_bad_cases(tmp_path)):
        if kind is None:
            continue
        jsonl = tmp_path / f"bad{i}.jsonl"
        # the bad record on line 2, after a good one: the error must name line 2
        jsonl.write_text(_line(_user(_text("fine"))) + "\n" + line + "\n")
        with pytest.raises(data.DataFormatError, match=match) as err:
            data.load_message_jsonl(jsonl)
        assert str(err.value).startswith(f"{jsonl}:2: ") and err.value.kind == kind


def test_skip_mode_counts_prints_and_records_every_skip(tmp_path, capsys):
    cases = _bad_cases(tmp_path)
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text("\n".join(line for line, _, _ in cases) + "\n")
    ds = data.load_message_jsonl(jsonl, on_error="skip")
    assert len(ds) == 1  # only the good record
    report = data.load_report(ds)
    # 1 json, 2 message, 1 answer, 3 image, 1 column (hand-counted from the table above)
    assert report["skipped"] == 8 and report["rows"] == 1
    assert report["skipped_by_kind"] == {"json": 1, "message": 2, "answer": 1, "image": 3, "column": 1}
    assert report["skipped_examples"][0].startswith(f"{jsonl}:1: ")
    assert "skipped 8 of 9 records" in capsys.readouterr().out


def test_an_extra_column_that_changes_type_is_named(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(_line(_user(_text("q")), source="geoqa") + "\n" + _line(_user(_text("q")), source=[1]) + "\n"
                     + _line(_user(_text("q")), level=3) + "\n")
    with pytest.raises(data.DataFormatError, match=rf"{jsonl}:2: field 'source' is list, but earlier records hold str"):
        data.load_message_jsonl(jsonl)
    # skipping it keeps the others; a column only some records have is None elsewhere
    ds = data.load_message_jsonl(jsonl, on_error="skip")
    assert ds["source"] == ["geoqa", None] and ds["level"] == [None, 3]


def test_a_file_with_no_valid_record_is_an_error(tmp_path):
    jsonl = tmp_path / "all_bad.jsonl"
    jsonl.write_text("{nope\n")
    with pytest.raises(data.DataFormatError, match="no valid records"):
        data.load_message_jsonl(jsonl, on_error="skip")


@pytest.mark.parametrize("kwargs,error", [
    (dict(on_error="ignore"), ValueError),  # not a mode
    (dict(image_root="/no/such/folder"), FileNotFoundError),  # a root that is not there
])
def test_bad_options_are_named(tmp_path, kwargs, error):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(_line(_user(_text("q"))) + "\n")
    with pytest.raises(error):
        data.load_message_jsonl(jsonl, **kwargs)


# ---- the registry, offline (conftest sets HF_HUB_OFFLINE=1) ----

@pytest.mark.parametrize("name,title,alternative", [
    ("deepscaler", "DeepScaleR-40K", "arith"),
    ("vermulti", "VerMulti-65K", "percept"),
    ("vermulti_geo", "VerMulti-Geo", "geometry"),
])
def test_registry_offline_error_names_the_set_and_the_alternative(tmp_path, monkeypatch, name, title, alternative):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailable, match=rf"{title}.*'{alternative}'"):
        data.load_paper_dataset(name, cache_dir=tmp_path)


def test_registry_matches_the_paper():
    # PAPER.md §6: hub ids, files, sizes (Geo is "15K" in the paper's text but 16,810 rows)
    spec = data.paper_dataset("vermulti_geo")
    assert (spec.repo_id, spec.message_file, spec.image_archive, spec.rows) == (
        "VLM-Reasoner/VerMulti", "mathv_geo_message.jsonl", "mathv_geo_img.tar.gz", 16_810)
    assert data.paper_dataset("vermulti").rows == 65_118
    assert data.paper_dataset("deepscaler").image_archive is None
    with pytest.raises(ValueError, match="unknown paper data set"):
        data.paper_dataset("sokoban")


# ---- prompt-length control ----

def test_prompt_length_counts_image_tokens_exactly(random_tiny_model, tmp_path):
    from lmm_r1.generation import prompt_text
    from lmm_r1.models import load_processor

    processor = load_processor(random_tiny_model)
    # a small image (56 x 56 px = min_pixels: 2 x 2 merged patches), a large one, a text-only prompt
    _png(tmp_path / "small.png", size=(56, 56))
    _png(tmp_path / "large.png", size=(400, 300))  # resized to 112 x 84 px: 4 x 3 merged patches
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join([
        _line(_user(_img("small.png"), _text("q"))),
        _line(_user(_img("large.png"), _text("q"))),
        _line(_user(_text("q"))),
    ]) + "\n")
    ds = data.load_message_jsonl(jsonl)
    lengths = data.prompt_lengths(ds, processor)
    # the exact count is what the processor produces for the prompt and its images
    for row, n in zip(ds, lengths):
        text = prompt_text(processor, row["prompt"], row["images"])
        kwargs = {"images": row["images"]} if row["images"] else {}
        assert n == len(processor(text=[text], **kwargs)["input_ids"][0])
    text_len = lengths[2]
    assert (lengths[0] - text_len, lengths[1] - text_len) == (4 + 2, 12 + 2)  # + vision start/end markers

    kept, dropped = data.filter_by_prompt_length(ds, processor, text_len + 6)
    assert dropped == 1 and kept["answer"] == ["$3$", "$3$"] and len(kept[0]["images"]) == 1
    with pytest.raises(ValueError, match="max_prompt_length"):
        data.filter_by_prompt_length(ds, processor, 0)


def _unpack_at_once(archive, start, said, returned):
    # one of the ranks below: waits for the other, then unpacks the same tarball, noting each extraction
    import tarfile

    extract = tarfile.TarFile.extractall

    def noted(self, *args, **kwargs):
        said.append("extract")
        return extract(self, *args, **kwargs)

    tarfile.TarFile.extractall = noted
    start.wait(timeout=60)
    returned.append(str(data.unpack_images(archive)))


def test_ranks_unpacking_the_image_tarball_at_once_unpack_it_once(tmp_path):
    """Every rank of a launch fetches VerMulti at the same moment: one unpacks, the others wait for the complete
    folder (without the lock each rewrote the images another was already validating)."""
    import multiprocessing
    import tarfile

    src = tmp_path / "src"
    for i in range(20):
        _png(src / "mathv60k" / "images" / f"{i}.png", (i * 10, 0, 0))
    archive = tmp_path / "hub" / "mathv_img.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "mathv60k", arcname="mathv60k")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start, said, returned = manager.Barrier(2), manager.list(), manager.list()
        procs = [ctx.Process(target=_unpack_at_once, args=(archive, start, said, returned)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0]
        assert list(said) == ["extract"], list(said)
        root = tmp_path / "hub" / "mathv_img_unpacked"
        assert list(returned) == [str(root)] * 2
    assert (root / ".complete").exists() and len(list((root / "mathv60k" / "images").glob("*.png"))) == 20
    # an unpack killed before its mark is done again
    (root / ".complete").unlink()
    (root / "mathv60k" / "images" / "0.png").unlink()
    assert data.unpack_images(archive) == root and (root / "mathv60k" / "images" / "0.png").is_file()
