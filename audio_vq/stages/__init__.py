"""The pipeline's stages: one module (or package) per command, each a thin driver over the library.

    prepare       audio-vq prepare                      a dataset -> manifest.jsonl + speakers.json
    train         audio-vq train                        manifest -> model directory
    extract       audio-vq extract, units-convert       model + audio -> unit files
    train_prior   audio-vq train-prior                  unit file -> prior
    decode        audio-vq reconstruct, convert, synthesize   model + audio or units -> waveforms
    sample        audio-vq sample                       prior + model -> speech
    evaluate/     audio-vq evaluate, evaluate-prior     reports on a model or a prior
    listening/    audio-vq export-listening-test, listening-results

A stage imports the library (the modules above this package) and never a sibling stage; nothing
in the library imports a stage (tests/test_layout.py checks both).
"""
