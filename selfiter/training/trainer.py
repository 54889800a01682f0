"""The online-sampling trainer (Algorithm 1 + Eq. 6) and the cascade baseline (Eq. 1-2).

Every step draws its own batch: face indices, augmentation and sampled states
all come from a generator seeded by ``(seed, stage, step)``. A resumed run
therefore draws exactly what an uninterrupted one would, and on the CPU ends
with the same weights.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Callable

import torch
import yaml
from tqdm.auto import tqdm

from selfiter.atomic import atomic_path, write_text
from selfiter.build import Components, build_components, resolve_device
from selfiter.checkpoint import (CheckpointData, check_same_model, load_checkpoint, load_weights,
                                 resolve_checkpoint, save_checkpoint)
from selfiter.config import Config, TrainConfig, config_from_dict
from selfiter.errors import CheckpointError, ConfigError, TrainingError
from selfiter.evaluation import solve_batched
from selfiter.interfaces import ParameterModel, ProblemData, Regressor
from selfiter.solver import LearnedModel, make_solver
from selfiter.training import distributed
from selfiter.training.log import MetricsLog
from selfiter.training.losses import make_loss
from selfiter.training.optim import lr_factor, make_optimizer

STATE_FILE = "trainer_state.pt"
CHECKPOINT_FILE = "checkpoint.safetensors"


def step_generator(seed: int, stage: int, step: int, device: torch.device) -> torch.Generator:
    """The generator of one step: a pure function of its position in the run."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + stage * 10_000_019 + step) % (2**63 - 1))
    return g


