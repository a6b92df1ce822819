"""Evaluation of a trained model: codebook health, phonetic quality, ABX, reconstruction and
conversion metrics, plots, and the report that gathers them (``audio-vq evaluate``)."""
