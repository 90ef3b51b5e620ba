"""The hooks ganforge calls, through the entry point ``[project.entry-points.ganforge] sngan``."""

from __future__ import annotations

from ganforge import Register, hookimpl
from ganforge_sngan.relativistic import Relativistic, RelativisticParams
from ganforge_sngan.sngan import SNGANParams, build_sngan


@hookimpl
def register_architectures(register: Register) -> None:
    register("sngan", build_sngan, params=SNGANParams)


@hookimpl
def register_losses(register: Register) -> None:
    register("relativistic", Relativistic, params=RelativisticParams, aliases=["ragan"])
