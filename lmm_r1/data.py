"""The paper's data: the OpenRLHF "message" JSONL loader, the hub registry, system prompts, prompt-length filter.

LMM-R1 trains on JSONL files where each line is ``{"message": "<JSON list of chat messages>", "answer": "$3$",
...}`` (PAPER.md §6). ``load_message_jsonl`` turns such a file into the row schema TRL's GRPOTrainer takes for
vision-language models, the same schema the offline tasks (``lmm_r1.toy.tasks``) generate:

    prompt   [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}]
    images   [PIL images, decoded lazily by ``datasets``]   (absent for text-only files)
    answer   "$3$"
    ...      every other column of the file (e.g. Sokoban's ``env_path``)

On a GPU server with hub access:

    from lmm_r1.data import load_paper_dataset
    ds = load_paper_dataset("vermulti", system_prompt="r1")     # downloads, unpacks images, loads
    ds, dropped = filter_by_prompt_length(ds, processor, 4096)  # image tokens counted, never truncated

Offline (this CPU machine, CI), ``load_paper_dataset`` raises ``DatasetUnavailable`` naming the data set and the
generated task that stands in for it (``lmm_r1.toy.tasks``); a local copy loads with ``load_message_jsonl(path,
image_root=...)``. Cards: ``data_cards/deepscaler.md``, ``vermulti.md``, ``vermulti_geo.md``, ``sokoban_paper.md``.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmm_r1 import prompts

ON_ERROR = ("raise", "skip")


class DataFormatError(ValueError):
    """A malformed record: the message starts with ``file:line`` and names the field.

    ``kind`` groups the skip summary: "json", "message", "answer", "image", "content" or "column".
    """

    def __init__(self, message: str, kind: str = "record"):
        super().__init__(message)
        self.kind = kind


class DatasetUnavailable(RuntimeError):
    """A paper data set cannot be fetched (offline, or the hub refused); the message names the alternative."""


# ---- the registry of the paper's data sets (PAPER.md §6) ----

@dataclass(frozen=True)
class PaperDataset:
    """One of the paper's training sets on the Hugging Face hub."""

    name: str  # as the paper names it
    stage: str  # which training stage uses it
    repo_id: str  # hub data-set repository
    message_file: str  # the OpenRLHF message JSONL in that repository
    image_archive: str | None  # tarball of the images the JSONL points to (None: text only)
    rows: int  # rows in the released file, as published (the paper's name may round it)
    offline_task: str  # the generated task in lmm_r1.toy.tasks that stands in for it offline
    card: str  # data card under data_cards/


PAPER_DATASETS = {
    "deepscaler": PaperDataset("DeepScaleR-40K", "FRE-Text", "VLM-Reasoner/deepscaler", "deepscaler_message.jsonl",
                               None, 40_315, "arith", "data_cards/deepscaler.md"),
    "vermulti": PaperDataset("VerMulti-65K", "FRE-Multi, MGT-PerceReason", "VLM-Reasoner/VerMulti",
                             "mathv60k_message.jsonl", "mathv60k_img.tar.gz", 65_118, "percept",
                             "data_cards/vermulti.md"),
    "vermulti_geo": PaperDataset("VerMulti-Geo", "MGT-Geo, Direct-RL-Geo", "VLM-Reasoner/VerMulti",
                                 "mathv_geo_message.jsonl", "mathv_geo_img.tar.gz", 16_810, "geometry",
                                 "data_cards/vermulti_geo.md"),
}


def paper_dataset(name: str) -> PaperDataset:
    try:
        return PAPER_DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown paper data set {name!r}; choose one of {sorted(PAPER_DATASETS)} "
                         "(Sokoban levels are generated: lmm_r1.toy.tasks.sokoban)") from None


