"""Where a model's files are. `model.path` is a local Hugging Face folder or a hub id (`org/name`); each component
(engine, learner) resolves a hub id on its own node through the Hugging Face cache (`HF_HOME` / `HF_HUB_CACHE`),
downloading it there unless `HF_HUB_OFFLINE=1`, so a cluster needs no shared model folder."""

from __future__ import annotations

import os

# Weights a Hugging Face model folder does not need (Meta's original checkpoints, other frameworks' copies).
_NOT_NEEDED = ["original/*", "*.pth", "*.msgpack", "*.h5", "*.onnx"]


def weights_bytes(folder: str) -> int:
    """Bytes of the weight files (safetensors, bin) in a local model folder; 0 when it is not one."""
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sum(os.path.getsize(os.path.join(folder, n)) for n in names if n.endswith((".safetensors", ".bin")))


def looks_like_hub_id(path: str) -> bool:
    return path.count("/") == 1 and not path.startswith(("/", ".", "~")) and not os.path.exists(path)


def cached_model(repo_id: str) -> str | None:
    """The local folder of `repo_id` if the Hugging Face cache holds it, else None (never downloads)."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id=repo_id, local_files_only=True, ignore_patterns=_NOT_NEEDED)
    except Exception:  # noqa: BLE001 - any miss (not cached, bad id) means "not here"
        return None


def resolve_model(path: str) -> str:
    """A local Hugging Face model folder for `path` (a folder, or a hub id fetched into the cache)."""
    if os.path.isdir(path):
        return path
    if not looks_like_hub_id(path):
        raise FileNotFoundError(
            f"model.path={path!r} is neither a Hugging Face model folder nor a hub id (org/name); set model.path to "
            "one (or model.path=tiny to build the tiny local model)"
        )
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id=path, ignore_patterns=_NOT_NEEDED)
    except Exception as exc:  # noqa: BLE001 - offline miss, unknown or gated repo, network: one clear error
        cache = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")
        raise FileNotFoundError(
            f"model.path={path!r}: the hub model is not in the Hugging Face cache ({cache}) and could not be "
            f"downloaded ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); run "
            f"`huggingface-cli download {path}` where it can reach the hub (HF_TOKEN for gated models), or give a folder"
        ) from exc
