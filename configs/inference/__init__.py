"""Configs of the commands that apply a trained model (reconstruct, convert, synthesize, ...).

They live in their own config package because their public key ``model=<model directory>``
would otherwise collide with the ``model/`` config group (the presets) that train selects.
"""
