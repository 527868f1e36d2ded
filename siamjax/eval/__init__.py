"""Evaluation: one-shot episodes and k-NN, verification metrics, retrieval metrics, the gallery, plots."""
