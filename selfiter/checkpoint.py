"""Checkpoints: one self-contained ``.safetensors`` file per trained solver.

Tensors: the regressor weights (``regressor.*``, or ``stage{i}.*`` for a
cascade), a learned feature extractor's weights (``extractor.*``, absent for
an extractor without weights) and the parameter model's fitted state
(``parameter_model.*``).
Metadata (strings): the resolved config as YAML, the training mode, the step,
the feature shape and the selfiter version. A checkpoint alone rebuilds the
solver; the training data is never needed again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

import selfiter
from selfiter import plugins
from selfiter.atomic import atomic_path
from selfiter.errors import CheckpointError

FORMAT = "selfiter-checkpoint-1"


@dataclass
class CheckpointData:
    """What a checkpoint holds, as loaded (tensors on the CPU)."""

    config_yaml: str
    mode: str
    step: int
    feature_shape: tuple[int, ...]
    #: one state dict for SIR, one per stage for a cascade
    regressors: list[dict[str, torch.Tensor]]
    parameter_model: dict[str, torch.Tensor]
    #: a learned feature extractor's state dict (empty for one without weights)
    extractor: dict[str, torch.Tensor] = field(default_factory=dict)


def save_checkpoint(path: str | Path, data: CheckpointData, half: bool = False) -> None:
    """Write ``data`` atomically; ``half`` stores floating weights as float16."""
    tensors: dict[str, torch.Tensor] = {}
    prefixes = ["regressor."] if data.mode == "sir" else [f"stage{i}." for i in range(len(data.regressors))]
    groups = [*zip(prefixes, data.regressors), ("extractor.", data.extractor)]
    for prefix, state in groups:
        for k, v in state.items():
            v = v.detach().cpu()
            if half and v.is_floating_point():
                v = v.half()
            tensors[prefix + k] = v.contiguous()
    for k, v in data.parameter_model.items():
        tensors["parameter_model." + k] = v.detach().cpu().contiguous()
    meta = {
        "format": FORMAT,
        "config": data.config_yaml,
        "mode": data.mode,
        "step": str(data.step),
        "stages": str(len(data.regressors)),
        "feature_shape": json.dumps(list(data.feature_shape)),
        "selfiter_version": selfiter.__version__,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(path: str | Path) -> CheckpointData:
    """Read a checkpoint written by :func:`save_checkpoint` (weights cast to float32)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:

        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a selfiter checkpoint (metadata format is "
                              f"{meta.get('format')!r}, expected {FORMAT!r})")
    mode = meta["mode"]
    stages = int(meta["stages"])
    prefixes = ["regressor."] if mode == "sir" else [f"stage{i}." for i in range(stages)]

    def group(prefix: str, as_float: bool = True) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: (v.float() if as_float and v.is_floating_point() else v)
                for k, v in tensors.items() if k.startswith(prefix)}

    regs = [group(prefix) for prefix in prefixes]
    pm = group("parameter_model.", as_float=False)
    return CheckpointData(
        config_yaml=meta["config"], mode=mode, step=int(meta["step"]),
        feature_shape=tuple(json.loads(meta["feature_shape"])), regressors=regs,
        parameter_model=pm, extractor=group("extractor."),
    )


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A registered pretrained model's file, or an existing checkpoint path."""
    models = plugins.components("model")
    if str(name_or_path) in models:
        return Path(models[str(name_or_path)].obj)
    p = Path(name_or_path)
    if p.is_dir():
        p = p / "checkpoint.safetensors"
    if not p.is_file():
        known = ", ".join(sorted(models)) or "none registered"
        raise CheckpointError(
            f"{name_or_path}: neither a checkpoint file nor a pretrained model name ({known})"
        )
    return p


def component_names(config_yaml: str) -> dict[str, str]:
    """The registered names of a resolved config's (YAML) problem, features and regressor."""
    raw = yaml.safe_load(config_yaml) or {}
    return {k: str((raw.get(k) or {}).get("name")) for k in ("problem", "features", "regressor")}


def model_signature(config_yaml: str) -> str:
    """``problem/features/regressor`` named by a resolved config (YAML): what weights
    trained under it belong to."""
    return "/".join(component_names(config_yaml).values())


def check_same_model(ckpt: CheckpointData, asked_yaml: str, source: str, asked_by: str) -> None:
    """Refuse, in one line, a checkpoint whose weights belong to another problem or other
    components than the config ``asked_by`` names (a raw shape error otherwise)."""
    have, want = model_signature(ckpt.config_yaml), model_signature(asked_yaml)
    if have != want:
        raise CheckpointError(f"checkpoint {source} holds a {have} model, {asked_by} asks for {want}")


def load_weights(model: torch.nn.Module, ckpt: CheckpointData, source: str,
                 partial: bool = False) -> tuple[int, int] | None:
    """Put a checkpoint's weights into a :class:`selfiter.solver.LearnedModel` (in place):
    its regressor(s) and, when it has weights, its feature extractor. Raises
    :class:`CheckpointError` naming the part that does not fit; with ``partial``, only
    the tensors whose names and shapes fit are loaded, and ``(loaded, total)`` tensor
    counts are returned."""
    if len(ckpt.regressors) != len(model.regressors):
        raise CheckpointError(f"{source}: holds {len(ckpt.regressors)} regressor(s), the model "
                              f"has {len(model.regressors)}")
    names = component_names(ckpt.config_yaml)
    targets = [(r, sd, f"regressor {names['regressor']!r}")
               for r, sd in zip(model.regressors, ckpt.regressors)]
    if isinstance(model.extractor, torch.nn.Module):
        targets.append((model.extractor, ckpt.extractor, f"feature extractor {names['features']!r}"))
    elif ckpt.extractor:
        raise CheckpointError(f"{source}: holds weights of a learned feature extractor; the "
                              "configured one has none")
    if partial:
        return _load_matching(targets)
    for module, sd, what in targets:
        try:
            module.load_state_dict(sd)
        except RuntimeError as exc:
            raise CheckpointError(f"{source}: weights do not fit {what}: "
                                  f"{str(exc).splitlines()[0]}") from None
    return None


def _load_matching(targets: list[tuple[torch.nn.Module, dict, str]]) -> tuple[int, int]:
    """Load, per module, the checkpoint tensors whose name and shape it has; returns
    ``(tensors loaded, tensors of the modules in all)``."""
    loaded = total = 0
    for module, sd, _ in targets:
        own = module.state_dict()
        fits = {k: v for k, v in sd.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
        module.load_state_dict(fits, strict=False)
        loaded, total = loaded + len(fits), total + len(own)
    return loaded, total
