"""lmm_r1: the LMM-R1 recipe (FRE then MGT rule-based RL, arXiv 2503.07536) around TRL's GRPOTrainer.

Importing the package applies one compatibility shim (see ``compat.py``) so that a Qwen2.5-VL processor
builds and loads on machines without torchvision, as the CPU environment is.
"""

import warnings as _warnings

# In a notebook kernel without ipywidgets, tqdm.auto (imported by transformers and datasets) warns "IProgress not
# found. Please update jupyter and ipywidgets" and falls back to text bars: the advice is wrong for this kit (its
# notebooks need no widgets), so the warning is dropped before those libraries are imported.
_warnings.filterwarnings("ignore", message="IProgress not found")

from lmm_r1 import compat as _compat  # noqa: E402

_compat.apply()

__version__ = "0.1.0"
