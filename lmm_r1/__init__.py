"""lmm_r1: the LMM-R1 recipe (FRE then MGT rule-based RL, arXiv 2503.07536) around TRL's GRPOTrainer.

Importing the package applies one compatibility shim (see ``compat.py``) so that a Qwen2.5-VL processor
builds and loads on machines without torchvision, as the CPU environment is.
"""

from lmm_r1 import compat as _compat

_compat.apply()

__version__ = "0.1.0"
