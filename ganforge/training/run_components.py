"""What a run trains, built from its resolved config: the dataset, the networks on the device, the loss, the
augmentations.

Memory is weighed before each large part is built (the dataset where its params tell its size,
then the networks estimated on the meta device), so a run that cannot fit is refused with the
estimate rather than killed part-way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganforge.config import ResolvedRun
from ganforge.contracts import Augmentation, GANLoss, GANModels, LoadedDataset
from ganforge.data_root import default_data_root
from ganforge.guards.machine import check_memory


@dataclass
class Components:
    data: LoadedDataset
    models: GANModels  # on the training device
    loss: GANLoss
    augmentations: list[Augmentation]  # in order, on every image D sees


def build_components(run: ResolvedRun, device: torch.device) -> Components:
    check_memory(run, device)  # the dataset, where its params tell its size
    data = run.data.build(default_data_root())
    check_memory(run, device, data)  # the models, estimated on the meta device
    models = run.model.build(data.spec)
    models.generator.to(device)  # Module.to moves the parameters in place
    models.discriminator.to(device)
    augmentations = [chosen.build() for chosen in run.augmentations]
    return Components(data=data, models=models, loss=run.loss.build(), augmentations=augmentations)