def fetch_paper_dataset(name: str, cache_dir: str | Path | None = None,
                        revision: str | None = None) -> tuple[Path, Path | None]:
    """Download the message JSONL (and unpack the image tarball) of a paper data set; return (jsonl, image_root).

    Files come from the hub through ``huggingface_hub`` (its cache, so a second call is offline-safe); the
    tarball is unpacked once next to it, into ``<archive stem>/``, and that folder is the ``image_root`` to
    re-root the JSONL's image paths with.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    spec = paper_dataset(name)

    def download(filename: str) -> Path:
        try:
            return Path(hf_hub_download(spec.repo_id, filename, repo_type="dataset", revision=revision,
                                        cache_dir=cache_dir))
        except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as e:
            raise DatasetUnavailable(
                f"cannot fetch {spec.name} ({spec.repo_id}, {filename}) from the Hugging Face hub: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Offline, train on the generated "
                f"task {spec.offline_task!r} instead (lmm_r1.toy.tasks.TASKS[{spec.offline_task!r}].make_dataset), "
                f"or load a local copy with lmm_r1.data.load_message_jsonl(path, image_root=...). "
                f"See {spec.card}."
            ) from e

    jsonl = download(spec.message_file)
    if spec.image_archive is None:
        return jsonl, None
    return jsonl, unpack_images(download(spec.image_archive))


def unpack_images(archive: str | Path) -> Path:
    """Unpack an image tarball once, into ``<archive stem>_unpacked/`` beside it, and return that folder.

    Every rank of a launch gets here at once: one unpacks (VerMulti's 2.44 GB takes minutes) while the others
    wait on a file lock, then find it complete. Without the lock a fast rank validated images a slower rank was
    still rewriting. A folder without its ``.complete`` mark (a killed unpack) is unpacked again.
    """
    from filelock import FileLock

    archive = Path(archive)
    root = archive.parent / (archive.name.removesuffix(".tar.gz") + "_unpacked")
    done = root / ".complete"
    if done.exists():
        return root
    with FileLock(str(root) + ".lock"):
        if not done.exists():
            root.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")  # "data" refuses absolute paths and links out of root
            done.touch()
    return root


def load_paper_dataset(name: str, system_prompt: str | None = "r1", image_root: str | Path | None = None,
                       on_error: str = "raise", cache_dir: str | Path | None = None, revision: str | None = None):
    """Fetch (see ``fetch_paper_dataset``) and load a paper data set, with the paper's system prompt by default."""
    jsonl, unpacked = fetch_paper_dataset(name, cache_dir=cache_dir, revision=revision)
    return load_message_jsonl(jsonl, image_root=image_root or unpacked, on_error=on_error,
                              system_prompt=system_prompt)


# ---- the OpenRLHF message JSONL loader ----

def _resolve_image(ref: str, jsonl_dir: Path, image_root: Path | None) -> Path | None:
    """Where an image item's path points, or None if no candidate exists.

    ``file://`` is stripped. A relative path is taken under ``image_root`` (default: the JSONL's folder). An
    absolute path is used as is without ``image_root``; with it, the longest trailing part of the path that exists
    under ``image_root`` wins (the released files hold absolute paths of the authors' cluster, e.g.
    ``/mnt/.../mathv60k/images/x.png``, whose tail is what the unpacked tarball holds).
    """
    path = Path(ref.removeprefix("file://"))
    if not path.is_absolute():
        candidate = (image_root or jsonl_dir) / path
        return candidate if candidate.is_file() else None
    if image_root is None:
        return path if path.is_file() else None
    parts = path.parts[1:]
    for i in range(len(parts)):
        candidate = image_root.joinpath(*parts[i:])
        if candidate.is_file():
            return candidate
    return None


def _level_from(env_path: Any, where: str, jsonl_dir: Path, image_root: Path | None) -> str:
    """A Sokoban row's ``env_path`` (.npy, re-rooted like image paths) -> its XSB ``level``."""
    from lmm_r1.sokoban_levels import LevelError, load_npy_level

    if not isinstance(env_path, str) or not env_path.strip():
        raise DataFormatError(f"{where}: field 'env_path' must be the path of a .npy level, got {env_path!r:.80}",
                              "env_path")
    path = _resolve_image(env_path, jsonl_dir, image_root)
    if path is None:
        raise DataFormatError(f"{where}: field 'env_path': level file not found: {env_path}", "env_path")
    try:
        return load_npy_level(path)
    except LevelError as e:
        raise DataFormatError(f"{where}: field 'env_path': {e}", "env_path") from None


def _is_image(path: Path) -> str | None:
    """None if PIL can identify the file as an image (header only), else the reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018  (header parsed; pixels decoded later, lazily)
        return None
    except (UnidentifiedImageError, OSError) as e:
        return f"{type(e).__name__}: {e}"


def _parse_record(line: str, where: str, jsonl_dir: Path, image_root: Path | None,
                  system_text: str | None, replace_system: bool) -> dict:
    """One JSONL line -> one row; every problem raises ``DataFormatError`` naming ``where`` and the field."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{where}: not valid JSON ({e.msg} at column {e.colno})", "json") from None
    if not isinstance(record, dict):
        raise DataFormatError(f"{where}: a record must be a JSON object, got {type(record).__name__}", "json")
    if "message" not in record:
        raise DataFormatError(f"{where}: field 'message' is missing", "message")
    messages = record.pop("message")
    if isinstance(messages, str):  # the released files store the list as a JSON string
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{where}: field 'message' is a string but not JSON ({e.msg})",
                                  "message") from None
    if not isinstance(messages, list) or not messages:
        raise DataFormatError(f"{where}: field 'message' must be a non-empty JSON list of chat messages, "
                              f"got {type(messages).__name__}", "message")
    if "answer" not in record or record["answer"] is None:
        raise DataFormatError(f"{where}: field 'answer' is missing", "answer")
    answer = record.pop("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    sokoban = "env_path" in record  # the authors' Sokoban rows: answer "", the level in a .npy file
    if not isinstance(answer, str) or not (answer.strip() or sokoban):
        raise DataFormatError(f"{where}: field 'answer' must be a non-empty string, got {answer!r:.80}",
                              "answer")
    if sokoban and record.get("level") is None:
        record["level"] = _level_from(record["env_path"], where, jsonl_dir, image_root)

    prompt, images = [], []
    for m, msg in enumerate(messages):
        field = f"message[{m}]"
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant"):
            raise DataFormatError(f"{where}: field '{field}' must be an object with role system/user/assistant",
                                  "message")
        content = msg.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list):
            raise DataFormatError(f"{where}: field '{field}.content' must be a string or a list of items",
                                  "message")
        parts = []
        for k, item in enumerate(content):
            ifield = f"{field}.content[{k}]"
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text" and isinstance(item.get("text"), str):
                parts.append({"type": "text", "text": item["text"]})
            elif kind == "image":
                ref = item.get("image")
                if not isinstance(ref, str) or not ref.strip():
                    raise DataFormatError(f"{where}: field '{ifield}' is an image item without a path", "image")
                path = _resolve_image(ref, jsonl_dir, image_root)
                if path is None:
                    hint = f" (looked under image_root {image_root})" if image_root else ""
                    raise DataFormatError(f"{where}: field '{ifield}': image file not found: {ref}{hint}", "image")
                reason = _is_image(path)
                if reason:
                    raise DataFormatError(f"{where}: field '{ifield}': {path} is not an image ({reason})", "image")
                parts.append({"type": "image"})
                images.append(str(path))
            else:
                raise DataFormatError(f"{where}: field '{ifield}' must be a text item with 'text' or an image "
                                      f"item, got {item!r:.80}", "content")
        prompt.append({"role": msg["role"], "content": parts})
    if replace_system:
        prompt = [m for m in prompt if m["role"] != "system"]
        if system_text is not None:
            prompt.insert(0, {"role": "system", "content": [{"type": "text", "text": system_text}]})
    clash = sorted(set(record) & {"prompt", "images"})
    if clash:
        raise DataFormatError(f"{where}: field '{clash[0]}' would overwrite the loader's own column", "column")
    row = {"prompt": prompt, "images": images, "answer": answer}
    row.update(record)  # the file's other columns, unchanged
    return row


