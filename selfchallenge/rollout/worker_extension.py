"""vLLM worker extension (`worker_extension_cls`): receives packed weight buckets inside each vLLM worker.

vLLM mixes this class into its worker, so methods run in the worker process with `self` being the worker
(`self.model_runner`, `self.vllm_config`, ...). `RolloutEngine` calls them through `collective_rpc`.

Three weight-sync paths (see learner/weight_sync.py), all TESTED on CPU:

* Packed blobs: the engine forwards each safetensors blob to `stage_weight_bucket`.
* Collective: every worker joins the learner's process group once (`join_weight_group`), then
  `receive_weight_buckets` takes the broadcast buckets of a layout (rollout/collective.py).
* Shared memory: `load_weight_file` maps the learner's /dev/shm file (rollout/shm_transfer.py).

Either way the tensors are staged and `apply_staged_weights` reloads them all in one `reload_weights` call:
vLLM's in-place reload works layer by layer, so a fused layer (qkv_proj, gate_up_proj) split across two separately
reloaded buckets would be finalised half-loaded. `weight_checksum` checks the result.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any

# Attribute names carry a prefix: vLLM refuses extensions whose names collide with the worker's own.
_STAGED = "_selfchallenge_staged"
_GROUP = "_selfchallenge_weight_group"


def _checkpoint_tensor_names(model_path: str) -> set[str] | None:
    """Tensor names stored in a local safetensors checkpoint, or None when the folder is not local/safetensors."""
    files = glob.glob(os.path.join(model_path, "*.safetensors")) if os.path.isdir(model_path) else []
    if not files:
        return None
    from safetensors import safe_open

    names: set[str] = set()
    for path in files:
        with safe_open(path, framework="pt") as handle:
            names.update(handle.keys())
    return names


class WeightSyncExtension:
    """Methods vLLM adds to its worker class; callable with `collective_rpc("<name>", args=...)`."""

    def stage_weight_bucket(self, blob: bytes) -> int:
        """Decode one safetensors blob and keep its tensors until `apply_staged_weights`; returns the count."""
        from safetensors.torch import load

        tensors = list(load(bytes(blob)).items())
        return self._selfchallenge_stage(tensors)

    def join_weight_group(self, info: dict[str, Any], timeout_s: float) -> int:
        """Join the learner's weight-sync group as rank `rank_offset` + this worker's rank; returns that rank."""
        import torch

        from selfchallenge.rollout.collective import open_group

        self.leave_weight_group()
        rank = int(info["rank_offset"]) + int(getattr(self, "rank", 0))
        store, group = open_group(info["backend"], info["host"], info["port"], rank, info["world_size"], timeout_s)
        device = torch.device("cuda", torch.cuda.current_device()) if info["backend"] == "nccl" else "cpu"
        setattr(self, _GROUP, (store, group, device))
        return rank

    def leave_weight_group(self) -> None:
        setattr(self, _GROUP, None)

    def receive_weight_buckets(self, layout: list[list[dict]]) -> int:
        """Receive every bucket of `layout` by broadcast and stage its tensors; returns the count.

        After a failure (a deadline, a learner gone) the group is dropped: the learner builds a new one next time.
        """
        from selfchallenge.rollout.collective import receive_buckets

        joined = getattr(self, _GROUP, None)
        if joined is None:
            raise RuntimeError("receive_weight_buckets: this worker has not joined a weight-sync group")
        _, group, device = joined
        try:
            tensors = list(receive_buckets(group, layout, device))
        except BaseException:
            self.leave_weight_group()
            raise
        return self._selfchallenge_stage(tensors)

    def load_weight_file(self, path: str, bucket: list[dict]) -> int:
        """Map the learner's shared-memory weight file and stage views of its tensors; returns the count."""
        from selfchallenge.rollout.shm_transfer import read_weight_file

        tensors = read_weight_file(path, bucket)
        return self._selfchallenge_stage(tensors)

    def _selfchallenge_stage(self, tensors: list) -> int:
        """Keep (name, tensor) pairs until `apply_staged_weights`; returns how many were added."""
        staged: list = getattr(self, _STAGED, None) or []
        staged.extend(tensors)
        setattr(self, _STAGED, staged)
        return len(tensors)

    def discard_staged_weights(self) -> None:
        """Drop staged tensors (after a failed or cancelled update)."""
        setattr(self, _STAGED, [])

    def apply_staged_weights(self, allow_partial: bool = False) -> dict[str, Any]:
        """Reload the model in place from all staged tensors (one `reload_weights` call), then clear them.

        Unless `allow_partial`, the staged names must be exactly the checkpoint's tensor names (an untied
        `lm_head.weight` may be missing/extra when embeddings are tied): a partial or misnamed update would
        otherwise leave layers silently stale.
        """
        staged: list = getattr(self, _STAGED, None) or []
        setattr(self, _STAGED, [])
        if not staged:
            raise ValueError("apply_staged_weights: no weight buckets were staged; send at least one bucket")
        names = [name for name, _ in staged]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})[:5]
            raise ValueError(f"weight update names tensors more than once: {dupes}")
        expected = _checkpoint_tensor_names(self.vllm_config.model_config.model)
        if expected is not None and not allow_partial:
            hf_config = self.vllm_config.model_config.hf_config
            tolerated = {"lm_head.weight"} if getattr(hf_config, "tie_word_embeddings", False) else set()
            unknown = sorted(set(names) - expected - tolerated)
            missing = sorted(expected - set(names) - tolerated)
            if unknown or missing:
                raise ValueError(
                    f"weight update does not match the model's parameters: {len(unknown)} unknown names "
                    f"{unknown[:5]}, {len(missing)} missing names {missing[:5]}; send every parameter under "
                    "its Hugging Face name (model.named_parameters() of the same architecture)"
                )
        num_bytes = sum(t.numel() * t.element_size() for _, t in staged)
        begin = time.perf_counter()
        self.reload_weights(weights_iterator=iter(staged))
        return {"tensors": len(staged), "bytes": num_bytes, "reload_s": round(time.perf_counter() - begin, 4)}

    def weight_checksum(self) -> float:
        """Sum of the model's parameters in float64: a fingerprint to check that an update landed.

        Only comparable with itself: vLLM's CPU kernels repack linear weights, so it is not the checkpoint's sum.
        """
        import torch

        model = self.model_runner.get_model()
        with torch.no_grad():
            return float(sum(p.detach().to(torch.float64).sum().item() for p in model.parameters()))
