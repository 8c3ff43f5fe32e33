"""The paper's numbers (SPEC §8), kept in ``paper/targets.yaml`` in the metrics files' own layout.

The file maps model -> metrics kind -> the same keys as ``metrics/<model>/<kind>.json``, holding only
the numbers the paper prints. It is checked against the metrics schemas with every key optional, so
a target can never use a key or unit that the project's metrics files do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msgspec import Struct

from gelab.eval.schema import SCHEMAS, to_json
from gelab.report.schema import MetricsError, validate

Targets = dict[str, dict[str, Struct]]  # model -> kind -> its Struct, every field optional


def load_targets(path: str | Path) -> Targets:
    from gelab.io import read_yaml

    path = Path(path)
    try:
        raw = read_yaml(path)
    except ValueError as exc:
        raise MetricsError(str(exc)) from exc
    if not isinstance(raw, dict):
        raise MetricsError(f"{path}: expected a mapping of models")
    targets: Targets = {}
    for model, kinds in raw.items():
        if not isinstance(kinds, dict):
            raise MetricsError(f"{path}: {model}: expected a mapping of metrics kinds")
        for kind, data in kinds.items():
            if kind not in SCHEMAS:
                raise MetricsError(f"{path}: {model}.{kind}: unknown metrics kind (known: {', '.join(SCHEMAS)})")
            targets.setdefault(model, {})[kind] = validate(data, SCHEMAS[kind], f"{path}: {model}.{kind}",
                                                           partial=True)
    return targets


def target_files(targets: Targets, metrics_dir: str = "metrics") -> dict[str, dict[str, Any]]:
    """The targets as metrics files: ``{"metrics/<model>/<kind>.json": data}``."""
    return {f"{metrics_dir}/{model}/{kind}.json": to_json(data)
            for model, kinds in targets.items() for kind, data in kinds.items()}
