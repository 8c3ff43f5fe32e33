"""Checks that need the whole pipeline below them: train a stage on a small fixed problem, then evaluate it."""
