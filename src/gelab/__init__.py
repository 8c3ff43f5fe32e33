"""gelab: a reproducible GE-Lab (GUI Exploration Lab) pipeline.

Data flows one way: environment -> tasks -> datasets -> training -> evaluation -> reports.
``gelab.format`` holds every string the model reads or writes.
"""

__version__ = "0.1.0"
