"""Shared fixtures. Everything runs offline: the hub is never contacted."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--fresh-tiny-model", action="store_true",
                     help="build the default tiny model from scratch (minutes) for the tests that use it, instead "
                          "of the shipped copy: `make test-build` checks the builder on this machine this way")


def pytest_collection_modifyitems(config, items):
    """`gpu` tests skip cleanly without CUDA (they may still be selected explicitly with -m gpu)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def random_tiny_model(tmp_path_factory):
    """A randomly initialised tiny Qwen2.5-VL folder (seconds to build), shared by the session."""
    from lmm_r1.toy.model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0, warm_start=False)


@pytest.fixture(scope="session")
def tiny_model(request, tmp_path_factory):
    """The default, warm-started tiny model: the copy shipped with the kit (the same bytes on every machine).
    With ``--fresh-tiny-model``, a build from scratch on this machine instead; a build takes minutes, so its
    phases are reported on the terminal as they go, past pytest's output capture."""
    from lmm_r1.toy.model import build_tiny_model

    if not request.config.getoption("--fresh-tiny-model"):
        return build_tiny_model(seed=0)
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def log(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"\n[tiny model] {line}", flush=True)

    import torch

    from lmm_r1.toy.model import SHIPPED_DIR, shipped_record, weights_sha256

    built = build_tiny_model(tmp_path_factory.mktemp("fresh") / "model", seed=0, log=log)
    same = weights_sha256(built) == shipped_record().get("weights_sha256")
    log(f"the fresh build's weights {'equal' if same else 'differ from'} the shipped copy's ({SHIPPED_DIR}; built with "
        f"{shipped_record().get('built_on')}; here: {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads)")
    return built
