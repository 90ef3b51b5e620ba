"""Every convention a component may rely on or must provide, in one place, whoever provides it.

Code that relies on a convention refers to it here (a named constant, a documented helper, from
``conventions.py``). Each property a component's output must have is a predicate, defined once in
``predicates.py``, with the one error a broken contract raises, :class:`ContractViolation`: the
contract checks in ``ganforge.testing`` test on a component alone what can be tested there, and the
pre-flight check (``ganforge.guards.preflight``) tests the run's own components before it starts.

Noise and images
  - ``z ~ N(0, I)`` of shape ``[B, latent_dim]``, float32, drawn by ganforge (``torch.randn``) on
    the training device, never by a component. ``latent_dim`` is what the architecture's factory
    returned in :class:`GANModels`.
  - Images are float ``[B, C, H, W]`` in [-1, 1], channels first, ``(C, H, W)`` as the dataset's
    :class:`DataSpec` says. 8-bit data is kept as uint8 pixels in [0, 255]
    (:class:`ImageTensorDataset`); :func:`to_signed_unit` and :func:`to_uint8` convert between the
    two (exactly, for images that came from 8-bit data).

Architecture factory ``(params, data: DataSpec) -> GANModels``
  - The generator maps ``z: [B, latent_dim]`` to images ``[B, C, H, W]`` in [-1, 1], for any B >= 1.
  - The discriminator maps images ``[B, C, H, W]`` to raw scores of shape ``[B]``: logits, never
    probabilities (no sigmoid at the end): the loss owns sigmoid/softplus, where it is stable.
  - Conditional models set ``GANModels.num_classes`` (the data spec's ``num_classes``): ganforge
    then calls ``G(z, y)`` and ``D(x, y)`` with integer labels ``y: [B]`` (int64, on the images'
    device) in ``[0, num_classes)``, and draws the labels of generated images itself
    (``train.generated_labels``). A label out of range is refused with an error that says so, not
    an index error from deep inside. With ``class_logits`` set too, D returns ``(scores [B],
    class_logits [B, num_classes])``: the auxiliary classifier (ACGAN) that ganforge trains with
    cross-entropy beside the adversarial loss (``train.class_loss_weight``). Unconditional models
    (``num_classes`` None) are called without labels, as before; :func:`synthesize` and
    :func:`discriminate` call either kind.
  - Both are ``nn.Module``s that train and evaluate (``.train()``/``.eval()``), round-trip through
    ``state_dict`` and build the same weights from the same ``torch.manual_seed``. The training
    step may wrap them (DistributedDataParallel, torch.compile) and feed them channels_last
    tensors under autocast; penalties and sampling call the plain modules. ganforge samples in
    eval mode under ``torch.no_grad``, ``SAMPLE_CHUNK`` (generation.py) images per call.
  - The factory may be called inside ``torch.device("meta")`` to weigh the models before training
    (nothing allocated, no random numbers drawn); where it cannot build there, the estimate is
    skipped, which is not an error.

Loss factory ``(params) -> GANLoss``
  - ``discriminator_loss(real_scores, fake_scores)`` and ``generator_loss(fake_scores)`` take raw
    discriminator scores ``[B]`` (float32, whatever the precision of the forward passes), never
    probabilities, and return a scalar tensor.
  - A loss that sets ``generator_reads_real_scores = True`` (relativistic losses) is called as
    ``generator_loss(fake_scores, real_scores)``: ``real_scores`` are D's scores, at its current
    weights and without gradients, of the step's real batch, as many as the generated ones.
  - ``penalty(discriminator, real, fake)`` returns a regulariser added to D's loss, or None; it is
    a mean over samples (``ganforge.r1_penalty``, ``ganforge.gradient_penalty``) and receives the
    plain discriminator (it may differentiate twice) and ``fake`` still attached to G's graph.
  - ``probability(scores)`` is elementwise (any shape), or returns None where the objective has no
    probability; ``decision_threshold`` is the score above which D calls an image real, or None.
  - A loss whose params a schedule may drive (``schedules: {loss.params.r1_gamma: ...}``) keeps the
    params it was built with as ``self.params`` and reads the driven fields from it when called:
    before each step the trainer sets ``loss.params`` to a copy holding the scheduled values.

Dataset factory ``(params, root: Path) -> LoadedDataset``
  - Items are ``(image, label)``: a float32 image of ``spec.shape`` in [-1, 1] and an int label in
    ``[0, spec.num_classes)`` (any int, e.g. 0, where ``num_classes`` is None). The dataset is not
    empty, has a stable length, gives the same items for the same params, and pickles (DataLoader
    workers). Data that fits in memory is best an :class:`ImageTensorDataset`: the trainer then
    keeps it on the device and indexes batches there. Data in a raw uint8 file is best a
    :class:`MappedImageDataset` (made by :func:`map_images`): the trainer gathers each batch from
    the map in the background, so a set larger than memory trains without per-item Python.
  - ``root`` is the data root ganforge resolved ($GANFORGE_DATA or the user cache); a dataset
    with a ``root`` param of its own lets that override it.
  - Optional params that ganforge reads by name (``evaluation/domain_split.py``), each only where the
    dataset's params model has a field of that name (:func:`declares_param`):

    ``split`` (:data:`SPLIT_PARAM`): which part of the dataset to load. Where the params model
    accepts ``"test"`` (:data:`TEST_SPLIT`), evaluation builds the dataset twice, with
    ``"train"`` (:data:`TRAIN_SPLIT`, which it must then accept too) for the training side and
    ``"test"`` for the held-out images that generated ones are compared with. A ``split`` field
    that refuses ``"test"``, or none at all: the dataset is built once and a fixed, seeded sixth
    of it is held out (``HELD_OUT_FRACTION``, ``PARTITION_SEED`` in evaluation/domain_split.py).

    ``limit`` (:data:`LIMIT_PARAM`): train on a subset. It must accept None
    (:data:`ALL_IMAGES`), meaning every image: evaluation measures against the whole dataset, so
    it builds with ``limit: None``, whatever the config says.

    ``download`` (:data:`DOWNLOAD_PARAM`): whether missing files may be fetched. The contract
    checks build with ``download: False``, so that checking a component never downloads.
  - Optional methods of the params model, read before loading (:func:`estimate_of`):
    ``data_spec() -> DataSpec`` and ``loading_bytes() -> int``, the images the dataset will give
    and the most memory loading takes. Without them, nothing of the dataset is weighed before it loads.
  - A dataset whose channels are images of another dataset (Stacked MNIST: three MNIST digits as R, G
    and B) may set ``LoadedDataset.channel_classifier`` (:class:`ChannelClassifier`): evaluation then
    reads each channel with that dataset's domain classifier (the same cached network) instead of
    training one of its own.

Metric factory ``(params) -> GANMetric``
  - A metric compares two image sets as a feature network sees them (:class:`FeatureSet`:
    features ``[N, D]``, class probabilities ``[N, K]`` or None, logits where the network gives
    them); ``GANMetric.feature_network`` names the network ("domain" or "inception"). ganforge
    extracts each network's features once for all metrics, from images quantised to 8 bits, and
    records the protocol (feature networks, sample counts, splits) beside the scores.
  - ``compute`` returns a float for every name in ``goals`` (and no other); no two metrics of one
    evaluation may report the same name. ``Goal`` says which way each value gets better and what
    two identical sets score. ``sample_needs()`` is the fewest images ``compute`` takes: ganforge
    never calls it with fewer.

Schedule factory ``(params) -> Schedule``
  - ``schedule(images) -> float`` depends on ``images`` (the real images shown to D so far, all
    processes together) alone; ``extremes()`` is the least and greatest value it ever returns.

Every factory
  - takes its params already validated by the params model it registered (best a :class:`Params`
    subclass: unknown keys are errors, values frozen; the contract checks want a default for every
    field), and returns its kind's type above, or it is an error naming the plugin
    (:func:`contract_problem`). Params that cannot take the data raise ``ParamsError``.
"""

