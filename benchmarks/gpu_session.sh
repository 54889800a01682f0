#!/usr/bin/env bash
# One GPU session's worth of work for issues 4 and 5, in steps that each fit a
# 10-minute device command. The 300-W copy must sit at .data/300w in the checkout
# (an ignored folder: cp -r ../shared/data/300w .data/).
#
#   bash benchmarks/gpu_session.sh setup      # install, GPU tests, throughput of both LAN paths
#   bash benchmarks/gpu_session.sh train 9 [KEY=VALUE...]   # train (or resume) 9 more minutes
#   bash benchmarks/gpu_session.sh evaluate   # NME per iteration on the 554 common faces
#
# A resumed run must be given the same KEY=VALUE overrides as the run it continues,
# e.g. regressor.params.impl=bmm train.trajectory=0.5 each time.
# The device machine cannot download: its own torch (2.11 there), opencv-python-headless
# and the rest stand in for the pinned requirements, so the package goes in with
# --no-deps. Its Python is `python3`. Outputs go to $OUT (the device tool's return
# folder) or ./gpu_out.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
data=.data/300w
run=runs/face300w_gpu
case "${1:-}" in
  setup)
    python3 -m pip install -q --no-deps --no-build-isolation --no-index -e .
    nvidia-smi | tee "$out/nvidia-smi.txt"
    python3 -m pytest -q -m gpu tests 2>&1 | tee "$out/gpu-tests.txt"
    for impl in grouped bmm; do
      python3 benchmarks/throughput.py examples/face300w.yaml --device cuda --peak-tflops 989 \
          --train-batch 256 512 --infer-batch 1 32 512 \
          --set problem.params.data_root=$data regressor.params.impl=$impl \
          2>&1 | tee "$out/throughput-$impl.md"
    done
    ;;
  train)
    minutes=${2:-9}
    extra=("${@:3}")
    resume=()
    [ -f "$run/trainer_state.pt" ] && resume=(--resume)
    # train.minutes is the run's total budget: raise it by this command's share
    spent=$(python3 - "$run" <<'PY'
import sys, torch, pathlib
p = pathlib.Path(sys.argv[1]) / "trainer_state.pt"
print(torch.load(p, weights_only=False)["elapsed"] / 60 if p.exists() else 0)
PY
)
    total=$(python3 -c "print(round($spent + $minutes, 2))")
    python3 -m selfiter train examples/face300w.yaml -o "$run" "${resume[@]}" --no-progress \
        --set problem.params.data_root=$data train.device=cuda train.minutes=$total "${extra[@]}" \
        2>&1 | tail -20 | tee "$out/train.txt"
    cp "$run/metrics.jsonl" "$out/"
    ;;
  evaluate)
    python3 -m selfiter evaluate examples/face300w.yaml --checkpoint "$run" --split common --data-root $data \
        --device cuda --iterations 8 --json "$out/common.json" --plot "$out/plots" | tee "$out/evaluate.txt"
    ;;
  *)
    sed -n '2,12p' "$0"; exit 2 ;;
esac
