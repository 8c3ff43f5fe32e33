"""Evaluation: the static (teacher-forced) and the interactive benchmark of SPEC §5.

- :mod:`~gelab.eval.records` — append-only JSONL logs that survive a kill (resumable outputs).
- :mod:`~gelab.eval.static` — prediction files (project and released layouts) and their scores.
- :mod:`~gelab.eval.interactive` — batched episodes over a task list, and Pass@1 / Pass@k.
- :mod:`~gelab.eval.schema` — the metrics files' layout: msgspec Structs written here, read by the report.
- :mod:`~gelab.eval.policies` — what answers an observation: reference policies and models.
- :mod:`~gelab.eval.backends` — model backends (``hf``, ``vllm``, ``openai``), imported lazily.
"""