def _autocast(device: torch.device, train: TrainConfig):
    """The training step's autocast: bf16 on CUDA with ``train.amp``, on the CPU with
    ``train.amp_cpu``, else none."""
    if (train.amp and device.type == "cuda") or (train.amp_cpu and device.type == "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train the config's regressor(s) into ``run_dir``; return the final checkpoint's path.

    ``run_dir`` gets ``checkpoint.safetensors`` (the trained solver),
    ``trainer_state.pt`` (what ``resume`` needs), ``config.yaml`` and
    ``metrics.jsonl``. Without ``resume`` an existing run there is an error,
    so that no training is overwritten by accident. A loss or weights that stop
    being finite raise :class:`~selfiter.errors.TrainingError` and leave the last
    checkpoint written before them in place."""
    run = Path(run_dir)
    state_path = run / STATE_FILE
    state = None
    if resume:
        if not state_path.is_file():
            raise CheckpointError(f"{state_path}: nothing to resume (no trainer state in {run})")
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        saved = config_from_dict(yaml.safe_load(state["config"]), source=str(run / "config.yaml"))
        _check_resumable(saved, cfg, run)
    elif state_path.exists():
        raise ConfigError(
            f"{run}: already holds a training run; pass --resume to continue it or choose another -o"
        )
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    world, device = distributed.setup(resolve_device(t.device))
    try:
        return _train(cfg, run, state, world, device, progress)
    finally:
        distributed.teardown(world)


def _train(cfg: Config, run: Path, state: dict | None, world: distributed.World,
           device: torch.device, progress: bool) -> Path:
    t = cfg.train
    if world.is_main:
        run.mkdir(parents=True, exist_ok=True)
        write_text(run / "config.yaml", cfg.to_yaml())
    parts = build_components(cfg)
    train_data = parts.problem.load(t.split)
    init = _initial_weights(cfg) if state is None and t.init is not None else None
    if state is not None:
        parts.parameter_model.load_state_dict(state["parameter_model"])
    elif init is not None:
        parts.parameter_model.load_state_dict(init.parameter_model)
    else:
        parts.parameter_model.fit_data(train_data.theta_gt)
    data = train_data.to(device)
    val = _validation_data(parts, cfg, device) if world.is_main else None
    feature_shape = tuple(
        parts.extractor.feature_shape(tuple(data.inputs.shape[1:]), parts.parameter_model.theta_dim)
    )
    n_stages = 1 if t.mode == "sir" else t.stages
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left as it was
        torch.manual_seed(t.seed)
        extractor = parts.make_extractor()  # a learned one draws its weights here, seeded
        regs = [parts.make_regressor(feature_shape) for _ in range(n_stages)]
    model = LearnedModel(extractor, regs, t.mode)
    if t.auxiliary_weight > 0 and type(regs[0]).forward_train is Regressor.forward_train:
        raise ConfigError(
            f"{cfg.source or '<config>'}: train.auxiliary_weight: is {t.auxiliary_weight}, but "
            f"regressor {cfg.regressor.name!r} has no auxiliary prediction to supervise; set it to 0")
    if t.mode == "cascade" and model.learned_extractor:
        raise ConfigError(
            f"{cfg.source or '<config>'}: train.mode: cascade trains each stage on fixed features, "
            f"but features {cfg.features.name!r} has learned weights; use mode sir")
    start_stage, start_step, elapsed = 0, 0, 0.0
    init_counts = None
    if init is not None:
        init_counts = load_weights(model, init, f"train.init: {t.init}", partial=t.init_partial)
    if state is not None:
        if "model" in state:
            model.load_state_dict(state["model"])
        else:  # trainer states written before the extractor could have weights
            for r, sd in zip(regs, state["regressors"]):
                r.load_state_dict(sd)
        start_stage, start_step, elapsed = state["stage"], state["step"], state["elapsed"]
    model.to(device)
    log = MetricsLog(run, resume_at=(start_stage, start_step) if state is not None else None) \
        if world.is_main else None
    if log is not None and init_counts is not None:
        log.write({"stage": 0, "step": 0, "init_tensors_loaded": init_counts[0],
                   "init_tensors": init_counts[1]})
    loss_fn = make_loss(t.loss, t.loss_scale)
    budget = t.minutes * 60.0 / n_stages if t.minutes is not None else None
    seed = t.seed + 7919 * world.rank  # each rank its own draws
    states_per_step = t.batch_size * t.states_per_input * world.size

    def diverged(stage: int, step: int, what: str) -> TrainingError:
        where = f"step {step}" if n_stages == 1 else f"stage {stage + 1}/{n_stages}, step {step}"
        return TrainingError(
            f"training diverged: {what} at {where}; {run} keeps the last checkpoint from before "
            "(try a lower train.lr, train.grad_clip, or a narrower sampler)")

    def save(stage: int, step: int, opt: torch.optim.Optimizer, spent: float) -> None:
        # a NaN between two log lines must not overwrite the last good checkpoint
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise diverged(stage, step, "the weights are no longer finite")
        if world.is_main:
            with atomic_path(run / STATE_FILE) as tmp:
                torch.save({
                    "config": cfg.to_yaml(), "stage": stage, "step": step, "elapsed": spent,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "parameter_model": parts.parameter_model.state_dict(),
                }, tmp)
            save_checkpoint(run / CHECKPOINT_FILE, CheckpointData(
                cfg.to_yaml(), t.mode, step, feature_shape, [r.state_dict() for r in regs],
                parts.parameter_model.state_dict(), extractor_state(model)))
        world.barrier()

    def trainable(stage: int) -> list[torch.nn.Parameter]:
        # SIR trains everything; a cascade stage only its own regressor, the others
        # frozen (requires_grad off, so DDP expects no gradient for them)
        for i, r in enumerate(regs):
            r.requires_grad_(t.mode == "sir" or i == stage)
        return [p for p in model.parameters() if p.requires_grad]

    for stage in range(start_stage, n_stages):
        model.train()
        opt = make_optimizer(trainable(stage), t)
        net = world.wrap(model, device)
        if t.compile:  # the training forward and backward only; weights stay those of model
            net = torch.compile(net)
        first = start_step if stage == start_stage else 0
        if state is not None and stage == start_stage:
            opt.load_state_dict(state["optimizer"])
        stage_elapsed = elapsed if stage == start_stage else 0.0
        bar = tqdm(total=t.steps, initial=first, disable=not (progress and world.is_main),
                   dynamic_ncols=True, unit="step",
                   desc=f"train{'' if n_stages == 1 else f' stage {stage + 1}/{n_stages}'}")
        step, t0, window_t, window_n = first, time.perf_counter(), time.perf_counter(), 0
        while step < t.steps:
            spent = stage_elapsed + time.perf_counter() - t0
            if budget is not None and world.any(spent >= budget, device):
                break
            progress_frac = max(step / t.steps, spent / budget if budget else 0.0)
            for group in opt.param_groups:
                group["lr"] = t.lr * lr_factor(t, progress_frac, step)
            loss = train_step(parts, data, model, net, step, stage, seed, device, loss_fn, opt, cfg)
            step += 1
            window_n += states_per_step
            bar.update(1)
            log_step = step % t.log_every == 0 or step == t.steps
            if log_step:
                loss = float(loss)  # the only host sync of a step, once per log_every
                if world.any(not math.isfinite(loss), device):  # every rank stops together
                    raise diverged(stage, step, f"the loss is {loss}")
            if log is not None and log_step:
                now = time.perf_counter()
                rate = window_n / max(now - window_t, 1e-9)
                window_t, window_n = now, 0
                if budget is not None:  # the bar's ETA: whichever of steps and minutes ends first
                    bar.total = expected_steps(t.steps, step, budget - spent,
                                               rate / states_per_step)
                rec = {"stage": stage, "step": step, "loss": loss, "lr": opt.param_groups[0]["lr"],
                       "samples_per_s": rate, "elapsed_s": stage_elapsed + now - t0}
                if val is not None and t.val_every and step % t.val_every == 0:
                    rec.update(_validate(parts, cfg, model, val))
                    model.train()
                log.write(rec)
                bar.set_postfix(loss=f"{loss:.4g}", samples_s=f"{rate:.0f}")
            if step % t.checkpoint_every == 0 and step < t.steps:
                save(stage, step, opt, stage_elapsed + time.perf_counter() - t0)
        bar.close()
        spent = stage_elapsed + time.perf_counter() - t0
        if stage + 1 < n_stages:
            save(stage + 1, 0, make_optimizer(trainable(stage + 1), t), 0.0)
        else:
            if val is not None and log is not None:
                log.write({"stage": stage, "step": step, "final": True,
                           **_validate(parts, cfg, model, val)})
            save(stage, step, opt, spent)
    if log is not None:
        log.close()
    return run / CHECKPOINT_FILE


def expected_steps(steps: int, step: int, seconds_left: float, steps_per_s: float) -> int:
    """Where a run at ``step`` will end: ``steps``, or sooner when the time budget
    (``seconds_left`` at ``steps_per_s``) runs out first."""
    return min(steps, step + max(0, int(seconds_left * steps_per_s)))


def extractor_state(model: LearnedModel) -> dict[str, torch.Tensor]:
    """The learned extractor's weights to checkpoint (none for one without weights)."""
    return model.extractor.state_dict() if isinstance(model.extractor, torch.nn.Module) else {}


def train_step(parts: Components, data: ProblemData, model: LearnedModel, net: torch.nn.Module,
               step: int, stage: int, seed: int, device: torch.device, loss_fn,
               opt: torch.optim.Optimizer, cfg: Config) -> torch.Tensor:
    """One step of Eq. 6 on a fresh batch; returns the loss, detached, without a host sync.

    ``model`` holds every learned weight (the earlier cascade stages frozen);
    ``net`` is the same model as the step calls it (wrapped under DDP or
    compiled). Each of the B inputs gets ``train.states_per_input`` states, and
    is encoded once for all of them."""
    t = cfg.train
    g = step_generator(seed, stage, step, device)
    idx = torch.randint(len(data), (t.batch_size,), generator=g, device=device)  # (B,)
    inputs, theta_gt = parts.problem.augment(data.inputs[idx], data.theta_gt[idx], g)
    if t.states_per_input > 1:
        theta_gt = theta_gt.repeat_interleave(t.states_per_input, 0)  # (B*M, D), grouped by input
    pm = parts.parameter_model
    with torch.no_grad():
        theta = pm.theta(parts.sampler.sample(pm, pm.fit(theta_gt), g))  # (B*M, D)

    def prepare(context, theta: torch.Tensor) -> torch.Tensor:
        for k in range(stage):  # cascade: train stage k on the states stages < k produce
            theta = theta + model.step(context, theta, k)
        if t.trajectory > 0:
            theta = along_trajectory(
                lambda rows, th: model.step(model.extractor.select(context, rows), th, stage),
                pm, theta, theta_gt, g, t.trajectory, t.trajectory_steps)
        return theta

    with _autocast(device, t):
        pred, theta, auxiliary = net(inputs, theta, stage,
                                     prepare if stage > 0 or t.trajectory > 0 else None)
    target = pm.difference(theta_gt, theta)  # (B*M, D), Algorithm 1 line 7
    loss = loss_fn(pred.float(), target)
    if t.auxiliary_weight > 0 and auxiliary is not None:
        dense, goal = auxiliary(target)  # (B*M, K) each
        loss = loss + t.auxiliary_weight * loss_fn(dense.float(), goal.float())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if t.grad_clip:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                       t.grad_clip)
    opt.step()
    return loss.detach()


