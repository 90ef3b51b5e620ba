"""Class-conditional GANs: labels travel with the images, G(z, y) and D(x, y) in every path that calls them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ganforge
from ganforge.contracts import LabelledDiscriminator
from ganforge.registry import Kind
from tests.plugin_fixtures import install_distribution
from tests.runs import SMOKE, assert_same_weights, metrics, without_timing

CONDITIONAL = {
    "concat": ["model.params.generator_conditioning=concat", "model.params.discriminator_conditioning=concat"],
    "projection": [
        "model.params.generator_conditioning=batch_norm",
        "model.params.discriminator_conditioning=projection",
    ],
    "acgan": ["model.params.generator_conditioning=concat", "model.params.discriminator_conditioning=classifier"],
}

# A dataset whose image i has every pixel equal to i and the label i % classes (held in memory or read
# item by item), and a conditional architecture whose networks write down, in training, which labels
# came with which images: D the real ones (the only constant images it sees), G the ones it drew with.
PROBE_PLUGIN = """
import json
import os

import torch
from pydantic import Field
from torch import nn
from torch.utils.data import Dataset

from ganforge import DataSpec, GANModels, ImageTensorDataset, LoadedDataset, Params, check_labels, hookimpl


class IndexedParams(Params):
    count: int = Field(40, ge=2, le=256)
    classes: int = Field(4, ge=1, le=256)
    in_memory: bool = True
    label_offset: int = 0


class ItemDataset(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index].float().div(127.5).sub(1), int(self.labels[index])


def load_indexed(params, root):
    images = torch.arange(params.count, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    labels = torch.arange(params.count) % params.classes + params.label_offset
    dataset = ImageTensorDataset(images, labels) if params.in_memory else ItemDataset(images, labels)
    return LoadedDataset(dataset, DataSpec(shape=(1, 4, 4), num_classes=params.classes))


def record(role, entry):
    with open(os.path.join(os.environ["GANFORGE_PROBE_DIR"], role + ".jsonl"), "a") as stream:
        stream.write(json.dumps(entry) + "\\n")


class Generator(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.classes = classes
        self.embed = nn.Embedding(classes, 8)
        self.net = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4)))

    def forward(self, z, labels):
        check_labels(labels, self.classes)
        if self.training:
            record("generator", labels.tolist())
        return self.net(torch.cat([z, self.embed(labels)], 1))


