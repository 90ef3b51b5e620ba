"""Batches for the training loop: from a dataset held on the device, from a memory-mapped one, or through a
DataLoader.

All draw one permutation of the dataset per epoch from the run's data generator, which is the
same in every process. Step ``s`` takes the ``s``-th slice of ``batch_size`` images of it (the
global batch); in a distributed run each process takes its equal share of that slice. So every
image is taken exactly once per epoch across all processes, with one exception: a last batch is
trimmed to a multiple of the process count and dropped when fewer than two images per process
would remain (batch norm cannot train on one sample); those few images sit the epoch out.

An :class:`ImageTensorDataset` is copied whole to the device and batches are gathered there. A
:class:`MappedImageDataset` never is: a background thread gathers each batch from the map a few
steps ahead (prefetch.py), in pinned memory for a CUDA device, and the step copies it over. The
batches are the same either way, bit for bit, for the same data and seed.

Each batch is ``(images, labels)``: float images in [-1, 1] and int64 labels ``[B]``, both on the
device. For a conditional model (``num_classes`` given) the labels are checked against the class
count before they reach it: all at once for a dataset whose labels are in memory, batch by batch
on the host otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from ganforge.contracts import ImageTensorDataset, LoadedDataset, MappedImageDataset, check_labels, to_signed_unit
from ganforge.errors import DataError, UsageError
from ganforge.guards.memory import device_free_bytes
from ganforge.training.distributed import Processes
from ganforge.training.prefetch import Prefetched

# Batches a mapped dataset's thread gathers ahead of the step: enough to hide one slow read, few
# enough that the pinned buffers stay small.
PREFETCH_BATCHES = 3
# A mapped dataset that may be copied to the GPU is, while it takes at most this share of the free GPU memory.
GPU_SHARE = 0.5

Batch = tuple[torch.Tensor, torch.Tensor]


def make_batches(
    data: LoadedDataset,
    batch_size: int,
    num_workers: int,
    seed: int,
    processes: Processes,
    num_classes: int | None = None,
) -> InMemoryBatches | MappedBatches | LoaderBatches:
    """This process's batches, drawn on the device where the dataset is held in memory, gathered in the
    background from a mapped one; labels checked against ``num_classes`` where a conditional model reads them."""
    dataset_size = len(data.dataset)
    if batch_size > dataset_size:
        raise UsageError(f"train.batch_size: {batch_size} is larger than the dataset ({dataset_size} images)")
    # The same permutation in every process: each takes its own share of every step's batch.
    data_generator = torch.Generator().manual_seed(seed)
    dataset = data.dataset
    mapped = isinstance(dataset, MappedImageDataset) and not copied_to_gpu(dataset, processes.device)
    in_memory = isinstance(dataset, ImageTensorDataset) and not mapped
    order = ShardedOrder(
        dataset_size,
        batch_size,
        data_generator,
        processes.rank,
        processes.world_size,
        device=processes.device if in_memory else torch.device("cpu"),
    )
    if isinstance(dataset, ImageTensorDataset):
        if num_classes is not None:
            checked_labels(dataset.labels, num_classes)
        if mapped:
            return MappedBatches(dataset, order, processes.device)
        return InMemoryBatches(dataset, order, processes.device)
    return LoaderBatches(data, order, processes.device, num_workers, num_classes)


def copied_to_gpu(dataset: MappedImageDataset, device: torch.device) -> bool:
    """Whether a mapped dataset that allows it is copied whole to the GPU: where it takes at most a share of
    the GPU's free memory, leaving the rest to the networks."""
    if not dataset.copy_to_gpu or device.type != "cuda":
        return False
    free = device_free_bytes(device)
    return free is not None and dataset.images.nbytes <= GPU_SHARE * free


def checked_labels(labels: torch.Tensor, num_classes: int) -> None:
    try:
        check_labels(labels, num_classes, "the dataset's labels")
    except ValueError as error:
        raise UsageError(f"{error}: a conditional model reads them as class indices") from None


class ShardedOrder:
    """The image indices this process takes at each step of an epoch, from a fresh permutation."""

    def __init__(
        self,
        count: int,
        batch_size: int,
        generator: torch.Generator,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | None = None,
    ):
        self.count = count
        self.device = device or torch.device("cpu")
        self.batch_size = batch_size
        self.generator = generator
        self.rank = rank
        self.world_size = world_size
        self.steps, self.last_batch = steps_per_epoch(count, batch_size, world_size)
        self.steps_taken = 0  # steps trained of the epoch in progress: a checkpoint may be saved mid-epoch
        # The generator's state from before this epoch's permutation: saved mid-epoch, a resume draws
        # the same permutation again and skips the steps already taken.
        self._epoch_start_state = generator.get_state()
        self._skip_steps = 0  # set by a resume mid-epoch: the next epoch starts after these steps

    def __len__(self) -> int:
        return self.steps

    def start_epoch(self) -> bool:
        """Before an epoch's batches are drawn; True for a fresh epoch, False for one a resume goes on with."""
        if self.steps_taken:
            return False
        self._epoch_start_state = self.generator.get_state()
        return True

    def step_taken(self) -> None:
        self.steps_taken += 1

    def images_shown(self, epochs_finished: int) -> int:
        """The real images shown to D so far, all processes together, after ``epochs_finished`` whole epochs and
        this one's steps: where the run stands decides it alone, so a resumed run counts as one never stopped."""
        per_epoch = (self.steps - 1) * self.batch_size + self.last_batch
        return epochs_finished * per_epoch + self.steps_taken * self.batch_size

    def finish_epoch(self) -> None:
        self.steps_taken = 0

    def state_dict(self) -> dict[str, Any]:
        """Where the run stands in the data: the steps taken of this epoch, and the generator's state to
        draw its permutation again (mid-epoch) or the next one (between epochs)."""
        data = self._epoch_start_state if self.steps_taken else self.generator.get_state()
        return {"epoch_step": self.steps_taken, "rng": {"data": data}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["rng"]["data"])
        self.steps_taken = self._skip_steps = state.get("epoch_step", 0)
        self._epoch_start_state = state["rng"]["data"]

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.count, generator=self.generator).to(self.device)
        first, self._skip_steps = self._skip_steps, 0
        for step in range(first, self.steps):
            start = step * self.batch_size
            size = self.batch_size if start + self.batch_size <= self.count else self.last_batch
            share = size // self.world_size
            begin = start + self.rank * share
            yield order[begin : begin + share]


