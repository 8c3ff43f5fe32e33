"""Paper-comparison reports: read the metrics tree and the paper targets, write tables and plots.

Modules, one job each: ``schema`` (a metrics file read back into
its Struct of :mod:`gelab.eval.schema`, and numbers out of it), ``collect`` (read and check the
metrics tree), ``targets`` (the paper's numbers), ``tables`` (Markdown), ``curves`` (training-curve
files), ``plots`` (PNGs), ``paper_ref`` (the ``paper-targets`` git branch for ``dvc metrics diff``),
``viewer`` (the static site and case-study figures of ``gelab view``).
"""
