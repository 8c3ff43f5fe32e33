"""Evaluation: the static (teacher-forced) and the interactive benchmark of SPEC §5.

- :mod:`~gelab.evaluation.records` — append-only JSONL logs that survive a kill (resumable outputs).
- :mod:`~gelab.evaluation.static` — prediction files (project and released layouts) and their scores.
- :mod:`~gelab.evaluation.interactive` — batched episodes over a task list, and Pass@1 / Pass@k.
- :mod:`~gelab.evaluation.policies` — what answers an observation: reference policies and models.
- :mod:`~gelab.evaluation.backends` — model backends (``hf``, ``vllm``, ``openai``), imported lazily.
"""
