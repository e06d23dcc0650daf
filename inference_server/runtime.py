"""onnxruntime sessions on the best execution provider this machine has."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import ModelLoadError

log = logging.getLogger("privastream.runtime")

# Best first.  A provider is used only if this onnxruntime build offers it.
PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)
PROVIDER_CHOICES = ("auto", "tensorrt", "cuda", "directml", "coreml", "cpu")
_SHORT = dict(zip(PROVIDER_CHOICES[1:], PROVIDER_PREFERENCE))


def select_providers(choice: str = "auto") -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if choice == "auto":
        return [p for p in PROVIDER_PREFERENCE if p in available]
    wanted = _SHORT.get(choice)
    if wanted is None:
        raise ValueError(f"unknown execution provider {choice!r} (choices: {', '.join(PROVIDER_CHOICES)})")
    if wanted not in available:
        raise ModelLoadError(f"execution provider {choice!r} is not available here (available: {', '.join(available)})")
    return [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]


def create_session(model: bytes | Path, threads: int = 0, provider: str = "auto"):
    """An InferenceSession; threads=0 lets onnxruntime choose (one per core)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, int(threads))
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # Idle intra-op threads spin by default: on a 2-core machine shared by face, text and speech
    # workers that doubles CPU time for no gain.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = select_providers(provider)
    try:
        sess = ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"onnxruntime could not load {model if isinstance(model, Path) else 'model'}: {exc}") from exc
    log.info("create_session() | providers:%s threads:%s", sess.get_providers(), threads or "auto")
    return sess
