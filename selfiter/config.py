"""YAML -> typed dataclasses, validated once, with ``KEY=VALUE`` overrides.

Every error names the file, the key path and what was expected, e.g.::

    examples/face300w.yaml: train.lr: expected a number, got 'fast'
"""

from __future__ import annotations

import copy
import os
import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from selfiter import plugins
from selfiter.errors import ConfigError

# --- the schema -----------------------------------------------------------------


def bounded(default: Any, ok: typing.Callable[[Any], bool], expected: str) -> Any:
    """A field whose values (other than ``None``) must pass ``ok``; ``expected`` says
    what is allowed, for the error message."""
    return field(default=default, metadata={"check": (ok, expected)})


def _positive(default: Any) -> Any:
    return bounded(default, lambda v: v > 0, "a number > 0")


def _at_least(default: Any, low: int) -> Any:
    return bounded(default, lambda v: v >= low, f"an integer >= {low}")


@dataclass
class ComponentConfig:
    """One component: a registered ``name`` and the keyword ``params`` of its factory."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """How the regressor is trained (Eq. 6 with online sampling, Algorithm 1)."""

    #: ``sir``: one regressor, states drawn by the sampler (the paper's method);
    #: ``cascade``: ``stages`` regressors trained one after another, each on the
    #: states the previous stages produce (Eq. 1-2, the paper's baseline).
    mode: Literal["sir", "cascade"] = "sir"
    #: the problem's split to train on
    split: str = "train"
    #: optimizer steps (per stage in cascade mode)
    steps: int = _at_least(1000, 0)
    #: wall-clock budget in minutes; training stops at whichever of steps/minutes comes first
    minutes: float | None = _positive(None)
    #: inputs per optimizer step (per process under torchrun); each gives
    #: ``states_per_input`` training states
    batch_size: int = _at_least(64, 1)
    #: M, sampled states per input in a step: each input is augmented and encoded once
    #: (with gradients) and its M states share that encoding, so a learned encoder
    #: gets M states' worth of gradient for one encoder pass
    states_per_input: int = _at_least(1, 1)
    #: ``adadelta`` with lr 0.1 and weight decay 1e-4 is the paper's setting
    optimizer: Literal["adadelta", "adamw", "adam", "sgd"] = "adadelta"
    #: base learning rate
    lr: float = _positive(0.1)
    #: L2 penalty (decoupled for AdamW)
    weight_decay: float = bounded(1e-4, lambda v: v >= 0, "a number >= 0")
    #: ``cosine`` decays to 0 over the run (steps, or minutes when that budget ends first)
    schedule: Literal["constant", "cosine"] = "constant"
    #: linear warm-up of the learning rate over this many steps
    warmup_steps: int = _at_least(0, 0)
    #: loss on ``(R(x) - delta_theta*) / loss_scale``; ``l2`` is Eq. 6
    loss: Literal["l2", "l1", "smooth_l1", "wing"] = "l2"
    #: the unit the loss measures errors in (e.g. pixels per unit)
    loss_scale: float = _positive(1.0)
    #: clip the gradient norm to this value (None: no clipping)
    grad_clip: float | None = _positive(None)
    #: bf16 autocast on CUDA (ignored on CPU)
    amp: bool = True
    #: bf16 autocast of the training step on the CPU too (inference stays float32); worth it
    #: where the CPU has bfloat16 dot products (AMX, AVX512-BF16): 1.26 times the image_align
    #: training states per second on the 2-core Xeon (docs/benchmarks.md)
    amp_cpu: bool = False
    #: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...
    device: str = "auto"
    #: seeds the initial weights and every step's draws
    seed: int = 0
    #: cascade mode: number of regressors
    stages: int = _at_least(4, 1)
    #: write a metrics record every N steps
    log_every: int = _at_least(50, 1)
    #: validate every N steps on ``val_split`` (0: only at the end)
    val_every: int = _at_least(0, 0)
    #: split to validate on (None: no validation)
    val_split: str | None = None
    #: at most this many validation samples (None: all)
    val_max: int | None = _at_least(256, 1)
    #: write a resumable checkpoint every N steps (and always at the end)
    checkpoint_every: int = _at_least(500, 1)
    #: run the training forward and backward through ``torch.compile`` (the first
    #: steps then take the compile time: seconds to minutes)
    compile: bool = False
    #: torch CPU threads (None: torch's default)
    num_threads: int | None = _at_least(None, 1)
    #: start from this checkpoint's weights and fitted parameter model instead of
    #: fresh ones (a path, run folder or pretrained model name; None: fresh): fine-tuning
    init: str | None = None
    #: with ``init``: take only the checkpoint's tensors whose names and shapes this run's
    #: model shares, and keep the fresh initial weights of the rest (to change part of an
    #: architecture, e.g. an encoder's blocks, and keep what is learned elsewhere); the
    #: run's first log record lists how many tensors came from the checkpoint
    init_partial: bool = False
    #: SIR mode: the share of each batch whose sampled states are first moved by the
    #: regressor being trained, 1 to ``trajectory_steps`` times, so that it also
    #: learns from the states its own iterations reach (0: the paper's sampling only)
    trajectory: float = bounded(0.0, lambda v: 0 <= v <= 1, "a share in [0, 1]")
    #: the most steps a ``trajectory`` sample is moved before it is trained on
    trajectory_steps: int = _at_least(3, 1)
    #: the weight of the regressor's auxiliary loss (its richer prediction, e.g. per-point
    #: flows, against what the target implies; see ``Regressor.forward_train``); 0: none
    auxiliary_weight: float = bounded(0.0, lambda v: v >= 0, "a number >= 0")


@dataclass
class SolverConfig:
    """How a trained solver is applied (Algorithm 2)."""

    #: K, the number of times the regressor is applied
    iterations: int = _at_least(4, 0)
    #: stop a sample once its step's RMS is below ``tol`` (0: always run all iterations)
    tol: float = bounded(0.0, lambda v: v >= 0, "a number >= 0")
    #: samples solved at once
    batch_size: int = _at_least(256, 1)
    #: test-time averaging: also solve the problem's views of each input (a mirrored
    #: face) and average the solutions mapped back (about as many times the work as views)
    tta: bool = False


@dataclass
class EvaluateConfig:
    """What ``selfiter evaluate`` scores by default."""

    #: the problem's split to score
    split: str = "test"
    #: a checkpoint path or the name of a registered pretrained model
    checkpoint: str | None = None


@dataclass
class Config:
    """A whole run: the five components and how to train, solve and evaluate."""

    problem: ComponentConfig
    parameter_model: ComponentConfig
    sampler: ComponentConfig
    features: ComponentConfig
    regressor: ComponentConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    #: the file this config was read from ("" when built in code)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML-safe), without ``source``."""
        d = dataclasses.asdict(self)
        d.pop("source")
        return _plain(d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


#: config section -> component kind in the plugin registry
COMPONENT_KINDS = {
    "problem": "problem",
    "parameter_model": "parameter_model",
    "sampler": "sampler",
    "features": "feature_extractor",
    "regressor": "regressor",
}
#: factory arguments the core supplies itself, so they may not appear in params
CORE_SUPPLIED = {"regressor": {"feature_shape", "theta_dim"}}


# --- loading --------------------------------------------------------------------


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config file; raise :class:`ConfigError` on any fault."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return config_from_dict(raw, source=str(path), overrides=overrides)


def config_from_dict(
    raw: Mapping[str, Any], source: str = "<dict>", overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Validate plain data as a :class:`Config` (``source`` names it in errors)."""
    raw = copy.deepcopy(dict(raw))
    overridden: set[str] = set()
    parsed = [(item, *_parse_override(item, source)) for item in overrides]
    for _, key, value in parsed:
        _set_path(raw, key, value, source)
        overridden.add(key)
    for item, key, value in parsed:  # after all are set: a component's name may be overridden too
        _check_override(raw, key, value, f"--set {item}")
    cfg = _build(Config, raw, "", source)
    cfg.source = source
    # absolute: the resolved paths are saved in checkpoints, and read back from elsewhere
    base = Path(source).absolute().parent if source and not source.startswith("<") else Path.cwd()
    for section, kind in COMPONENT_KINDS.items():
        comp: ComponentConfig = getattr(cfg, section)
        comp.params = _check_params(
            kind, comp, f"{section}", source, base, overridden, CORE_SUPPLIED.get(section, set())
        )
    if cfg.train.mode == "cascade" and cfg.train.trajectory > 0:
        raise ConfigError(f"{source}: train.trajectory: applies to mode 'sir' only (a cascade "
                          f"stage already trains on the states of the stages before it)")
    if cfg.evaluate.checkpoint is not None and "evaluate.checkpoint" not in overridden:
        candidate = base / cfg.evaluate.checkpoint
        if candidate.exists():
            cfg.evaluate.checkpoint = str(candidate)
    return cfg


def _parse_override(item: str, source: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=0.01")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key, value


def _check_override(raw: Mapping[str, Any], key: str, value: Any, label: str) -> None:
    """Validate one override's key and value on their own, so that a bad one is reported
    as ``--set KEY=VALUE: ...`` rather than as if it were in the config file.

    Keys of the schema are checked against its types and bounds; a component's
    ``params.NAME`` against the factory's signature (when the component name is
    known; otherwise the whole config's check reports it). The whole config is
    validated afterwards as usual."""
    parts = key.split(".")
    tp: Any = Config
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        if not dataclasses.is_dataclass(tp):
            break
        fields = {f.name: f for f in dataclasses.fields(tp) if f.name != "source"}
        if part not in fields:
            raise ConfigError(f"{label}: {where}: unknown key; expected one of "
                              f"{', '.join(sorted(fields))}")
        f, tp = fields[part], typing.get_type_hints(tp)[part]
        if i == len(parts) - 1:
            v = _coerce(tp, {} if dataclasses.is_dataclass(tp) and value is None else value,
                        where, label)
            if "check" in f.metadata and v is not None:
                ok, expected = f.metadata["check"]
                if not ok(v):
                    raise ConfigError(f"{label}: {where}: expected {expected}, got {v!r}")
            if part == "name" and i == 1 and parts[0] in COMPONENT_KINDS:
                try:
                    plugins.get(COMPONENT_KINDS[parts[0]], v)
                except ConfigError:
                    raise
                except Exception as exc:
                    raise ConfigError(f"{label}: {where}: {exc}") from None
            return
        if part == "params" and i == 1 and len(parts) == 3:
            _check_param_override(raw, parts[0], parts[2], value, label)
            return


def _check_param_override(raw: Mapping[str, Any], section: str, name: str, value: Any,
                          label: str) -> None:
    """``SECTION.params.NAME=value`` against the signature of the section's factory."""
    comp = raw.get(section)
    kind = COMPONENT_KINDS.get(section)
    if kind is None or not isinstance(comp, dict) or not isinstance(comp.get("name"), str):
        return
    try:
        factory = plugins.get(kind, comp["name"]).obj
        sig = inspect.signature(factory)
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:  # an unknown name or an opaque factory: the whole config's check says so
        return
    accepted = {n: p for n, p in sig.parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and n not in CORE_SUPPLIED.get(section, set())}
    key = f"{section}.params.{name}"
    if name not in accepted:
        if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            return
        raise ConfigError(f"{label}: {key}: unknown parameter of {kind} {comp['name']!r}; "
                          f"expected one of {', '.join(sorted(accepted)) or '(none)'}")
    _coerce(hints.get(name, Any), value, key, label)


def _set_path(raw: dict[str, Any], key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(
                f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section"
            )
        node = nxt
    node[parts[-1]] = value


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = " or ".join(_type_name(a) for a in args)
        return f"{inner} or null" if len(args) < len(typing.get_args(tp)) else inner
    if origin in (list, tuple):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            Path: "a path"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(tp: Any, value: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widened to floats)."""
    origin = typing.get_origin(tp)
    fail = ConfigError(f"{source}: {key}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise fail
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key, source)
            except ConfigError:
                continue
        raise fail
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise fail
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail
    if tp is str or tp is Path:
        if isinstance(value, str):
            return value
        raise fail
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail
        args = typing.get_args(tp)
        elem = args[0] if args else Any
        return [_coerce(elem, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise fail
        return dict(value)
    return value


def _build(cls: type, value: Any, prefix: str, source: str) -> Any:
    where = prefix or "top level"
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {where}: expected a mapping, got {value!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"{source}: {key}: unknown key; expected one of {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: {key}: missing; expected {_type_name(hints[name])}")
            continue
        v = value[name]
        if dataclasses.is_dataclass(hints[name]) and v is None:
            v = {}
        v = _coerce(hints[name], v, key, source)
        if "check" in f.metadata and v is not None:
            ok, expected = f.metadata["check"]
            if not ok(v):
                raise ConfigError(f"{source}: {key}: expected {expected}, got {v!r}")
        kwargs[name] = v
    return cls(**kwargs)


def _check_params(
    kind: str,
    comp: ComponentConfig,
    section: str,
    source: str,
    base: Path,
    overridden: set[str],
    supplied: set[str],
) -> dict[str, Any]:
    """Check ``params`` against the factory's signature; resolve ``Path`` params."""
    try:
        factory = plugins.get(kind, comp.name).obj
    except Exception as exc:
        raise ConfigError(f"{source}: {section}.name: {exc}") from None
    try:
        sig = inspect.signature(factory)
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except (TypeError, ValueError, NameError):
        return dict(comp.params)
    accepted = {
        n: p for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in supplied
    }
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    out: dict[str, Any] = {}
    for name, value in comp.params.items():
        key = f"{section}.params.{name}"
        if name not in accepted:
            if takes_any:
                out[name] = value
                continue
            raise ConfigError(
                f"{source}: {key}: unknown parameter of {kind} {comp.name!r}; "
                f"expected one of {', '.join(sorted(accepted)) or '(none)'}"
            )
        tp = hints.get(name, Any)
        value = _coerce(tp, value, key, source)
        if value is not None and _is_path_type(tp):
            p = Path(value).expanduser()
            if not p.is_absolute():
                p = (Path.cwd() if key in overridden else base) / p
            value = os.path.normpath(p)
        out[name] = value
    missing = [
        n for n, p in accepted.items() if p.default is inspect.Parameter.empty and n not in out
    ]
    if missing:
        raise ConfigError(f"{source}: {section}.params.{missing[0]}: missing; "
                          f"{kind} {comp.name!r} needs it")
    return out


def _is_path_type(tp: Any) -> bool:
    if tp is Path:
        return True
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and Path in typing.get_args(tp)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
