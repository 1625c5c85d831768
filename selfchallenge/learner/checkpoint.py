"""Models in and out: loading a Hugging Face folder, full weights out of a (possibly ZeRO-3 sharded) model,
DeepSpeed checkpoints, and Hugging Face export.

Under ZeRO-3 every rank holds a slice of each parameter; reading full weights is a collective: all ranks must
iterate `iter_full_weights` together (rank 0 keeps the tensors, the others just take part in the gathers).
Parameters are gathered one transformer layer at a time, so no rank ever materialises the whole model on the
accelerator.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import torch
from torch import nn

_LAYER_PREFIX = re.compile(r"^(.*?\.layers\.\d+)\.")
CHECKPOINT_MARKER = "latest"  # DeepSpeed writes the newest tag's name into this file


def step_with_grad_norm(engine, zero_stage: int) -> float:
    """engine.step() (reduce, clip, AdamW, schedule); returns the pre-clip gradient norm (nan if unknown).

    ZeRO-0 in fp32 does not report its norm; it is then this rank's own (the global one with a single learner:
    with several, stage 0 averages gradients only inside engine.step())."""
    local = None
    if zero_stage == 0:
        grads = [p.grad.detach().float().norm() for p in engine.module.parameters() if p.grad is not None]
        local = torch.stack(grads).norm().item() if grads else None
    engine.step()
    norm = engine.get_global_grad_norm()
    norm = local if norm is None else norm
    return float(norm) if norm is not None else float("nan")


def load_causal_lm(path: str, dtype: torch.dtype):
    """The Hugging Face causal LM in the folder `path` (a hub id is resolved to one by LearnerActor.setup), whole in
    host memory (deepspeed.initialize then places/partitions it)."""
    from transformers import AutoModelForCausalLM

    if not os.path.isdir(path):
        raise FileNotFoundError(f"model.path={path!r} is not a Hugging Face model folder")
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


def is_sharded(param: nn.Parameter) -> bool:
    """True for a ZeRO-3 partitioned parameter (DeepSpeed tags them with a `ds_id`)."""
    return hasattr(param, "ds_id")


def layer_groups(module: nn.Module) -> Iterator[list[tuple[str, nn.Parameter]]]:
    """Named parameters in model order, grouped by transformer layer (`...layers.<i>.`); others one by one."""
    group: list[tuple[str, nn.Parameter]] = []
    key = None
    for name, param in module.named_parameters():  # tied parameters appear once, as in the HF state dict
        match = _LAYER_PREFIX.match(name)
        this_key = match.group(1) if match else name
        if group and this_key != key:
            yield group
            group = []
        key = this_key
        group.append((name, param))
    if group:
        yield group


def iter_full_weights(
    module: nn.Module, keep: bool = True, device="cpu", copy: bool = True
) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, full tensor copy on `device`) pairs, layer by layer. Collective under ZeRO-3: call it on every rank.

    With keep=False (ranks other than the sender) the gathers happen but nothing is copied or yielded. With
    copy=False the tensors are the parameters themselves (gathered), valid only until the next one is asked for:
    for a consumer that copies each one at once (weight sync), saving a copy of the whole model.
    """
    import deepspeed

    for group in layer_groups(module):
        sharded = [p for _, p in group if is_sharded(p)]
        with deepspeed.zero.GatheredParameters(sharded, modifier_rank=None) if sharded else contextlib.nullcontext():
            if keep and not copy:
                yield from ((n, p.data.detach()) for n, p in group)
                continue
            # a copy: ZeRO-1/2 parameters are views into one flat buffer, ZeRO-3's are freed on leaving the context
            tensors = [(n, p.data.detach().to(device, copy=True)) for n, p in group] if keep else []
        yield from tensors


def full_weight_specs(module: nn.Module) -> list[tuple[str, torch.dtype, tuple[int, ...]]]:
    """(HF name, dtype, full shape) in `iter_full_weights` order, without gathering (ZeRO-3 keeps `ds_shape`)."""
    return [
        (name, param.dtype, tuple(getattr(param, "ds_shape", param.shape)))
        for group in layer_groups(module)
        for name, param in group
    ]


def export_hf(module: nn.Module, out_dir: str, tokenizer_path: str | None, write: bool = True) -> str | None:
    """Write a Hugging Face model folder (config, safetensors shards, generation config, tokenizer).

    Collective under ZeRO-3 (all ranks call it; only the one with write=True writes). The folder loads with
    `AutoModelForCausalLM.from_pretrained` and with vLLM. Returns out_dir on the writer, else None.
    """
    from huggingface_hub import save_torch_state_dict

    state = dict(iter_full_weights(module, keep=write))
    if not write:
        return None
    os.makedirs(out_dir, exist_ok=True)
    save_torch_state_dict(state, out_dir, max_shard_size="5GB")
    module.config.save_pretrained(out_dir)
    if getattr(module, "generation_config", None) is not None:
        module.generation_config.save_pretrained(out_dir)
    if tokenizer_path:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(out_dir)
    return out_dir


def has_tokenizer(path: str) -> bool:
    names = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, n)) for n in names)


def save_checkpoint(engine, path: str, client_state: dict) -> str:
    """DeepSpeed checkpoint (weights, optimizer, LR schedule) + our client state; collective on every rank."""
    os.makedirs(path, exist_ok=True)
    engine.save_checkpoint(path, client_state=client_state)
    return path


def load_checkpoint(engine, path: str) -> dict:
    """Restore what `save_checkpoint` wrote, exactly; returns the client state. Collective on every rank."""
    if not os.path.exists(os.path.join(path, CHECKPOINT_MARKER)):
        raise FileNotFoundError(
            f"no learner checkpoint in {path!r} (missing {CHECKPOINT_MARKER!r}); give the folder that "
            "save_checkpoint wrote"
        )
    loaded_path, client_state = engine.load_checkpoint(path, load_optimizer_states=True, load_lr_scheduler_states=True)
    if loaded_path is None:
        raise RuntimeError(f"DeepSpeed could not load the checkpoint in {path!r}")
    return client_state or {}
