"""Bounds on the built-in architectures' sizes.

Each is far above anything that trains, so a typo or a hostile config gets a message naming the
field instead of an overflow inside PyTorch; whether a network within them fits this machine is
for the memory estimate made before a run (ganforge/guards/machine.py).
"""

from typing import Annotated

from pydantic import Field

MAX_WIDTH = 65_536  # units of a layer, channels of a convolution
MAX_LATENT_DIM = 65_536
MAX_LAYERS = 64

Width = Annotated[int, Field(gt=0, le=MAX_WIDTH)]