class InMemoryBatches:
    """The whole dataset as one uint8 tensor on the device; batches drawn there by index."""

    def __init__(self, dataset: ImageTensorDataset, order: ShardedOrder, device: torch.device):
        self.images = dataset.images.to(device)
        self.labels = dataset.labels.to(device)
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Batch]:
        for indices in self.order:
            # index_select gathers rows about twice as fast as advanced indexing on a CPU.
            images = to_signed_unit(torch.index_select(self.images, 0, indices))
            yield images, torch.index_select(self.labels, 0, indices)


class MappedBatches:
    """A memory-mapped dataset, never copied whole: a background thread gathers each step's images from the
    map (their labels from memory) a few steps ahead; the step copies them to the device."""

    def __init__(
        self,
        dataset: MappedImageDataset,
        order: ShardedOrder,
        device: torch.device,
        prefetch: int = PREFETCH_BATCHES,
    ):
        self.images = dataset.images
        self.labels = dataset.labels
        self.file = MappedFile(dataset)
        self.order = order
        self.device = device
        self.prefetch = prefetch
        self.pinned = device.type == "cuda"  # a copy from pinned memory runs beside the step (non_blocking)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Batch]:
        self.file.check_whole()
        # The epoch's permutation is drawn here, in the caller's thread: the data generator is never
        # touched by the background thread, so a checkpoint reads its state as the in-memory path leaves it.
        steps = list(self.order)
        with Prefetched(self._gathered(steps), self.prefetch, name="ganforge-mapped-batches") as batches:
            for images, labels in batches:
                images = images.to(self.device, non_blocking=True)
                yield to_signed_unit(images), labels.to(self.device, non_blocking=True)

    def _gathered(self, steps: Sequence[torch.Tensor]) -> Iterator[Batch]:
        """Each step's uint8 images and labels on the host (in the background thread)."""
        row_shape = self.images.shape[1:]
        if self.pinned and self.device.index is not None:
            # A new thread's current GPU is the first: pinning from there would open a context on it in every process.
            torch.cuda.set_device(self.device)
        # In the permutation's order: gathering the indices sorted, for the disk's sake, and putting the rows
        # back in order measured slower, from a cold page cache as from a warm one.
        for indices in steps:
            images = torch.empty((len(indices), *row_shape), dtype=torch.uint8, pin_memory=self.pinned)
            torch.index_select(self.images, 0, indices, out=images)
            labels = torch.index_select(self.labels, 0, indices)
            yield images, labels.pin_memory() if self.pinned else labels


class MappedFile:
    """The file a mapped dataset reads, as it was when mapped: reading the map past the end of a file cut
    short kills the process (SIGBUS), which no handler can turn into an error, so each epoch looks first."""

    def __init__(self, dataset: MappedImageDataset) -> None:
        self.path = dataset.path
        self.size = dataset.images.nbytes
        status = self._status()
        self.file_id = None if status is None else (status.st_dev, status.st_ino)

    def _status(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except OSError:  # removed or renamed away: the map still holds the file it was made from
            return None

    def check_whole(self) -> None:
        status = self._status()
        if status is None or (status.st_dev, status.st_ino) != self.file_id:
            return  # another file at that path now (prepared again, say): the map still reads the old one
        if status.st_size < self.size:
            raise DataError(
                f"{self.path} is {status.st_size:,} bytes now, {self.size:,} when training began: something cut "
                "it short during the run; restore or prepare it again, then resume"
            )


class LoaderBatches:
    """Any other dataset, through a DataLoader that reads the indices of each step."""

    def __init__(
        self,
        loaded: LoadedDataset,
        order: ShardedOrder,
        device: torch.device,
        num_workers: int,
        num_classes: int | None = None,
    ):
        self.device = device
        self.order = order
        self.num_classes = num_classes
        self.loader = DataLoader(
            loaded.dataset,
            batch_sampler=IndexLists(order),
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            generator=order.generator,  # the workers' seeds come from the data generator, not the noise's
        )

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in self.loader:
            labels = torch.as_tensor(labels).to(torch.int64)
            if self.num_classes is not None:
                checked_labels(labels, self.num_classes)
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


class IndexLists:
    """A ShardedOrder as the lists of indices a DataLoader's batch_sampler yields."""

    def __init__(self, order: ShardedOrder) -> None:
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[list[int]]:
        for indices in self.order:
            yield indices.tolist()


def steps_per_epoch(count: int, batch_size: int, world_size: int = 1) -> tuple[int, int]:
    """Steps per epoch and the global size of the last one (``batch_size`` when all are full)."""
    full, remainder = divmod(count, batch_size)
    last = remainder - remainder % world_size
    if last >= 2 * world_size:
        return full + 1, last
    return full, batch_size
