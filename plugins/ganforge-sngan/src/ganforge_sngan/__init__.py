"""ganforge-sngan: the SNGAN ResNet architecture and the relativistic loss, as a ganforge plugin."""

from importlib.metadata import PackageNotFoundError, version

from ganforge_sngan.relativistic import Relativistic, RelativisticParams
from ganforge_sngan.sngan import SNGANParams, build_sngan

try:
    __version__ = version("ganforge-sngan")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["Relativistic", "RelativisticParams", "SNGANParams", "__version__", "build_sngan"]
