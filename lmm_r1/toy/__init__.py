"""The toy world: the embedded tiny Qwen2.5-VL and everything it is made of, one subsystem.

- ``model``: the tiny model's tokenizer, processor and config, and its cached build (``lmm-r1 tiny-model``);
- ``warmstart``: the supervised warm start that makes it what the paper's base model is to LMM-R1;
- ``tasks``: the offline tasks it is warm-started on, trained on by the tiny profiles and evaluated on.

Nothing outside the kit's toy profiles and tests depends on it; the paper presets use the hub model and data.
Card: ``data_cards/tiny_model.md``.
"""
