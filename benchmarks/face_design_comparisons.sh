#!/usr/bin/env bash
# The two comparisons that justify the default face model's design, at equal CPU time:
# M = 8 sampled states per face sharing one encoding against M = 1, and trajectory states
# on against off. The three runs train side by side, one torch thread each, for the same
# wall-clock minutes, so each gets the same share of the CPU; then compare_runs.py scores
# them on the 554 common faces and writes the tables and plots.
#
#   bash benchmarks/face_design_comparisons.sh [MINUTES] [DATA_ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-20}
data=${2:-../shared/data/300w}
config=examples/face300w_encoded.yaml
out=runs/design
# residual blocks, as the results page was measured (the example config now has the
# bundled model's separable ones)
common=(problem.params.data_root="$data" train.device=cpu train.num_threads=1
        train.minutes="$minutes" train.warmup_steps=50 train.val_split=null train.log_every=20
        features.params.block=residual)
export OMP_WAIT_POLICY=PASSIVE
selfiter train $config -o $out/m8 --no-progress --set "${common[@]}" &
# M = 1 with the same 128 states per step: 8x the faces (and encoder passes) per step
selfiter train $config -o $out/m1 --no-progress --set "${common[@]}" train.states_per_input=1 \
  train.batch_size=128 &
selfiter train $config -o $out/notraj --no-progress --set "${common[@]}" train.trajectory=0 &
wait
page=docs/results/face300w_design.md
python benchmarks/compare_runs.py $config --split common --iterations 8 \
  --set problem.params.data_root="$data" --metrics nme_ip nme_io fr08 auc08 \
  --higher-is-better auc08 --run "M = 8 states per face=$out/m8" \
  --run "M = 1 (128 faces per step)=$out/m1" \
  --title "M = 8 states per face sharing one encoding against M = 1, $minutes min each" \
  --out $page --plot docs/results/face300w_design_m.png --ced docs/results/face300w_design_m_ced.png
python benchmarks/compare_runs.py $config --split common --iterations 8 \
  --set problem.params.data_root="$data" --metrics nme_ip nme_io fr08 auc08 \
  --higher-is-better auc08 --run "trajectory states on (0.25)=$out/m8" \
  --run "trajectory states off=$out/notraj" \
  --title "Trajectory states on against off, $minutes min each" \
  --out $page --plot docs/results/face300w_design_traj.png \
  --ced docs/results/face300w_design_traj_ced.png
