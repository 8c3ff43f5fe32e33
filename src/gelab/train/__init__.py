"""Training through stock ms-swift: the tiny model, command lines and launch, rewards and plugins.

- :mod:`~gelab.train.training` — one stage end to end: inputs -> command -> run -> final weights -> metrics.
- :mod:`~gelab.train.config` — the training sections of a params file, the stage names, the error type.
- :mod:`~gelab.train.checks` — checks before a stage starts (weights, template, GPU packages).
- :mod:`~gelab.train.command` — ms-swift command lines.
- :mod:`~gelab.train.launch` — the launch environment, one ms-swift attempt, stopping its process tree.
- :mod:`~gelab.train.resume` — fingerprints, checkpoints, finished runs, machine paths.
- :mod:`~gelab.train.weights` — the stage's ``final/`` weights.
- :mod:`~gelab.train.logs` — ms-swift's log as step rows, the step CSV and the summary.
- :mod:`~gelab.train.tiny_model` — the embedded default model.
- :mod:`~gelab.train.rewards` — SPEC §6 rewards as pure functions.
- :mod:`~gelab.train.swift_plugin` — ms-swift plugin (reward adapters, multi-turn scheduler), loaded by path.
- :mod:`~gelab.train.swift_template` — the tiny model's template (media ids from its tokenizer), loaded by path.
- :mod:`~gelab.train.swift_trainer` — the GRPO trainer that makes every MT-RL turn a sample.
- :mod:`~gelab.train.swift_cpu_ranks` — ms-swift plugin that lets ZeRO-3 run over several CPU processes.
"""
