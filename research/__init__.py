"""Experiments and the lab notebook: measurements that chose a design or a model, kept to be read and re-run,
not tested in CI (research/README.md). Run from the clone's root: `python -m research.levers`."""
