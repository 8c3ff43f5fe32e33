"""Training through stock ms-swift: the tiny model, command lines and launch, rewards and plugins.

- :mod:`~gelab.train.tiny_model` — the embedded default model.
- :mod:`~gelab.train.training` — ms-swift command lines, launch, resume, consolidation.
- :mod:`~gelab.train.rewards` — SPEC §6 rewards as pure functions.
- :mod:`~gelab.train.swift_plugin` — ms-swift plugin (reward adapters, multi-turn scheduler), loaded by path.
- :mod:`~gelab.train.swift_cpu_ranks` — ms-swift plugin that lets ZeRO-3 run over several CPU processes.
"""
