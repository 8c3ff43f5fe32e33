"""Tasks and episodes: what the agent is asked to do, and the one turn rule that plays it out.

- :mod:`~gelab.tasks.universe` — tasks (data plus the success predicate) and a subtree's task universe.
- :mod:`~gelab.tasks.episode` — the episode engine: state, prompt and turn rule of one episode.
- :mod:`~gelab.tasks.gym_env` — the Gymnasium environment ``gelab/GuiNav-v0``, a driver of the engine.
"""