#: ``step(rows: (A,), theta: (A, D)) -> delta: (A, D)``: the solver's step for rows of a batch
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def along_trajectory(step: Step, model: ParameterModel, theta: torch.Tensor,
                     theta_gt: torch.Tensor, g: torch.Generator, share: float,
                     max_steps: int) -> torch.Tensor:
    """Move a random ``share`` of the states ``theta: (B, D)`` by 1 to ``max_steps``
    iterations of ``step`` (uniformly many), as the solver would; the rest stay as sampled.

    Sampling around the mean and the truth alone never shows the regressor the
    states its own iterations reach, and on those its errors compound; trained on
    them too, it learns to correct its own steps. A move is kept only while it
    leaves the state no farther from the truth ``theta_gt: (B, D)`` than it was
    sampled: early in training the regressor's steps go anywhere, and states far
    outside the sampled range (a curve's decay turned into growth, say) give
    targets that swamp the loss.
    """
    b = theta.shape[0]
    moved = torch.rand(b, generator=g, device=theta.device) < share  # (B,)
    steps = torch.randint(1, max_steps + 1, (b,), generator=g, device=theta.device) * moved  # (B,)
    theta = theta.clone()
    s_gt, s_std = model.fit(theta_gt), model.s_std().to(theta)  # (B, P), (P,)

    def distance(th: torch.Tensor, rows: torch.Tensor | slice) -> torch.Tensor:
        # in the sampler's units (s.d. of S per dimension), so no one dimension's unit rules
        return ((model.fit(th) - s_gt[rows]) / s_std).pow(2).sum(1)  # (A,)

    limit = distance(theta, slice(None))  # (B,) as sampled
    for k in range(max_steps):
        idx = (steps > k).nonzero(as_tuple=True)[0]  # (A,) the states still moving
        if idx.numel() == 0:
            break
        old = theta[idx]  # (A, D)
        new = old + step(idx, old).to(old.dtype)
        dist = distance(new, idx)
        keep = torch.isfinite(dist) & (dist <= limit[idx])  # NaN/inf fail the comparison too
        theta[idx] = torch.where(keep[:, None], new, old)
    return theta


