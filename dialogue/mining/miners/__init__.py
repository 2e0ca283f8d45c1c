"""The miners of `agora mine`, one module each. A module registers what it defines in its own
`MINERS` dict (name -> Miner); this package gathers them, so adding a miner touches its module,
its YAML (`conf/miner/`), its tests and docs, and nothing else."""

from __future__ import annotations

import importlib
import pkgutil

from dialogue.mining.miner import Miner

MINERS: dict[str, Miner] = {}
for _module in pkgutil.iter_modules(__path__):
    MINERS.update(importlib.import_module(f"{__name__}.{_module.name}").MINERS)
