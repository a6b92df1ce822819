#!/usr/bin/env bash
# LJSpeech recipe (one speaker, 22.05 kHz).
#
#   bash recipes/ljspeech/run.sh --root /data/LJSpeech-1.1 [--exp DIR] [--stage N] [--stop-stage N] [key=value ...]
#
# --root  the folder holding wavs/ and metadata.csv
# --exp   where outputs go (default exp/ljspeech)
# Stages: 0 prepare (22.05 kHz sources cached at 16 kHz).
set -euo pipefail
source "$(dirname "$0")/../stages.sh"
exp=${exp:-exp/ljspeech}

if run_stage 0; then
  require_root
  audio-vq prepare corpus=ljspeech root="$root" out="$exp/data" cache_audio=true "${overrides[@]}"
fi