def is_jsonl_path(dataset: str) -> bool:
    """``StageConfig.dataset`` names a message-JSONL file rather than a paper data set."""
    return dataset.endswith(".jsonl")


def load_message_jsonl(path: str | Path, image_root: str | Path | None = None, on_error: str = "raise",
                       system_prompt: str | None = None):
    """Load an OpenRLHF "message" JSONL file as a ``datasets.Dataset`` in TRL's VLM format.

    ``image_root`` re-roots image paths (see ``_resolve_image``); ``file://`` prefixes are accepted.
    ``system_prompt`` None keeps the records' own messages; a name from ``lmm_r1.prompts`` ("r1", "sokoban",
    "none") replaces any system message with that prompt ("none" removes it: the baseline's setting).

    Every malformed record raises ``DataFormatError("file:line: field '...': ...")`` with
    ``on_error="raise"``; with ``on_error="skip"`` it is skipped and counted instead. The skip summary is printed
    and recorded in the data set: ``load_report(ds)`` returns it (stored as JSON in ``ds.info.description``, so
    it survives ``save_to_disk``). Images are checked to exist and be images while loading (headers only) and
    decoded lazily when a row is read. Text-only files have no ``images`` column.
    """
    import datasets

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such JSONL file: {path}")
    root = Path(image_root) if image_root is not None else None
    if root is not None and not root.is_dir():
        raise FileNotFoundError(f"image_root is not a folder: {root}")
    replace_system = system_prompt is not None
    system_text = prompts.system_prompt(system_prompt) if replace_system else None

    rows, skipped = [], []
    column_types: dict[str, type] = {}  # extra column -> the JSON type its first value had
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue  # blank lines (e.g. a trailing newline) are not records
            where = f"{path}:{lineno}"
            try:
                row = _parse_record(line, where, path.parent, root, system_text, replace_system)
                _check_column_types(row, column_types, where)
                rows.append(row)
            except DataFormatError as e:
                if on_error == "raise":
                    raise
                skipped.append(e)
    report = {"file": str(path), "rows": len(rows), "skipped": len(skipped),
              "skipped_by_kind": dict(Counter(e.kind for e in skipped)),
              "skipped_examples": [str(e) for e in skipped[:20]]}
    if skipped:
        print(f"load_message_jsonl: skipped {len(skipped)} of {len(rows) + len(skipped)} records in {path} "
              f"{report['skipped_by_kind']}; first: {skipped[0]}")
    if not rows:
        raise DataFormatError(f"{path}: no valid records" + (f" ({len(skipped)} skipped)" if skipped else ""))
    has_images = any(r["images"] for r in rows)
    # every row gets every column (None where a record lacks it): from_list reads the first row's keys only
    columns = list(dict.fromkeys(k for r in rows for k in r))
    rows = [{k: r.get(k) for k in columns} for r in rows]
    if not has_images:
        for r in rows:
            del r["images"]
    try:
        ds = datasets.Dataset.from_list(rows)
    except (ValueError, TypeError) as e:  # pyarrow's ArrowInvalid/ArrowTypeError are ValueError/TypeError
        raise DataFormatError(f"{path}: the extra columns do not fit one Arrow schema: {e}", "column") from None
    if has_images:  # paths -> Image feature: decoded lazily, on access
        ds = ds.cast_column("images", datasets.List(datasets.Image()))
    ds.info.description = json.dumps({"lmm_r1_load_report": report})
    return ds


