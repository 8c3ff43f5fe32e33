"""ms-swift plugin for ZeRO-3 with several CPU processes: join their process group through DeepSpeed.

Loaded with ``--external_plugins`` (only when training on CPU with more than one rank; see
:func:`gelab.train.command.cpu_ranks_args`). ms-swift imports plugins before it builds the model.

Why it is needed: with several ranks on a machine without GPUs, transformers (``--use_cpu true``)
creates a gloo process group itself, but DeepSpeed only learns the world size from its own
``deepspeed.comm``. ``zero.Init`` builds its config before it initialises ``deepspeed.comm``, so the
config sees one rank and rejects the batch size (``train_batch_size ... != micro_batch * grad_acc *
world_size``). Initialising ``deepspeed.comm`` with gloo first gives both the same group.
"""

from __future__ import annotations

import os


def join_cpu_process_group() -> None:
    """Initialise ``deepspeed.comm`` with gloo in a multi-rank launch without GPUs (else nothing)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch

    if torch.cuda.is_available():
        return
    from deepspeed import comm

    if not comm.is_initialized():
        comm.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)


join_cpu_process_group()
