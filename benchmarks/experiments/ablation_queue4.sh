#!/usr/bin/env bash
# Seed noise: the default and the best judge row at optim.seed 1 and 2 (noise init + GL phase).
set -uo pipefail
R="$(dirname "$0")/run_ablation.sh"
for s in 1 2; do
  $R paper-seed$s seed=$s
  $R mod1-content-seed$s loss.term_weights.modulation=1 init=content seed=$s
done
