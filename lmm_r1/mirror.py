"""Local mirrors of hub models and data sets, for GPU nodes without internet: the hub's own cache, filled from folders.

Compute nodes of many clusters reach no internet. The kit loads everything through ``huggingface_hub`` and
``datasets`` (model ids, the paper's training sets, the benchmarks), and both read the hub cache (``$HF_HOME``,
``$HF_HUB_CACHE``) before the network and stop at it with ``HF_HUB_OFFLINE=1``. So the one mechanism is theirs:

    # a login node with internet, the cache on shared storage
    export HF_HOME=/shared/hf
    hf download Qwen/Qwen2.5-VL-3B-Instruct
    hf download --repo-type dataset VLM-Reasoner/deepscaler   # and the other sets: data_cards/*.md
    # the compute nodes
    export HF_HOME=/shared/hf HF_HUB_OFFLINE=1
    lmm-r1 run --profile paper

``datasets.load_dataset`` does not read a hub-cache snapshot offline (only data sets it prepared online), so for
the benchmarks the kit asks ``snapshot`` for the cached copy of the repository and loads that folder.

Where the files arrive some other way (a copy of a model folder, a data set's files on a scratch disk), ``add``
(``lmm-r1 mirror add REPO_ID FOLDER``) puts a folder into that cache under a hub id, as ``hf download`` would
have, so every hub id the kit uses resolves to it offline, unchanged: the same resolution a GPU run uses (the
kit's rehearsal and tests put the tiny model under Qwen2.5-VL-3B's id this way).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

REPO_TYPES = ("model", "dataset")


def hub_cache(cache_dir: str | Path | None = None) -> Path:
    """The hub cache the kit's loaders read: ``cache_dir``, else ``$HF_HUB_CACHE`` / ``$HF_HOME/hub``."""
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE", constants.HF_HUB_CACHE))


def add(repo_id: str, folder: str | Path, *, repo_type: str = "model", cache_dir: str | Path | None = None,
        revision: str = "main") -> Path:
    """Copy ``folder``'s files into the hub cache as ``repo_id`` at ``revision`` (the layout ``hf download``
    writes: ``<type>s--<org>--<name>/snapshots/<commit>/`` and ``refs/<revision>``); return the snapshot folder.
    The commit name is a digest of the files, so adding the same folder twice changes nothing."""
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"a hub id is 'org/name', got {repo_id!r}")
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise ValueError(f"{folder} is not a folder with files to mirror as {repo_id}")
    digest = hashlib.sha1()
    for f in files:
        digest.update(f.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha1(f.read_bytes()).digest())
    commit = digest.hexdigest()
    repo = hub_cache(cache_dir) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for f in files:
        target = snapshot / f.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot


def snapshot(repo_id: str, *, repo_type: str = "dataset", revision: str = "main",
             cache_dir: str | Path | None = None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` (what ``hf download`` or ``add`` put there), or None: the hub
    client's own lookup, which reads the cache only."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, local_files_only=True,
                                      cache_dir=str(hub_cache(cache_dir))))
    except LocalEntryNotFoundError:
        return None


def offline() -> bool:
    """``HF_HUB_OFFLINE`` is set: every hub id must resolve in the cache."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")
