#!/usr/bin/env bash
# Diagnostics: what the pipeline itself costs (Griffin-Lim alone; content term alone; more GL).
set -uo pipefail
R="$(dirname "$0")/run_ablation.sh"
$R gl-only init=content iterations=0
$R content-only style_weight=0 envelope_weight=0 timbre_weight=0
$R gl300 griffin_lim_iterations=300
