"""What a run will need of this machine, checked before anything large is allocated: memory above all.

The models are built once on PyTorch's meta device, which records every shape and allocates
nothing, so their size is known for any architecture, a third party's too; a factory that cannot
build there is simply not estimated. A dataset's params model may say, before loading, what images
it yields (``data_spec()``) and the most memory loading takes (``loading_bytes()``); the built-in
synthetic dataset does. The estimates leave out activations, so they are lower bounds: a run they
refuse could never have fitted. :func:`machine_warnings` says, for ``ganforge validate``, what a
run of a valid config would be refused on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganforge.config import ResolvedRun
from ganforge.config.resolve import data_spec_before_loading, networks_on_meta
from ganforge.contracts import DataSpec, ImageTensorDataset, LoadedDataset, MappedImageDataset, estimate_of
from ganforge.data_root import default_cache_dir
from ganforge.devices import resolve_device
from ganforge.errors import UsageError
from ganforge.guards.memory import available_bytes, device_free_bytes, readable_bytes
from ganforge.training.batches import copied_to_gpu
from ganforge.training.run_loggers import build_logger

FLOAT32_BYTES = 4
OPTIMIZER_COPIES = 3  # per trainable parameter: its gradient and Adam's two moments


@dataclass(frozen=True)
class Need:
    """Memory one part of a run holds at once: on the host, and on a CUDA GPU it trains on (the CPU
    and Apple's GPU share the host's memory)."""

    what: str
    settings: str  # where the config sets its size
    host: int = 0
    gpu: int = 0


def check_memory(run: ResolvedRun, device: torch.device, data: LoadedDataset | None = None) -> None:
    """Refuse a run whose dataset or models cannot fit here, with the estimate, before they are allocated.

    Called twice by the trainer: before the dataset is loaded (``data`` None: the dataset, where its
    params tell), and after, before the models are built (the models, evaluation's buffers and the
    dataset's copy on a GPU).
    """
    if data is None:
        needs = [need for need in (dataset_need(run),) if need is not None]
    else:
        needs = models_needs(run, data.spec, device)
        needs += [need for need in (dataset_copy_need(run, data, device),) if need is not None]
    problem = shortfall(needs, device)
    if problem is not None:
        raise UsageError(problem)


def machine_warnings(run: ResolvedRun) -> list[str]:
    """What ``ganforge run`` would refuse on this machine in a valid config: a device it lacks, too
    little memory. ``ganforge validate`` prints them as warnings: a config is often written on one
    machine and run on another. The config's own rules are asked before, by
    ``config.resolve.check_with_built_components``."""
    warnings = []
    try:
        device = resolve_device(run.config.train.device)
    except UsageError as error:
        warnings.append(f"{error}; `ganforge run` would refuse this config on this machine")
        device = None
    needs = [need for need in (dataset_need(run),) if need is not None]
    spec = data_spec_before_loading(run)
    if spec is not None and device is not None:
        needs += models_needs(run, spec, device)
    problem = shortfall(needs, device or torch.device("cpu"))
    if problem is not None:
        warnings.append(f"{problem}; `ganforge run` would refuse this config on this machine")
    inception = inception_problem(run)
    if inception is not None:
        warnings.append(inception)
    for logger in run.loggers:
        try:
            failure = build_logger(logger)[1]
        except UsageError as error:  # its package is not installed here
            warnings.append(f"output.loggers: {error}; `ganforge run` would refuse this config on this machine")
            continue
        if failure:
            warnings.append(f"output.loggers: {failure}; `ganforge run` would go on without it")
    return warnings


def inception_problem(run: ResolvedRun) -> str | None:
    """What the run's Inception metrics (where it evaluates with any) lack on this machine, in words."""
    metrics = [chosen.component.name for chosen in run.metrics if chosen.build().feature_network == "inception"]
    if not run.config.eval.every or not metrics:
        return None
    from ganforge.evaluation.inception import readiness_problem

    problem = readiness_problem(default_cache_dir())
    return f"eval.metrics {', '.join(metrics)}: {problem}" if problem is not None else None


# -- estimates -----------------------------------------------------------------------------------


def dataset_need(run: ResolvedRun) -> Need | None:
    size = estimate_of(run.data.params, "loading_bytes", int)
    if size is None:
        return None
    return Need(f"the dataset {run.data.component.name} while it loads", "data.params", host=size)


def dataset_copy_need(run: ResolvedRun, data: LoadedDataset, device: torch.device) -> Need | None:
    """A dataset held in memory is copied whole to a GPU, where batches are drawn. A mapped one is not, unless
    it allows it and fits (its batches are gathered from the file as the run goes), nor is its host memory the
    run's: the page cache holds what was read, and gives it back when the memory is wanted."""
    if device.type == "cpu" or not isinstance(data.dataset, ImageTensorDataset):
        return None
    if isinstance(data.dataset, MappedImageDataset) and not copied_to_gpu(data.dataset, device):
        return None  # only its labels go over, a few bytes an image
    dataset = data.dataset
    size = dataset.images.nbytes + dataset.labels.nbytes
    what = f"the dataset {run.data.component.name} on {device}"
    return Need(what, "data.params", gpu=size) if device.type == "cuda" else Need(what, "data.params", host=size)


def models_needs(run: ResolvedRun, spec: DataSpec, device: torch.device) -> list[Need]:
    """The generator's and discriminator's weights, gradients and Adam's state (and an EMA copy of G);
    with evaluation during training, its noise and generated images too.

    The architecture is built on the meta device, which allocates nothing; where it cannot be built
    there, nothing is estimated. A GanforgeError from the factory (params that cannot take this data)
    is raised: the real build would raise it too.
    """
    models = networks_on_meta(run, spec)
    if models is None:  # this factory does something the meta device cannot: no estimate, as before
        return []
    generator, discriminator = models.generator, models.discriminator
    weights = _tensor_bytes(generator) + _tensor_bytes(discriminator)
    trainable = _trainable_bytes(generator) + _trainable_bytes(discriminator)
    parameters = _count(generator) + _count(discriminator)
    latent_dim = int(models.latent_dim)
    ema = _tensor_bytes(generator) if run.config.keeps_ema() else 0
    what = (
        f"the models ({parameters:,} parameters, with gradients and Adam's state"
        f"{' and an EMA copy of G' if ema else ''})"
    )
    training = weights + OPTIMIZER_COPIES * trainable + ema
    if device.type == "cuda":  # built on the host, then moved
        needs = [Need(what, "model.params", host=weights, gpu=training)]
    else:
        needs = [Need(what, "model.params", host=training)]
    evaluation = run.config.eval
    if evaluation.every:  # the fixed evaluation noise, and the images generated from it, on the host
        images = evaluation.samples * (latent_dim + spec.channels * spec.height * spec.width) * FLOAT32_BYTES
        needs.append(Need(f"evaluation's {evaluation.samples:,} generated images", "eval.samples", host=images))
    return needs


def _tensor_bytes(module: nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def _trainable_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- what this machine has -----------------------------------------------------------------------


def shortfall(needs: list[Need], device: torch.device) -> str | None:
    """A message when the needs exceed what the host or the GPU has free; None when they fit or
    when what is free cannot be read here."""
    places = [("host", "host memory", available_bytes())]
    if device.type == "cuda":
        places.append(("gpu", f"{device} memory", _device_free_bytes(device)))
    for side, place, available in places:
        parts = [need for need in needs if getattr(need, side)]
        needed = sum(getattr(need, side) for need in parts)
        if available is None or needed <= available:
            continue
        described = "; ".join(f"{need.what}: {readable_bytes(getattr(need, side))}" for need in parts)
        settings = " or ".join(dict.fromkeys(need.settings for need in parts))
        return (
            f"not enough memory: this run needs at least {readable_bytes(needed)} of {place} before any activations "
            f"({described}), but {readable_bytes(available)} is available; make it smaller ({settings})"
        )
    return None


def _device_free_bytes(device: torch.device) -> int | None:
    try:
        return device_free_bytes(device)
    except Exception:  # a driver that cannot be asked: no estimate
        return None
