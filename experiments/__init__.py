"""Experiment configs and the runner: ``python -m experiments.run CONFIG...`` (see fashion_hier.experiments)."""
