"""The dynamo ONNX export does not print torch's "torchvision is not installed" warnings."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import torch

from selfiter.api import load
from selfiter.config import config_from_dict
from selfiter.export import _REGISTRY_LOGGER, export, quiet_torchvision_notes
from selfiter.training import train
from tests.core.toy_plugin import toy_config


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_only_the_torchvision_notes_are_dropped():
    logger = logging.getLogger(_REGISTRY_LOGGER)  # torch's loggers do not propagate to the root
    seen = _Records()
    logger.addHandler(seen)
    try:
        with quiet_torchvision_notes():
            logger.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
            logger.warning("something else")
        logger.warning("torchvision is not installed. Skipping %s", "after")
    finally:
        logger.removeHandler(seen)
    assert seen.messages == ["something else", "torchvision is not installed. Skipping after"]


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None
                    or importlib.util.find_spec("torchvision") is not None,
                    reason="needs onnxscript, and torchvision absent (the warnings' cause)")
def test_a_dynamo_export_prints_no_torchvision_warning(tmp_path, capfd):
    model = load(train(config_from_dict(toy_config(steps=5)), tmp_path / "run", progress=False))
    capfd.readouterr()
    export(model, tmp_path / "toy.onnx", torch.randn(2, 2), "onnx", "solver", 2, "dynamo")
    captured = capfd.readouterr()
    assert (tmp_path / "toy.onnx").is_file()
    assert "torchvision" not in captured.err + captured.out
