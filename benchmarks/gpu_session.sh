#!/usr/bin/env bash
# A GPU session's work for issues 4 and 5, in steps that each fit a 10-minute device
# command. The 300-W copy must sit at .data/300w in the checkout (an ignored folder:
# cp -r ../shared/data/300w .data/).
#
#   bash benchmarks/gpu_session.sh setup                  # install, GPU tests, throughput of both LAN paths
#   bash benchmarks/gpu_session.sh speed NAME [KEY=VALUE...]  # throughput of a variant, e.g.
#       speed bmm-compiled regressor.params.impl=bmm train.compile=true
#   bash benchmarks/gpu_session.sh train NAME MIN [KEY=VALUE...]  # train runs/NAME (or resume it) MIN more minutes
#   bash benchmarks/gpu_session.sh evaluate NAME          # NME per iteration on the 554 common faces
#   bash benchmarks/gpu_session.sh compare                # the paper's comparisons over the runs there
#
# The comparisons read these run names: sir (the recipe), cr (train.mode=cascade),
# stack (regressor.name=lan_stack), sigma0.1, sigma0.2, sigma0.4 (sampler.params.sigma=...);
# missing runs are left out. Give them equal minutes, e.g.
#   bash benchmarks/gpu_session.sh train cr 3 train.mode=cascade
# A resumed run must be given the same KEY=VALUE overrides as the run it continues.
#
# The device machine cannot download: its own torch (2.11 there), opencv-python-headless
# and the rest stand in for the pinned requirements, so the package goes in with
# --no-deps. Its Python is `python3`. Outputs go to $OUT (the device tool's return
# folder) or ./gpu_out.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
data=.data/300w
config=examples/face300w.yaml
device=${SELFITER_DEVICE:-cuda}  # cpu: a smoke test of train/evaluate/compare without a GPU
case "${1:-}" in
  setup)
    python3 -m pip install -q --no-deps --no-build-isolation --no-index -e .
    nvidia-smi | tee "$out/nvidia-smi.txt"
    python3 -m pytest -q -m gpu tests 2>&1 | tee "$out/gpu-tests.txt"
    bash "$0" speed grouped
    bash "$0" speed bmm regressor.params.impl=bmm
    ;;
  speed)
    name=${2:?a name for the table}
    python3 benchmarks/throughput.py $config --device cuda --peak-tflops 989 \
        --train-batch 256 512 --infer-batch 1 32 512 \
        --set problem.params.data_root=$data "${@:3}" 2>&1 | tee "$out/throughput-$name.md"
    ;;
  train)
    name=${2:?run name}
    minutes=${3:?minutes}
    extra=("${@:4}")
    run=runs/$name
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
    python3 -m selfiter train $config -o "$run" "${resume[@]}" --no-progress \
        --set problem.params.data_root=$data train.device=$device train.minutes=$total "${extra[@]}" \
        2>&1 | tail -20 | tee "$out/train-$name.txt"
    cp "$run/metrics.jsonl" "$out/metrics-$name.jsonl"
    ;;
  evaluate)
    name=${2:?run name}
    python3 -m selfiter evaluate $config --checkpoint "runs/$name" --split common --data-root $data \
        --device $device --iterations 8 --json "$out/common-$name.json" --plot "$out/plots-$name" \
        | tee "$out/evaluate-$name.txt"
    ;;
  compare)
    page="$out/face300w_comparisons.md"
    compare() {  # title, png, then LABEL=NAME pairs; runs not trained are skipped
      local title=$1 png=$2 args=()
      shift 2
      for pair in "$@"; do
        [ -f "runs/${pair#*=}/checkpoint.safetensors" ] && args+=(--run "${pair%%=*}=runs/${pair#*=}")
      done
      [ ${#args[@]} -ge 4 ] || { echo "skip '$title': fewer than two of its runs"; return 0; }
      python3 benchmarks/compare_runs.py $config --split common --device $device --iterations 8 \
          --set problem.params.data_root=$data --title "$title" --out "$page" --plot "$out/$png" \
          --metrics nme_ip fr08 auc08 --higher-is-better auc08 "${args[@]}"
    }
    compare "SIR vs cascaded regression" sir_vs_cr.png "SIR, LAN=sir" "cascade, 4 LANs=cr"
    compare "LAN vs SIR-Stack" lan_vs_stack.png "SIR, LAN=sir" "SIR, Stack=stack"
    compare "Sampling sigma" sigma_sweep.png "sigma 0.1=sigma0.1" "sigma 0.2=sigma0.2" \
        "sigma 0.4=sigma0.4"
    ;;
  *)
    sed -n '2,22p' "$0"; exit 2 ;;
esac
