#!/usr/bin/env bash
# Rows 1-4 of the ablation, run one after the other (never in parallel).
set -uo pipefail
R="$(dirname "$0")/run_ablation.sh"
$R no-content content_weight=0
$R no-style style_weight=0
$R no-envelope envelope_weight=0
$R no-timbre timbre_weight=0
$R init-content init=content
$R style-x0.3 style_weight=30
$R style-x3 style_weight=300
$R content-conv1 loss.content_layers=conv1
for w in 1 10 100; do
  $R mod$w-noise loss.term_weights.modulation=$w
  $R mod$w-content loss.term_weights.modulation=$w init=content
done
