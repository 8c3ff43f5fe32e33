"""The environment: page graph, icons, rendering, generation, variants, folders and dynamics.

- :mod:`~gelab.env.structure` — ``ui_structure.json``: typed, validated, lossless.
- :mod:`~gelab.env.icons` — the icon library (Noto Color Emoji, Unicode subgroups).
- :mod:`~gelab.env.render` — the Pillow page renderer.
- :mod:`~gelab.env.generate` — Env-Base from parameters; :mod:`~gelab.env.variants` — OOD variants.
- :mod:`~gelab.env.envdir` — environment folders (structure, art, page images).
- :mod:`~gelab.env.navigation` — hit tests, moves and shortest paths (no pixels).
"""
