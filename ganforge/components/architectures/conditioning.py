"""Class conditioning for the built-in architectures: the classic designs, as options of their params.

- ``concat`` (Mirza & Osindero 2014): a learned embedding of the label joins the input: the noise
  vector in G; the image in D (as constant feature maps, or appended to the flattened image).
- ``batch_norm`` (generator; Dumoulin et al. 2017, de Vries et al. 2017, as in Miyato & Koyama
  2018's generator): each batch norm's gain and bias are the label's own.
- ``projection`` (discriminator; Miyato & Koyama 2018): the score gains the inner product of the
  label's embedding with D's last features, ``score = linear(h) + <embed(y), h>``.
- ``classifier`` (discriminator; ACGAN, Odena et al. 2017): D reads no label but also returns class
  logits, which ganforge trains with cross-entropy beside whichever adversarial loss the config names
  (``train.class_loss_weight``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ganforge.contracts import DataSpec, check_labels
from ganforge.errors import ParamsError

GeneratorConditioning = Literal["none", "concat", "batch_norm"]
DiscriminatorConditioning = Literal["none", "concat", "projection", "classifier"]

GENERATOR_CONDITIONING = Field(
    default="none",
    description="How the generator reads the class label: 'none' (unconditional); 'concat': a learned label "
    "embedding concatenated with z (Mirza & Osindero 2014); 'batch_norm': conditional batch norm, a gain and bias "
    "per class (as in Miyato & Koyama 2018's generator). Needs a dataset with classes, and a conditional "
    "discriminator_conditioning.",
)
DISCRIMINATOR_CONDITIONING = Field(
    default="none",
    description="How the discriminator uses the class label: 'none' (unconditional); 'concat': a learned label "
    "embedding joins the image (Mirza & Osindero 2014); 'projection': score + <embed(y), features> (Miyato & "
    "Koyama 2018); 'classifier': an auxiliary classifier head whose cross-entropy trains both networks (ACGAN, "
    "Odena et al. 2017; weight train.class_loss_weight). Needs a conditional generator_conditioning.",
)
LABEL_EMBEDDING_DIM = Field(
    default=16,
    gt=0,
    le=4096,
    description="Size of the label embedding that 'concat' conditioning joins to z or to the image.",
)


def conditioning_classes(
    architecture: str,
    generator: GeneratorConditioning,
    discriminator: DiscriminatorConditioning,
    data: DataSpec,
) -> int | None:
    """The classes the networks are conditioned on (None: unconditional); ParamsError where the choice cannot work."""
    if generator == "none" and discriminator == "none":
        return None
    if generator == "none" or discriminator == "none":
        raise ParamsError(
            f"architecture {architecture!r}: generator_conditioning {generator!r} with discriminator_conditioning "
            f"{discriminator!r}: a conditional GAN conditions both networks; set both (or both to 'none' for an "
            "unconditional GAN)"
        )
    if data.num_classes is None:
        raise ParamsError(
            f"architecture {architecture!r}: class conditioning needs a dataset with classes, and this one has none "
            "(its DataSpec's num_classes is None); set generator_conditioning and discriminator_conditioning to 'none'"
        )
    return data.num_classes


class ClassEmbedding(nn.Module):
    """A learned vector per class, refusing labels out of range with a message that says so."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes, dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        # The range check reads the labels on the host (a sync on a GPU, a graph break when compiled); the
        # training step's labels are checked where they enter, so a compiled step skips it.
        if not torch.compiler.is_compiling():
            check_labels(labels, self.num_classes)
        return self.embedding(labels)


GAIN_INIT_STD = 0.02


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine parameters, then the label's gain and bias.

    Gains start at N(1, 0.02) and biases at 0, as DCGAN initialises batch norm: near the identity,
    but each class already its own, so that a label changes the image from the first step.
    """

    def __init__(self, features: int, num_classes: int, spatial: bool) -> None:
        super().__init__()
        norm = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        self.norm = norm(features, affine=False)
        self.gain = ClassEmbedding(num_classes, features)
        self.bias = ClassEmbedding(num_classes, features)
        nn.init.normal_(self.gain.embedding.weight, mean=1.0, std=GAIN_INIT_STD)
        nn.init.zeros_(self.bias.embedding.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        return self.norm(x) * self.gain(labels).view(shape) + self.bias(labels).view(shape)


def run_layers(layers: nn.Sequential, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """A Sequential whose conditional batch norms also read the labels."""
    for layer in layers:
        x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm) else layer(x)
    return x


def require_labels(labels: torch.Tensor | None, role: str) -> torch.Tensor:
    if labels is None:
        raise ValueError(f"this {role} is class-conditional: call it with labels, {role}(..., y) with y an int64 [B]")
    return labels


def conditional_generate(
    layers: nn.Sequential, z: torch.Tensor, labels: torch.Tensor | None, label_embedding: ClassEmbedding | None
) -> torch.Tensor:
    """A conditional generator's layers on z (joined by the label's embedding with 'concat') and the labels."""
    labels = require_labels(labels, "generator")
    if label_embedding is not None:
        z = torch.cat([z, label_embedding(labels)], dim=1)
    return run_layers(layers, z, labels)


def label_heads(
    conditioning: DiscriminatorConditioning, num_classes: int | None, features: int
) -> tuple[ClassEmbedding | None, nn.Linear | None]:
    """A discriminator's projection embedding ('projection') or class head ('classifier') on its last features."""
    if num_classes is None:
        return None, None
    if conditioning == "projection":
        projection = ClassEmbedding(num_classes, features)
        # As a linear layer from the features would start (nn.Embedding's N(0, 1) would make <embed(y), h>
        # dwarf the score at first, sqrt(features) times too large).
        bound = features**-0.5
        nn.init.uniform_(projection.embedding.weight, -bound, bound)
        return projection, None
    if conditioning == "classifier":
        return None, nn.Linear(features, num_classes)
    return None, None


def conditional_judge(
    layers: nn.Sequential,
    x: torch.Tensor,
    labels: torch.Tensor,
    projection: ClassEmbedding | None,
    class_head: nn.Linear | None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """A conditional discriminator's layers, whose last one scores the features ``h`` before it: the score, plus
    ``<embed(y), h>`` with a projection, or with the class logits beside it with a class head."""
    *body, head = layers
    for layer in body:
        x = layer(x)
    scores = head(x).squeeze(-1)
    if projection is not None:
        return scores + (projection(labels) * x).sum(dim=1)
    if class_head is not None:
        return scores, class_head(x)
    return scores
