"""Datasets: every training and evaluation file of the paper, built from environments and tasks."""
