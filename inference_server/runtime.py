"""onnxruntime sessions on the best execution provider this machine has."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import ModelLoadError

log = logging.getLogger("privastream.runtime")

PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)
PROVIDER_CHOICES = ("auto", "tensorrt", "cuda", "directml", "coreml", "cpu")
_SHORT = dict(zip(PROVIDER_CHOICES[1:], PROVIDER_PREFERENCE))
AUTO_SKIPS = ("TensorrtExecutionProvider",)
"""Only on request: onnxruntime-gpu lists TensorRT even where TensorRT is not installed (the gpu
extra does not install it), and where it is, it builds an engine per model at load, which
takes minutes on a first start."""
GPU_DISTRIBUTION = "onnxruntime-gpu"


def select_providers(choice: str = "auto") -> list[str]:
    """The providers to ask onnxruntime for, best first.  "auto": the best this build offers
    (CUDA with onnxruntime-gpu, DirectML, CoreML), else the CPU; a named one must be offered."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if choice == "auto":
        if gpu_build_hidden(available):
            log.warning("select_providers() | %s is installed but the CPU onnxruntime's files hide it, so this "
                        "runs on the CPU; reinstall it over them: pip install --force-reinstall --no-deps %s==%s",
                        GPU_DISTRIBUTION, GPU_DISTRIBUTION, _distribution_version(GPU_DISTRIBUTION))
        return [p for p in PROVIDER_PREFERENCE if p in available and p not in AUTO_SKIPS]
    wanted = _SHORT.get(choice)
    if wanted is None:
        raise ValueError(f"unknown execution provider {choice!r} (choices: {', '.join(PROVIDER_CHOICES)})")
    if wanted not in available:
        raise ModelLoadError(f"execution provider {choice!r} is not available here (available: {', '.join(available)})")
    return [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]


def _distribution_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def gpu_build_hidden(available: list[str]) -> bool:
    """Whether onnxruntime-gpu is installed but the module that runs is the CPU build's.

    Both distributions install the same `onnxruntime` module, and faster-whisper depends on the
    CPU one, so `pip install privastream[gpu]` installs both and the one pip wrote last runs.
    """
    return _distribution_version(GPU_DISTRIBUTION) is not None and "CUDAExecutionProvider" not in available


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
    if sess.get_providers()[0] != providers[0]:
        # onnxruntime falls back to the next provider when one cannot start (CUDA without its
        # libraries): say so, since the figures then are the CPU's.
        log.warning("create_session() | %s could not start, running on %s (see docs/configuration.md, GPU)",
                    providers[0], sess.get_providers()[0])
    return sess
