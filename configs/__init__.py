"""Hydra configs shipped with the package: one file per command, one group per component."""
