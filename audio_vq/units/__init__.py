"""Discrete units: extraction from audio, the unit-file formats, and unit files as a corpus.

extraction  UnitExtractor: a trained model's encoder and quantizer applied to audio -> Units
formats     the unit files (gslm, textless, jsonl, npz, zerospeech) and their meta.json
corpus      unit files as training data for a prior (splits, crops, K)
"""

from .extraction import UnitExtractor, Units, deduplicate, expand
from .formats import FORMATS, Record, UnitFormatError, UnitsMeta, read_units, write_units

__all__ = [
    "FORMATS",
    "Record",
    "UnitExtractor",
    "UnitFormatError",
    "Units",
    "UnitsMeta",
    "deduplicate",
    "expand",
    "read_units",
    "write_units",
]
