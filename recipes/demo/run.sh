#!/usr/bin/env bash
# Demo recipe: the embedded synthetic toy-speech corpus, end to end on two CPU cores.
#
#   bash recipes/demo/run.sh [--stage N|name] [--stop-stage N|name] [--exp DIR] [key=value ...]
#
# --exp   where everything goes (default exp/demo): synthetic/ (the generated corpus), data/ (manifest)
# Stages: 0 prepare (generates the corpus on first use, then writes data/manifest.jsonl).
set -euo pipefail
source "$(dirname "$0")/../stages.sh"
exp=${exp:-exp/demo}

if run_stage 0; then
  audio-vq prepare corpus=synthetic root="$exp/synthetic" out="$exp/data" "${overrides[@]}"
fi
