"""DiffAugment's ops against hand computations, and ADA's strength on a discriminator that overfits."""

from __future__ import annotations

import pytest
import torch

from ganforge.components.augmentations import (
    Colour,
    Cutout,
    CutoutParams,
    Translation,
    TranslationParams,
    adjust_colour,
    cut_out,
    translate,
)
from ganforge.contracts import Augmentation, NoParams
from ganforge.registry import Kind
from ganforge.testing import check_component, isolated_registry
from ganforge.training.adaptive import AdaptiveStrength
from tests.plugin_fixtures import plugin_module

BUILT_INS = {
    "translation": lambda: Translation(TranslationParams()),
    "cutout": lambda: Cutout(CutoutParams()),
    "colour": lambda: Colour(NoParams()),
}


def numbered(batch=2, channels=1, side=4):
    return torch.arange(batch * channels * side * side, dtype=torch.float32).view(batch, channels, side, side)


def test_translate_moves_each_image_by_its_shift_and_fills_with_zero():
    images = numbered()
    moved = translate(images, torch.tensor([[1, 0], [0, -2]]))
    first, second = images[0, 0], images[1, 0]
    assert torch.equal(moved[0, 0, 0], torch.zeros(4)) and torch.equal(moved[0, 0, 1:], first[:3])
    assert torch.equal(moved[1, 0, :, :2], second[:, 2:]) and torch.equal(moved[1, 0, :, 2:], torch.zeros(4, 2))


def test_cut_out_zeroes_the_square_around_each_centre():
    images = torch.ones(2, 3, 5, 5)
    holed = cut_out(images, torch.tensor([[2, 2], [0, 4]]), size=2)
    expected = torch.ones(2, 5, 5)
    expected[0, 1:3, 1:3] = 0
    expected[1, 0:1, 3:5] = 0  # the square's top row would be row -1: clipped by the border
    assert torch.equal(holed, expected.unsqueeze(1).expand(2, 3, 5, 5))


def test_adjust_colour_by_hand():
    # Two pixels of three channels: (0.2, -0.4, 0.5) and (0, 0, 0).
    image = torch.tensor([[0.2, 0.0], [-0.4, 0.0], [0.5, 0.0]]).view(1, 3, 1, 2)
    out = adjust_colour(image, torch.tensor([0.1]), torch.tensor([2.0]), torch.tensor([0.5]))
    # +0.1: (0.3, -0.3, 0.6), (0.1, 0.1, 0.1); saturation x2 about each pixel's mean (0.2, 0.1):
    # (0.4, -0.8, 1.0), (0.1, 0.1, 0.1); contrast x0.5 about the image's mean 0.15:
    expected = torch.tensor([[0.275, 0.125], [-0.325, 0.125], [0.575, 0.125]]).view(1, 3, 1, 2)
    assert torch.allclose(out, expected)


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_shape_kept_identity_at_zero_and_gradients_reach_the_images(name):
    augmentation = BUILT_INS[name]()
    images = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_()
    assert augmentation(images, 0.0) is images
    out = augmentation(images, 1.0, torch.Generator().manual_seed(1))
    assert out.shape == images.shape
    out.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_same_generator_state_same_transformation(name):
    augmentation = BUILT_INS[name]()
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    first = augmentation(images, 1.0, torch.Generator().manual_seed(3))
    again = augmentation(images, 1.0, torch.Generator().manual_seed(3))
    other = augmentation(images, 1.0, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_strength_is_the_share_of_images_transformed():
    images = torch.rand(4000, 1, 8, 8) + 1  # all positive: a cut-out image has zeros
    holed = Cutout(CutoutParams())(images, 0.3, torch.Generator().manual_seed(0))
    share = (holed == 0).flatten(1).any(1).float().mean().item()
    assert abs(share - 0.3) < 0.03


class OneProcess:
    def sum(self, values):
        return values


def test_ada_strength_rises_while_d_overfits_and_falls_when_it_does_not():
    ada = AdaptiveStrength(target=0.6, interval=4, ramp_images=1000, strength=0.0)
    sure = torch.full((10,), 3.0)  # every real image called real: r_t = 1
    for _ in range(4):
        assert not ada.adjust(OneProcess())  # not due before the fourth step
        ada.observe(sure)
    assert ada.adjust(OneProcess()) and ada.last_r_t == 1.0
    assert ada.strength == pytest.approx(40 / 1000)  # 40 images of the 1000 that take it from 0 to 1
    unsure = torch.tensor([1.0, -1.0] * 5)  # r_t = 0 < 0.6
    for _ in range(4):
        ada.observe(unsure)
    assert ada.adjust(OneProcess()) and ada.last_r_t == 0.0
    assert ada.strength == 0.0
    for _ in range(4):
        ada.observe(unsure)
    ada.adjust(OneProcess())
    assert ada.strength == 0.0  # kept in [0, 1]


def test_ada_state_round_trips_mid_interval():
    ada = AdaptiveStrength(target=0.6, interval=4, ramp_images=1000, strength=0.25)
    ada.observe(torch.tensor([1.0, -2.0, 3.0]))
    copy = AdaptiveStrength(target=0.6, interval=4, ramp_images=1000, strength=0.0)
    copy.load_state_dict(ada.state_dict())
    for controller in (ada, copy):
        for _ in range(3):
            controller.observe(torch.tensor([2.0, 2.0, 1.0]))  # r_t = 10 / 12 > 0.6
        assert controller.adjust(OneProcess())
    assert copy.state_dict() == ada.state_dict() and ada.strength == pytest.approx(0.25 + 12 / 1000)


# -- through the registry, as a plugin's augmentation is ------------------------------------------


def test_the_built_ins_are_registered_and_pass_their_contract(registry):
    names = {component.name for component in registry.components(Kind.AUGMENTATION)}
    assert names >= {"translation", "cutout", "colour"}
    for name in ("translation", "cutout", "colour"):
        results = check_component(registry.get(Kind.AUGMENTATION, name))
        assert [r.status for r in results] == ["passed"] * len(results), results


class Detached(Augmentation):
    """Breaks two promises: it detaches the images, and strength 0 still flips them."""

    def __call__(self, images, strength=1.0, generator=None):
        return images.detach().flip(-1)


def test_the_contract_kit_names_an_augmentation_that_breaks_it():
    plugin = plugin_module(
        "flipper", register_augmentations=lambda register: register("flip", lambda params: Detached())
    )
    component = isolated_registry(plugin, distribution="flipper").get(Kind.AUGMENTATION, "flip")
    failed = {r.check: r.message for r in check_component(component) if r.status == "failed"}
    assert set(failed) == {
        "check_augmentation_is_identity_at_strength_zero",
        "check_augmentation_is_differentiable",
        "check_augmentation_draws_from_the_generator_given",
    }
    assert "strength 0 changed the images" in failed["check_augmentation_is_identity_at_strength_zero"]


def test_ada_reads_real_scores_against_the_loss_threshold():
    """Least squares calls an image real above 0.5: scores of 0.7 are sure, 0.3 unsure, whatever their sign."""
    ada = AdaptiveStrength(target=0.6, interval=1, ramp_images=100, strength=0.5, threshold=0.5)
    ada.observe(torch.full((10,), 0.7))
    ada.adjust(OneProcess())
    assert ada.last_r_t == 1.0 and ada.strength == pytest.approx(0.6)
    ada.observe(torch.full((10,), 0.3))
    ada.adjust(OneProcess())
    assert ada.last_r_t == -1.0 and ada.strength == pytest.approx(0.5)