def _initial_weights(cfg: Config) -> CheckpointData:
    """The checkpoint ``train.init`` names, checked against the run's mode and stages."""
    t = cfg.train
    try:
        ckpt = load_checkpoint(resolve_checkpoint(t.init))
    except CheckpointError as exc:  # say which key named it
        raise CheckpointError(f"train.init: {exc}") from None
    check_same_model(ckpt, cfg.to_yaml(), f"train.init: {t.init}", "this run's config")
    n_stages = 1 if t.mode == "sir" else t.stages
    if ckpt.mode != t.mode or len(ckpt.regressors) != n_stages:
        raise CheckpointError(f"train.init: {t.init}: holds a {ckpt.mode} solver with "
                              f"{len(ckpt.regressors)} regressor(s); this run trains {t.mode} "
                              f"with {n_stages}")
    return ckpt


def _validation_data(parts: Components, cfg: Config, device: torch.device) -> ProblemData | None:
    t = cfg.train
    if t.val_split is None:
        return None
    val = parts.problem.load(t.val_split)
    if t.val_max is not None and len(val) > t.val_max:
        val = val.subset(torch.arange(t.val_max))
    return val.to(device)


def _validate(parts: Components, cfg: Config, model: LearnedModel, val: ProblemData) -> dict:
    model.eval()
    iterations = cfg.solver.iterations if cfg.train.mode == "sir" else len(model.regressors)
    res = solve_batched(make_solver(model), parts.parameter_model, val.inputs, iterations,
                        cfg.solver.tol, cfg.solver.batch_size, amp=cfg.train.amp)
    metrics = parts.problem.metrics(res.theta, val)
    return {f"val_{k}": v for k, v in metrics.items()}


def _check_resumable(saved: Config, new: Config, run: Path) -> None:
    """A resumed run may change its length (steps, minutes) and logging, nothing that alters the math.

    Compared key by key (``problem.params.data_root``, not the whole ``params``),
    so that the refusal names what differs."""
    free = {"steps", "minutes", "log_every", "val_every", "checkpoint_every", "device", "num_threads"}

    def leaves(value: object, prefix: str) -> dict[str, object]:
        if not isinstance(value, dict):
            return {prefix: value}
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(leaves(v, f"{prefix}.{k}"))
        return out

    a, b = saved.to_dict(), new.to_dict()
    for section in ("problem", "parameter_model", "sampler", "features", "regressor", "train"):
        old_leaves, new_leaves = leaves(a[section], section), leaves(b[section], section)
        for key in sorted(set(old_leaves) | set(new_leaves)):
            if section == "train" and key.split(".", 1)[1] in free:
                continue
            if old_leaves.get(key) != new_leaves.get(key):
                raise ConfigError(
                    f"{run}: cannot resume: {key} was {old_leaves.get(key)!r} in the saved run, "
                    f"now {new_leaves.get(key)!r} (a resumed run keeps its saved config; it may "
                    f"change only {', '.join(f'train.{k}' for k in sorted(free))})"
                )
