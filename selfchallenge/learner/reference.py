"""The frozen reference policy pi_ref: the starting weights (`model.path`), never updated.

Loaded when `learner.kl_coef > 0` (the KL penalty, kl.py) and always for DPO (its implicit reward is measured
against pi_ref, dpo.py). A DeepSpeed engine without optimizer: ZeRO-3 partitions it like the policy, otherwise each
rank holds a whole copy. On resume it is loaded from `model.path` again, which is what it was at the start.
"""

from __future__ import annotations

import torch

from selfchallenge.learner.checkpoint import load_causal_lm


def load_reference(model_path: str, dtype: torch.dtype, ds_config: dict, zero_stage: int):
    import deepspeed

    reference = load_causal_lm(model_path, dtype)
    reference.requires_grad_(False)
    config = {k: v for k, v in ds_config.items() if k in ("train_micro_batch_size_per_gpu", "bf16")}
    config["zero_optimization"] = {"stage": 3 if zero_stage == 3 else 0}
    engine, *_ = deepspeed.initialize(model=reference, config=config)
    engine.eval()
    return engine