from ganforge.contracts.conventions import (
    ALL_IMAGES,
    DOWNLOAD_PARAM,
    FEATURE_NETWORKS,
    LIMIT_PARAM,
    MAX_SEED,
    SPLIT_PARAM,
    TEST_SPLIT,
    TRAIN_SPLIT,
    Augmentation,
    ChannelClassifier,
    DataSpec,
    FeatureNetworkName,
    FeatureSet,
    GANLoss,
    GANMetric,
    GANModels,
    Goal,
    ImageTensorDataset,
    LabelledDiscriminator,
    LoadedDataset,
    LoggerOutcome,
    MappedImageDataset,
    NoParams,
    Params,
    RunLogger,
    SampleNeeds,
    Schedule,
    declares_param,
    discriminate,
    discriminator_output,
    estimate_of,
    generator_loss_of,
    map_images,
    synthesize,
    to_signed_unit,
    to_uint8,
)
from ganforge.contracts.predicates import (
    CONTRACT_TYPES,
    CONTRACTS,
    ContractViolation,
    all_finite,
    are_class_logits,
    are_scores,
    are_scores_and_class_logits,
    check_labels,
    contract_problem,
    describe_value,
    has_shape,
    in_signed_unit,
    is_differentiable,
    is_scalar,
    labels_in_range,
    require,
    value_range,
)

__all__ = [
    "ALL_IMAGES",
    "CONTRACTS",
    "CONTRACT_TYPES",
    "DOWNLOAD_PARAM",
    "FEATURE_NETWORKS",
    "LIMIT_PARAM",
    "MAX_SEED",
    "SPLIT_PARAM",
    "TEST_SPLIT",
    "TRAIN_SPLIT",
    "Augmentation",
    "ChannelClassifier",
    "ContractViolation",
    "DataSpec",
    "FeatureNetworkName",
    "FeatureSet",
    "GANLoss",
    "GANMetric",
    "GANModels",
    "Goal",
    "ImageTensorDataset",
    "LabelledDiscriminator",
    "LoadedDataset",
    "LoggerOutcome",
    "MappedImageDataset",
    "NoParams",
    "Params",
    "RunLogger",
    "SampleNeeds",
    "Schedule",
    "all_finite",
    "are_class_logits",
    "are_scores",
    "are_scores_and_class_logits",
    "check_labels",
    "contract_problem",
    "declares_param",
    "describe_value",
    "discriminate",
    "discriminator_output",
    "estimate_of",
    "generator_loss_of",
    "has_shape",
    "in_signed_unit",
    "is_differentiable",
    "is_scalar",
    "labels_in_range",
    "map_images",
    "require",
    "synthesize",
    "to_signed_unit",
    "to_uint8",
    "value_range",
]
