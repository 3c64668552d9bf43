#!/usr/bin/env bash
# Which term costs the note dynamics (content + one term), and follow-ups of the judge rows.
set -uo pipefail
R="$(dirname "$0")/run_ablation.sh"
$R content+timbre style_weight=0 envelope_weight=0
$R content+envelope style_weight=0 timbre_weight=0
$R content+style envelope_weight=0 timbre_weight=0
$R mod0.3-content loss.term_weights.modulation=0.3 init=content
$R mod3-content loss.term_weights.modulation=3 init=content
$R mod1-content-noenv loss.term_weights.modulation=1 init=content envelope_weight=0
$R lag30-content loss.term_weights.lagged_gram=30 init=content
