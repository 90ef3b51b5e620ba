"""An export's manifest, ganforge.json, as a typed model: every field ``sample`` and ``eval`` read, checked once.

An export is made to be handed to someone else, so its manifest is read as a hostile file would
be: through documents.py's bounded reader (a regular file, no link, at most ``MANIFEST_LIMIT``
bytes, nested at most ``MAX_DEPTH`` deep), then against :class:`ExportManifest`, strictly (a
number where a name belongs is refused, not converted) and with every size bounded before
anything is built from it. A wrong field is named with the file: ``export manifest F is not
valid: data_spec.shape: ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from ganforge.checkpoints.fields import ConfigFields, DataSpecFields, SavedGenerator
from ganforge.documents import read_json_document
from ganforge.errors import GanforgeError

EXPORT_FORMAT = "ganforge-export"
EXPORT_VERSION = 1
MANIFEST = "ganforge.json"
WEIGHTS = "generator.safetensors"
# The manifest holds a config, a data spec and an evaluation's record: a few KiB. A mebibyte is far above any.
MANIFEST_LIMIT = 1 << 20
MAX_LATENT_DIM = 1 << 20  # far above any generator's noise; what sample allocates per image

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ExportError(GanforgeError):
    """An export folder that cannot be read: damaged, altered, or of another format."""


class _Record(BaseModel):
    # strict: a step of "3" or 2.0, a name that is a number, are refused; unknown keys too: ganforge wrote them all.
    model_config = ConfigDict(strict=True, extra="forbid")


class ArchitectureRecord(_Record):
    """The plugin that builds the generator: the architecture's name, its distribution and that one's version."""

    name: str
    distribution: str
    version: str


class ScoresRecord(_Record):
    """The run's evaluation at the exported step: each value, the real floor's, and how they were measured."""

    epoch: NonNegativeInt
    step: NonNegativeInt
    values: dict[str, float | None]
    floor: dict[str, float | None]
    protocol: dict[str, Any]


class ExportedFiles(_Record):
    weights: Sha256 = Field(alias=WEIGHTS)


class ExportManifest(_Record):
    """ganforge.json, as ``exports.export_manifest`` writes it."""

    format: Literal["ganforge-export"]
    version: Literal[1]
    ganforge_version: str
    trained_with_ganforge: str | None
    architecture: ArchitectureRecord
    generator: Literal["ema", "generator"]
    epoch: NonNegativeInt
    step: NonNegativeInt
    latent_dim: Annotated[int, Field(gt=0, le=MAX_LATENT_DIM)]
    num_classes: Annotated[int, Field(gt=0)] | None
    data_spec: DataSpecFields
    config: ConfigFields
    scores: ScoresRecord | None
    files: ExportedFiles

    @model_validator(mode="after")
    def _consistent(self) -> ExportManifest:
        if self.architecture.name != self.config.model.name:
            raise ValueError(
                f"architecture.name is {self.architecture.name!r}, but config.model.name is {self.config.model.name!r}"
            )
        if self.num_classes is not None and self.num_classes != self.data_spec.num_classes:
            raise ValueError(
                f"num_classes is {self.num_classes}, but data_spec.num_classes is {self.data_spec.num_classes}"
            )
        return self

    def saved_generator(self) -> SavedGenerator:
        """What sample and eval read of it, as they read it of a checkpoint."""
        return SavedGenerator(
            config=self.config,
            data_spec=self.data_spec,
            epoch=self.epoch,
            step=self.step,
            ganforge_version=self.trained_with_ganforge,
        )


def read_manifest(path: Path) -> ExportManifest:
    """The manifest at ``path``, or an ExportError naming the file and each wrong field."""
    return read_json_document(path, ExportManifest, what="export manifest", limit=MANIFEST_LIMIT, error=ExportError)