class Discriminator(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.classes = classes
        self.embed = nn.Embedding(classes, 16)
        self.linear = nn.Linear(16, 1)

    def forward(self, x, labels):
        check_labels(labels, self.classes)
        flat = x.flatten(1)
        if self.training and bool((flat.amax(1) == flat.amin(1)).all()):
            indices = flat[:, 0].add(1).mul(127.5).round().long().tolist()
            record("discriminator", [indices, labels.tolist()])
        return self.linear(flat).view(-1) + (self.embed(labels) * flat).sum(1)


def build_probe(params, data):
    return GANModels(Generator(data.num_classes), Discriminator(data.num_classes), 8, num_classes=data.num_classes)


@hookimpl
def register_datasets(register):
    register("indexed", load_indexed, params=IndexedParams)


@hookimpl
def register_architectures(register):
    register("conditional_probe", build_probe)
"""


@pytest.fixture(scope="module")
def probe_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install_distribution(site, "ganforge-cprobe", "0.1.0", {"cprobe": "ganforge_cprobe"}, PROBE_PLUGIN)
    return site


def probe_config(tmp_path, generated_labels="uniform", **data):
    config = {
        "name": "cprobe",
        "data": {"name": "indexed", "params": data},
        "model": {"name": "conditional_probe"},
        "train": {
            "epochs": 2,
            "batch_size": 8,
            "device": "cpu",
            "log_every": 5,
            "sample_every": 0,
            "generated_labels": generated_labels,
        },
    }
    path = tmp_path / "cprobe.yaml"
    path.write_text(json.dumps(config))
    return path


def run_probe(tmp_path, site, config, *args):
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir(exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(site), "GANFORGE_PROBE_DIR": str(probe_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "ganforge", "run", str(config), "--quiet", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment,
        timeout=240,
    )
    return result, probe_dir


def recorded(probe_dir, role):
    path = probe_dir / f"{role}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("in_memory", [True, False])
def test_each_real_image_reaches_d_with_its_own_label(probe_site, tmp_path, in_memory):
    config = probe_config(tmp_path, count=40, classes=4, in_memory=in_memory)
    result, probe_dir = run_probe(tmp_path, probe_site, config)
    assert result.returncode == 0, result.stdout + result.stderr
    batches = recorded(probe_dir, "discriminator")
    assert len(batches) == 2 * 5  # 40 images in batches of 8, two epochs
    for indices, labels in batches:
        assert labels == [index % 4 for index in indices]


@pytest.mark.slow
def test_generated_labels_are_drawn_uniformly_or_as_the_real_batch_has_them(probe_site, tmp_path):
    result, probe_dir = run_probe(tmp_path, probe_site, probe_config(tmp_path, count=40, classes=4))
    assert result.returncode == 0, result.stdout + result.stderr
    drawn = [label for batch in recorded(probe_dir, "generator") for label in batch]
    assert set(drawn) == {0, 1, 2, 3} and len(drawn) == 2 * 40

    data_run = tmp_path / "data"
    data_run.mkdir()
    config = probe_config(data_run, generated_labels="data", count=40, classes=4)
    result, probe_dir = run_probe(data_run, probe_site, config)
    assert result.returncode == 0, result.stdout + result.stderr
    real = [labels for _indices, labels in recorded(probe_dir, "discriminator")]
    assert recorded(probe_dir, "generator") == real  # G's step reuses D's generated batch and its labels


@pytest.mark.parametrize("in_memory", [True, False])
def test_labels_out_of_the_class_range_stop_the_run_with_a_clear_error(probe_site, tmp_path, in_memory):
    config = probe_config(tmp_path, count=40, classes=4, in_memory=in_memory, label_offset=2)
    result, _ = run_probe(tmp_path, probe_site, config, "--set", "output.dir=out")
    assert result.returncode != 0
    assert "the dataset's labels must lie in [0, 4) for 4 classes, got values from 2 to 5" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


# PyTorch-GAN's cgan as a third party ports it: labels embedded and concatenated with the noise and
# with the flattened image, MLPs on both sides; the only ganforge-specific lines are the factory, the
# hook and check_labels, which refuses a label out of range in words.
CGAN_PORT = """
import math

import torch
from pydantic import Field
from torch import nn

import ganforge


class CGANParams(ganforge.Params):
    latent_dim: int = Field(32, gt=0)
    hidden: int = Field(64, gt=0)


class Generator(nn.Module):
    def __init__(self, params, shape, classes):
        super().__init__()
        self.shape, self.classes = shape, classes
        self.label_emb = nn.Embedding(classes, classes)
        self.model = nn.Sequential(
            nn.Linear(params.latent_dim + classes, params.hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(params.hidden, int(math.prod(shape))),
            nn.Tanh(),
        )

    def forward(self, noise, labels):
        ganforge.check_labels(labels, self.classes)
        gen_input = torch.cat((self.label_emb(labels), noise), -1)
        return self.model(gen_input).view(noise.shape[0], *self.shape)


class Discriminator(nn.Module):
    def __init__(self, params, shape, classes):
        super().__init__()
        self.classes = classes
        self.label_embedding = nn.Embedding(classes, classes)
        self.model = nn.Sequential(
            nn.Linear(classes + int(math.prod(shape)), params.hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(params.hidden, 1),
        )

    def forward(self, img, labels):
        ganforge.check_labels(labels, self.classes)
        d_in = torch.cat((img.view(img.size(0), -1), self.label_embedding(labels)), -1)
        return self.model(d_in).view(-1)


def build_cgan(params, data):
    if data.num_classes is None:
        raise ganforge.ParamsError("cgan needs a dataset with classes")
    shape, classes = tuple(data.shape), data.num_classes
    return ganforge.GANModels(
        Generator(params, shape, classes), Discriminator(params, shape, classes), params.latent_dim, num_classes=classes
    )


@ganforge.hookimpl
def register_architectures(register):
    register("cgan", build_cgan, params=CGANParams, summary="PyTorch-GAN's cgan, ported")
"""


@pytest.fixture(scope="module")
def cgan_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("cgan-site")
    install_distribution(site, "ganforge-cgan", "0.1.0", {"cgan": "ganforge_cgan"}, CGAN_PORT)
    return site


@pytest.mark.slow
def test_a_cgan_ported_as_a_third_party_trains_through_run_and_passes_check(cgan_site, tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(cgan_site)}

    def ganforge_command(*args):
        return subprocess.run(
            [sys.executable, "-m", "ganforge", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
        )

    checked = ganforge_command("check", "ganforge-cgan")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 failed" in checked.stdout
    trained = ganforge_command(
        "run", str(SMOKE), "--quiet", "--set", "model={name: cgan}", "--set", "output.dir=cgan", "--set", "eval.every=0"
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    samples = ganforge_command("sample", "cgan/checkpoints/last.pt", "--n", "8", "--out", "samples.png")
    assert samples.returncode == 0, samples.stdout + samples.stderr
    assert (tmp_path / "samples.png").stat().st_size > 0


# -- the built-in designs ------------------------------------------------------------------------


@pytest.mark.parametrize("design", sorted(CONDITIONAL))
def test_each_builtin_design_trains_and_resumes_to_the_same_weights(app, tmp_path, design):
    """A conditional run interrupted after epoch 1 and resumed ends bit-exact: the labels drawn are in the state."""
    overrides = [*CONDITIONAL[design], "train.ema_decay=0.9"]

    def run(*args):
        result = CliRunner().invoke(app, ["run", *args, "--quiet"])
        assert result.exit_code == 0, result.output
        return result

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = [item for override in overrides for item in ("--set", override)]
    run(str(SMOKE), *args, "--set", f"output.dir={straight}")
    run(str(SMOKE), *args, "--set", f"output.dir={resumed}", "--set", "train.epochs=1")
    run("--resume", str(resumed), "--set", "train.epochs=2")
    assert_same_weights(straight / "checkpoints" / "last.pt", resumed / "checkpoints" / "last.pt")
    assert without_timing(metrics(straight)) == without_timing(metrics(resumed))


def test_the_epoch_grid_has_one_row_per_class_with_the_same_noise_in_each_column(registry, tmp_path):
    from ganforge.training.fixed_inputs import GRID_COLUMNS, sample_grid_inputs

    noise, labels = sample_grid_inputs(latent_dim=3, num_classes=4, seed=0)
    assert labels.tolist() == [k for k in range(4) for _ in range(GRID_COLUMNS)]
    rows = noise.view(4, GRID_COLUMNS, 3)
    assert all(torch.equal(rows[0], rows[k]) for k in range(4))
    unconditional, none = sample_grid_inputs(latent_dim=3, num_classes=None, seed=0)
    assert none is None and unconditional.shape == (100, 3)


def test_a_conditional_d_must_bind_the_generated_labels_to_the_generated_images_for_penalties():
    class Echo(torch.nn.Module):
        def forward(self, images, labels):
            return labels.float()

    real, fake = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    real_labels, fake_labels = torch.tensor([0, 1, 2]), torch.tensor([5, 6, 7])
    bound = LabelledDiscriminator(Echo(), real_labels, generated=(fake, fake_labels))
    assert bound(fake.detach().requires_grad_(True)).tolist() == [5, 6, 7]  # what R2 differentiates
    assert bound(real).tolist() == [0, 1, 2]  # R1
    assert bound(0.5 * real + 0.5 * fake).tolist() == [0, 1, 2]  # WGAN-GP's mixtures take the real labels


def acgan_run(app, out: Path, weight: float, epochs: int = 1) -> list[dict]:
    args = ["run", str(SMOKE), "--quiet", "--set", f"output.dir={out}", "--set", f"train.epochs={epochs}"]
    for override in [*CONDITIONAL["acgan"], f"train.class_loss_weight={weight}"]:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return metrics(out)


def test_acgan_trains_its_class_head_only_with_a_class_loss_weight(app, registry, tmp_path):
    def class_head_after_training(weight):
        acgan_run(app, tmp_path / f"weight{weight}", weight)
        checkpoint = torch.load(tmp_path / f"weight{weight}" / "checkpoints" / "last.pt", weights_only=True)
        return checkpoint["discriminator"]["class_head.weight"]

    torch.manual_seed(0)  # the smoke run's seed, set before it builds its networks
    params = {"latent_dim": 16, "hidden": [64, 64], "generator_conditioning": "concat"}
    built = registry.get(Kind.ARCHITECTURE, "mlp").build(
        {**params, "discriminator_conditioning": "classifier"}, ganforge.DataSpec((1, 28, 28), 4)
    )
    initial = built.discriminator.class_head.weight.detach()
    assert torch.equal(class_head_after_training(0), initial)  # no class loss: no gradient reaches the head
    assert not torch.equal(class_head_after_training(1), initial)


def test_an_acgan_run_logs_how_well_its_class_head_names_the_classes(app, tmp_path):
    """class_loss (D's cross-entropy, real and generated averaged) and class_acc_real/_fake on every line."""
    records = acgan_run(app, tmp_path / "acgan", weight=1, epochs=3)
    epochs = [record for record in records if record["event"] == "epoch"]
    assert all(0 <= record[key] <= 1 for record in records for key in ("class_acc_real", "class_acc_fake"))
    assert records[0]["class_loss"] == pytest.approx(math.log(4), abs=0.15)  # 4 classes, a head not yet trained
    assert epochs[-1]["class_loss"] < epochs[0]["class_loss"]
    assert epochs[-1]["class_acc_real"] > 0.5  # chance is 0.25: the head learns the synthetic classes
    untrained = acgan_run(app, tmp_path / "untrained", weight=0)  # no class loss: nothing to say about its head
    assert not any(key.startswith("class_") for record in untrained for key in record)
    plain = CliRunner().invoke(app, ["run", str(SMOKE), "--quiet", "--set", f"output.dir={tmp_path / 'plain'}"])
    assert plain.exit_code == 0 and not any(
        key.startswith("class_") for record in metrics(tmp_path / "plain") for key in record
    )


def test_conditioning_one_network_alone_is_refused_naming_both_params(app, workdir):
    result = CliRunner().invoke(app, ["run", str(SMOKE), "--set", "model.params.generator_conditioning=concat"])
    assert result.exit_code != 0
    assert "generator_conditioning 'concat' with discriminator_conditioning 'none'" in result.output
    assert not (workdir / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("design", ["projection", "acgan"])
def test_a_two_process_conditional_run_resumes_to_the_weights_of_an_unstopped_one(tmp_path, design):
    """DDP (gloo, two processes) with labels: each process draws its own generated labels, saved and restored."""
    conditional = [item for override in CONDITIONAL[design] for item in ("--set", override)]

    def run(*args):
        result = subprocess.run(
            [sys.executable, "-m", "ganforge", "run", *map(str, args), "--nproc", "2", "--quiet", *conditional],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    run(SMOKE, "--set", "name=straight", "--set", "train.epochs=2")
    run(SMOKE, "--set", "name=stopped", "--set", "train.epochs=1")
    stopped, straight = tmp_path / "runs" / "stopped", tmp_path / "runs" / "straight"
    run("--resume", stopped, "--set", "train.epochs=2")
    assert_same_weights(straight / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    assert without_timing(metrics(stopped)) == without_timing(metrics(straight))


@pytest.mark.slow
def test_a_two_process_acgan_run_without_a_class_loss_trains(tmp_path):
    """Its class head gets no gradient: DDP, told so, does not wait for one."""
    overrides = [*CONDITIONAL["acgan"], "train.class_loss_weight=0", "train.epochs=1"]
    args = [item for override in overrides for item in ("--set", override)]
    result = subprocess.run(
        [sys.executable, "-m", "ganforge", "run", str(SMOKE), "--nproc", "2", "--quiet", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "runs" / "smoke" / "checkpoints" / "last.pt").is_file()


# -- sampling a class ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conditional_checkpoint(tmp_path_factory):
    """A one-epoch conditional smoke run (synthetic data: 4 classes, no names)."""
    from ganforge.cli import create_app
    from ganforge.plugins import load_plugins

    out = tmp_path_factory.mktemp("conditional") / "run"
    args = ["run", str(SMOKE), "--quiet", "--set", f"output.dir={out}", "--set", "train.epochs=1"]
    for override in CONDITIONAL["projection"]:
        args += ["--set", override]
    result = CliRunner().invoke(create_app(load_plugins(strict=True)), args)
    assert result.exit_code == 0, result.output
    return out / "checkpoints" / "last.pt"


def sampled(app, checkpoint, out, *args):
    result = CliRunner().invoke(app, ["sample", str(checkpoint), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return torch.load(out, weights_only=True) if out.suffix == ".pt" else None


def test_sample_draws_the_class_asked_from_the_same_noise(app, conditional_checkpoint, tmp_path):
    one_class = sampled(app, conditional_checkpoint, tmp_path / "two.pt", "--class", "2", "--n", "8")
    every_class = sampled(app, conditional_checkpoint, tmp_path / "all.pt", "--class", "all", "--n", "8")
    listed = sampled(
        app, conditional_checkpoint, tmp_path / "listed.pt", "--class", "0,1", "--classes", "2,3", "--n", "8"
    )
    # The same seed draws the same noise: image i of every call has the same z, and its class decides the rest.
    assert torch.equal(every_class, listed)
    assert torch.equal(one_class[4:6], every_class[4:6])  # images 4 and 5 are class 2 in both
    assert not torch.equal(one_class[:2], every_class[:2])  # class 2 against class 0
    unasked = sampled(app, conditional_checkpoint, tmp_path / "unasked.pt", "--n", "8")
    # Without --class the classes take turns, 0, 1, 2, 3, 0, ...: images 0 and 7 are of the same class as above.
    assert torch.equal(unasked[[0, 7]], every_class[[0, 7]]) and not torch.equal(unasked[1], every_class[1])
    sampled(app, conditional_checkpoint, tmp_path / "grid.png", "--class", "all", "--n", "12")
    assert (tmp_path / "grid.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--class", "4"], "has 4 classes; give an index from 0 to 3 (digits 0-9) or all"),
        (["--class", "²"], "--class '²': "),  # str.isdigit() says yes, int() says no
        (["--class", "٣"], "--class '٣': "),  # an Arabic-Indic 3: int() reads it, ganforge does not
        (["--class", "+1"], "--class '+1': "),
        (["--class", "Sneaker"], "--class 'Sneaker':"),
        (["--class", "0,1,2", "--n", "8"], "--n 8 with 3 classes: --n must be a multiple of the number of classes"),
        (["--class", " , "], "--class: name at least one class"),
    ],
)
def test_sample_refuses_a_class_the_checkpoint_does_not_have(app, conditional_checkpoint, tmp_path, args, message):
    result = CliRunner().invoke(app, ["sample", str(conditional_checkpoint), "--out", str(tmp_path / "x.png"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.png").exists()


def test_sample_refuses_a_class_for_an_unconditional_generator(app, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", str(SMOKE), "--quiet", "--set", f"output.dir={out}", "--set", "train.epochs=1"]
    )
    assert result.exit_code == 0, result.output
    checkpoint = out / "checkpoints" / "last.pt"
    refused = CliRunner().invoke(app, ["sample", str(checkpoint), "--out", str(tmp_path / "x.png"), "--class", "1"])
    assert refused.exit_code == 2
    assert "generator is unconditional (its architecture reads no labels)" in refused.output
    plain = CliRunner().invoke(app, ["sample", str(checkpoint), "--out", str(tmp_path / "x.png"), "--n", "4"])
    assert plain.exit_code == 0, plain.output


def test_sample_takes_the_class_names_of_the_dataset(app, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    for name, colour in (("cats", (0, 0, 255)), ("dogs", (255, 0, 0))):
        for index in range(4):
            (folder / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), colour).save(folder / name / f"{index}.png")
    out = tmp_path / "run"
    args = ["run", str(SMOKE), "--quiet", "--set", f"output.dir={out}", "--set", "train.epochs=1"]
    overrides = [
        f"data={{name: image_folder, params: {{path: '{folder}', size: 8}}}}",
        "train.batch_size=4",
        "model.params.hidden=[16]",
        *CONDITIONAL["concat"],
    ]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    checkpoint = out / "checkpoints" / "last.pt"
    by_name = sampled(app, checkpoint, tmp_path / "dogs.pt", "--class", "Dogs", "--n", "4")
    by_index = sampled(app, checkpoint, tmp_path / "one.pt", "--class", "1", "--n", "4")
    assert torch.equal(by_name, by_index)
    refused = CliRunner().invoke(app, ["sample", str(checkpoint), "--out", str(tmp_path / "x.png"), "--class", "cow"])
    assert refused.exit_code == 2
    assert "give an index from 0 to 1 (digits 0-9), a name (cats, dogs) or all" in refused.output


# -- evaluation class by class --------------------------------------------------------------------


def test_class_accuracy_and_intra_fid_against_a_hand_computation(registry):
    from ganforge.contracts import FeatureSet

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(50)
    real = FeatureSet(torch.randn(150, 4, generator=generator) + labels[:, None], None, labels)
    # Asked for classes 0, 1, 2; the classifier sees class 0 for all of class 0, half of class 1, none of class 2.
    seen = torch.cat([torch.zeros(50), torch.tensor([1, 0] * 25), torch.zeros(50)]).long()
    probabilities = torch.nn.functional.one_hot(seen, 3).double() * 0.9 + 0.1 / 3
    generated = FeatureSet(torch.randn(150, 4, generator=generator) + 2 * labels[:, None], probabilities, labels)

    accuracy = registry.get(Kind.METRIC, "class_accuracy").build({}).compute(generated, real)
    assert accuracy == {"class_accuracy": pytest.approx((1.0 + 0.5 + 0.0) / 3), "class_accuracy_min": 0.0}

    fid = registry.get(Kind.METRIC, "fid").build({})
    per_class = [
        fid.compute(FeatureSet(generated.features[labels == k]), FeatureSet(real.features[labels == k]))["fid"]
        for k in range(3)
    ]
    intra = registry.get(Kind.METRIC, "intra_fid").build({}).compute(generated, real)
    assert intra == {"intra_fid": pytest.approx(sum(per_class) / 3), "intra_fid_max": pytest.approx(max(per_class))}


@pytest.mark.slow
def test_a_conditional_run_is_scored_class_by_class_and_an_unconditional_one_is_not(app, tmp_path):
    def evaluations(name, *overrides):
        out = tmp_path / name
        args = ["run", str(SMOKE), "--quiet", "--set", f"output.dir={out}", "--set", "train.epochs=1"]
        for override in ["eval.every=1", "eval.samples=200", *overrides]:
            args += ["--set", override]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return [record for record in metrics(out) if record["event"] == "eval"]

    [conditional] = evaluations("conditional", *CONDITIONAL["acgan"], "eval.best=class_accuracy")
    assert {"class_accuracy", "class_accuracy_min", "intra_fid", "intra_fid_max", "fid"} <= set(conditional)
    assert conditional["floor"]["class_accuracy"] > 0.9  # the classifier on real images of each class
    assert "as many of each of the 4 classes as can be" in conditional["protocol"]["generated"]
    # `ganforge eval` of the checkpoint alone draws the same noise and classes: the same scores.
    offline = CliRunner().invoke(app, ["eval", str(tmp_path / "conditional"), "--n", "200", "--json", "--per-class"])
    assert offline.exit_code == 0, offline.output
    report = json.loads(offline.stdout)
    scores = report["scores"]
    assert scores["class_accuracy"] == conditional["class_accuracy"] and scores["fid"] == conditional["fid"]
    # Each class scored alone: the overall values are their mean (and worst).
    rows = report["by_class"]
    assert [row["class"] for row in rows] == [0, 1, 2, 3]
    assert sum(row["class_accuracy"] for row in rows) / 4 == pytest.approx(scores["class_accuracy"])
    assert min(row["class_accuracy"] for row in rows) == pytest.approx(scores["class_accuracy_min"])
    assert sum(row["intra_fid"] for row in rows) / 4 == pytest.approx(scores["intra_fid"])
    table = CliRunner().invoke(app, ["eval", str(tmp_path / "conditional"), "--n", "200", "--per-class"])
    assert table.exit_code == 0 and "Per class" in table.output
    [unconditional] = evaluations("unconditional")
    assert "fid" in unconditional and "class_accuracy" not in unconditional and "intra_fid" not in unconditional
    refused = CliRunner().invoke(app, ["eval", str(tmp_path / "unconditional"), "--n", "200", "--per-class"])
    assert refused.exit_code == 2 and "generator is unconditional" in refused.output


@pytest.mark.parametrize("command", ["run", "validate"])
def test_best_by_a_class_by_class_value_is_refused_for_an_unconditional_model(app, workdir, command):
    args = [command, str(SMOKE), "--set", "eval.every=1", "--set", "eval.best=intra_fid"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "eval.best: 'intra_fid' is a value of metric intra_fid, which compares generated images class by" in (
        result.output
    )
    assert "Traceback" not in result.output and not (workdir / "runs").exists()