def _check_column_types(row: dict, types: dict[str, type], where: str) -> None:
    """An extra column keeps one JSON type down the file (Arrow stores one); ints may widen to floats."""
    for key, value in row.items():
        if key in ("prompt", "images", "answer") or value is None:
            continue
        have = types.setdefault(key, type(value))
        if have is not type(value) and {have, type(value)} != {int, float}:
            raise DataFormatError(f"{where}: field '{key}' is {type(value).__name__}, but earlier records hold "
                                  f"{have.__name__}", "column")


def load_report(dataset) -> dict[str, Any] | None:
    """The skip summary ``load_message_jsonl`` recorded in ``dataset.info.description`` (None if absent)."""
    try:
        return json.loads(dataset.info.description or "")["lmm_r1_load_report"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


# ---- prompts ----

def set_system_prompt(dataset, name: str):
    """Replace every row's system message with the prompt called ``name`` ("none" removes it: the baseline)."""
    text = prompts.system_prompt(name)

    def swap(prompt):
        rest = [m for m in prompt if m["role"] != "system"]
        if text is None:
            return rest
        return [{"role": "system", "content": [{"type": "text", "text": text}]}] + rest

    return dataset.map(lambda row: {"prompt": swap(row["prompt"])}, desc=f"system prompt {name}")


# ---- prompt-length control ----

def image_token_count(processor, width: int, height: int) -> int:
    """Tokens one image of this size takes in Qwen2.5-VL: the processor's resize, 14 px patches, 2x2 merge."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize  # no torchvision

    ip = processor.image_processor
    merge = ip.merge_size
    factor = ip.patch_size * merge
    size = ip.size or {}
    min_pixels = size.get("shortest_edge", getattr(ip, "min_pixels", None))
    max_pixels = size.get("longest_edge", getattr(ip, "max_pixels", None))
    h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return (h // ip.patch_size) * (w // ip.patch_size) // (merge * merge)


def prompt_lengths(dataset, processor) -> list[int]:
    """Prompt length in tokens per row, chat template and image tokens included (as the trainer sees it)."""
    import datasets
    from PIL import Image

    from lmm_r1.generation import prompt_text

    tokenizer = getattr(processor, "tokenizer", processor)
    has_images = "images" in dataset.column_names
    if has_images:  # sizes from the image headers, without decoding pixels
        dataset = dataset.cast_column("images", datasets.List(datasets.Image(decode=False)))
    lengths = []
    for i, row in enumerate(dataset):
        images = row["images"] if has_images else []
        n_text = len(tokenizer(prompt_text(processor, row["prompt"], [None] * len(images)),
                               add_special_tokens=False)["input_ids"])
        n_image = 0
        for img in images:
            src = img["path"] if img.get("bytes") is None else io.BytesIO(img["bytes"])
            with Image.open(src) as im:
                # each image is one <|image_pad|> in the text; the processor expands it to its token count
                n_image += image_token_count(processor, *im.size) - 1
        lengths.append(n_text + n_image)
    return lengths


def filter_by_prompt_length(dataset, processor, max_prompt_length: int):
    """Drop rows whose prompt (image tokens included) is longer than ``max_prompt_length``; never truncate.

    Returns ``(dataset, n_dropped)``. Truncating a multimodal prompt would cut image tokens and break the
    image/feature alignment, so long prompts are removed before training, and the count is reported.
    """
    if not isinstance(max_prompt_length, int) or max_prompt_length < 1:
        raise ValueError(f"max_prompt_length must be a positive int, got {max_prompt_length!r}")
    lengths = prompt_lengths(dataset, processor)
    keep = [i for i, n in enumerate(lengths) if n <= max_prompt_length]
    return dataset.select(keep), len(lengths) - len(keep)
