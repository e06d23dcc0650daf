"""Execution providers with the real onnxruntime installed here (the CPU build): "auto" runs on
the CPU, a GPU provider asked for by name is refused with what is available, and an
onnxruntime-gpu whose module the CPU build's files hide is named with the fix.

No GPU here: the last test stands in for an installed onnxruntime-gpu with its metadata only (a
dist-info folder on sys.path), which is all the check reads.
"""

from __future__ import annotations

import logging
import sys

import pytest
from onnx import TensorProto, helper

from inference_server.errors import ModelLoadError
from inference_server.runtime import create_session, select_providers


def _identity_model() -> bytes:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_auto_runs_on_the_cpu_with_the_cpu_build(caplog):
    assert select_providers("auto") == ["CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING, logger="privastream.runtime"):
        session = create_session(_identity_model(), threads=1)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert caplog.records == []


def test_cuda_by_name_on_the_cpu_build_is_refused_with_what_is_available():
    with pytest.raises(ModelLoadError, match=r"execution provider 'cuda' is not available here "
                                             r"\(available: .*CPUExecutionProvider"):
        select_providers("cuda")


def test_a_gpu_build_hidden_by_the_cpu_build_is_named_with_the_fix(tmp_path, monkeypatch, caplog):
    dist = tmp_path / "onnxruntime_gpu-1.31.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.31.1\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    with caplog.at_level(logging.WARNING, logger="privastream.runtime"):
        assert select_providers("auto") == ["CPUExecutionProvider"]
    assert "onnxruntime-gpu is installed but the CPU onnxruntime's files hide it" in caplog.text
    assert "pip install --force-reinstall --no-deps onnxruntime-gpu==1.31.1" in caplog.text
