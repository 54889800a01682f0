"""Training and inference throughput of a selfiter config on one device.

Prints a Markdown table: per batch size, training samples/s (sampling, feature
extraction, forward and backward included; a sample is one training state, and
with ``train.states_per_input`` M states share one input), inference faces/s
for K solver iterations, latency, peak memory, and FLOPs per sample with the
share of the device's peak when ``--peak-tflops`` is given.

    python benchmarks/throughput.py examples/face300w.yaml --device cpu \
        --train-batch 16 --infer-batch 1 32 --set problem.params.data_root=../shared/data/300w
    python benchmarks/throughput.py examples/image_align.yaml --train-batch 16 --infer-batch 32 \
        [--copy-context]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import types

import torch
from common import machine, median_seconds
from torch.utils.flop_counter import FlopCounterMode

from selfiter.build import build_components, resolve_device
from selfiter.config import load_config
from selfiter.evaluation import inference_autocast, initial_theta
from selfiter.interfaces import FeatureExtractor
from selfiter.training.losses import make_loss
from selfiter.training.optim import make_optimizer
from selfiter.solver import LearnedModel, make_solver
from selfiter.training.trainer import train_step


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--set", dest="overrides", nargs="*", default=[])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-batch", type=int, nargs="*", default=[64])
    ap.add_argument("--infer-batch", type=int, nargs="*", default=[1, 32])
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--copy-context", action="store_true",
                    help="give each training state a copy of its input's context "
                         "(FeatureExtractor.repeat's default) even where the extractor "
                         "shares it: what the sharing saves")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the device's peak TFLOP/s for the share-of-peak column")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    device = resolve_device(args.device)
    parts = build_components(cfg)
    if args.copy_context:
        parts.extractor.repeat = types.MethodType(FeatureExtractor.repeat, parts.extractor)
    data = parts.problem.load(cfg.evaluate.split)
    parts.parameter_model.fit_data(data.theta_gt)  # statistics only; any split serves for timing
    data = data.to(device)
    model = parts.parameter_model
    d = model.theta_dim
    fshape = parts.extractor.feature_shape(tuple(data.inputs.shape[1:]), d)
    lm = LearnedModel(parts.extractor, [parts.make_regressor(fshape)]).to(device)
    k = args.iterations or cfg.solver.iterations
    loss_fn = make_loss(cfg.train.loss, cfg.train.loss_scale)
    opt = make_optimizer(lm.parameters(), cfg.train)
    # train.compile=true: the training step compiled
    net = torch.compile(lm) if cfg.train.compile else lm
    amp = cfg.train.amp
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {where} | {machine()} | threads {torch.get_num_threads()}")
    print(f"command: python {' '.join(sys.argv)}\n")

    def batch(b: int):
        idx = torch.arange(b, device=device) % len(data)
        return data.inputs[idx], data.theta_gt[idx]

    lm.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc_encode:
        x, _ = batch(1)
        context = lm.encode(x)
    with torch.no_grad(), FlopCounterMode(display=False) as fc_step:
        lm.step(context, initial_theta(model, 1, device), 0)
    lm.train()
    flops_encode = fc_encode.get_total_flops()  # per input, once per solve
    flops_fwd = fc_step.get_total_flops()  # per sample, one regressor application
    m = cfg.train.states_per_input

    rows = []
    for b in args.train_batch:
        # the trainer's own step: a random batch of the split, augmentation, sampling,
        # patch extraction, forward, backward, optimizer update
        step_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=b))
        counter = iter(range(10**9))

        def step():
            train_step(parts, data, lm, net, next(counter), 0, 0, device, loss_fn, opt, step_cfg)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sec = median_seconds(step, args.repeat, warmup=2, sync=lambda: sync(device))
        # trajectory states cost up to trajectory_steps more forwards on a share of the batch;
        # the TFLOP/s column counts the 3 forwards' worth of the step itself only
        tf = 3 * (flops_encode + m * flops_fwd) * b / sec / 1e12
        rows.append((f"train M={m}", b * m, b * m / sec, sec * 1e3, peak_memory_mb(device), tf))
    lm.eval()
    solver = make_solver(lm)
    for b in args.infer_batch:
        x, _ = batch(b)
        theta0 = initial_theta(model, b, device)

        def infer():
            with inference_autocast(device, amp):
                solver.solve(x, theta0, k)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sec = median_seconds(infer, args.repeat, warmup=2, sync=lambda: sync(device))
        tf = (flops_encode + k * flops_fwd) * b / sec / 1e12
        rows.append((f"infer K={k}", b, b / sec, sec * 1e3, peak_memory_mb(device), tf))

    print(f"FLOPs per input, encoding (once per solve): {flops_encode / 1e9:.3f} GFLOP; per "
          f"sample per solver step: {flops_fwd / 1e9:.3f} GFLOP (training counted as 3x "
          f"forward)\n")
    head = "| mode | batch | samples/s | latency ms | peak memory MB | TFLOP/s |"
    if args.peak_tflops:
        head += " % of peak |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for mode, b, rate, ms, mem, tf in rows:
        line = f"| {mode} | {b} | {rate:,.1f} | {ms:,.1f} | {mem:,.0f} | {tf:.3f} |"
        if args.peak_tflops:
            line += f" {100 * tf / args.peak_tflops:.2f} |"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
