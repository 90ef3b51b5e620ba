"""Scheduled settings in a run: applied at every step, in every logged line, kept in checkpoints, exact on resume,
and charted by the report."""

import json

import pytest
import torch
from typer.testing import CliRunner

from ganforge.checkpoints.format import load_checkpoint
from ganforge.registry import Kind
from ganforge.training.batches import ShardedOrder
from tests.runs import SMOKE, assert_same_weights, metrics, run, train, without_timing
from tests.training.test_distributed import ganforge, succeeded

BATCH = 32  # the smoke example's batch: 256 images, 8 steps an epoch
EPOCH_IMAGES = 256
SCHEDULES = {
    "optim.generator.lr": {"name": "cosine", "params": {"start": 2e-4, "end": 5e-5, "images": 700}},
    "optim.discriminator.beta2": {"name": "linear", "params": {"start": 0.9, "end": 0.99, "images": 768}},
    "train.ema_half_life": {"name": "r3gan", "params": {"base": 0.0, "final": 500.0, "images": 768}},
    "augment.strength": {"name": "linear", "params": {"start": 0.0, "end": 0.6, "images": 512, "begin": 128}},
    "loss.params.r1_gamma": {
        "name": "r3gan",
        "params": {"base": 1.0, "final": 0.1, "images": 700, "warmup_images": 64, "warmup_start": 0.5},
    },
}
SCHEDULED = ["augment={pipeline: [translation]}", f"schedules={json.dumps(SCHEDULES)}"]


def checkpoint(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def ema_weights(run_dir):
    return checkpoint(run_dir)["ema_generator"]


@pytest.fixture(scope="module")
def scheduled_runs(app, tmp_path_factory):
    """The same scheduled run straight through 3 epochs, and stopped after 1 (mid-schedule) then resumed."""
    folder = tmp_path_factory.mktemp("scheduled")
    straight, stopped = folder / "straight", folder / "stopped"
    train(app, *SCHEDULED, "train.epochs=3", f"output.dir={straight}")
    train(app, *SCHEDULED, "train.epochs=1", f"output.dir={stopped}")
    run(app, "run", "--resume", str(stopped), "--set", "train.epochs=3", "--quiet")
    return straight, stopped


def test_a_run_stopped_mid_schedule_and_resumed_ends_with_the_weights_of_one_never_stopped(scheduled_runs):
    straight, stopped = scheduled_runs
    assert_same_weights(straight / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    for key, value in ema_weights(straight).items():
        assert torch.equal(value, ema_weights(stopped)[key]), key
    assert without_timing(metrics(stopped)) == without_timing(metrics(straight))


def test_every_logged_line_carries_each_scheduled_value_of_its_last_step(registry, scheduled_runs):
    straight, _ = scheduled_runs
    lines = [line for line in metrics(straight) if line["event"] in ("step", "epoch")]
    assert len(lines) == 3 * 3  # 2 step lines and an epoch line per epoch
    for line in lines:
        images = (line["step"] - 1) * BATCH  # shown before the line's last step
        for target, entry in SCHEDULES.items():
            expected = registry.build(Kind.SCHEDULE, entry["name"], entry["params"])(images)
            assert line[f"schedule/{target}"] == expected, (target, line["step"])
        assert line["augment_strength"] == line["schedule/augment.strength"]  # what the augmentations took
    lr = [line["schedule/optim.generator.lr"] for line in lines if line["event"] == "step"]
    assert lr == sorted(lr, reverse=True) and lr[0] > lr[-1]


def test_a_checkpoint_keeps_the_values_of_the_next_step_and_the_optimisers_those_of_the_last(registry, scheduled_runs):
    straight, _ = scheduled_runs
    state = checkpoint(straight)
    cosine = registry.build(Kind.SCHEDULE, "cosine", SCHEDULES["optim.generator.lr"]["params"])
    assert state["schedules"]["optim.generator.lr"] == cosine(3 * EPOCH_IMAGES) == 5e-5
    assert state["optimizer_generator"]["param_groups"][0]["lr"] == cosine(3 * EPOCH_IMAGES - BATCH)
    beta2 = state["optimizer_discriminator"]["param_groups"][0]["betas"]
    assert beta2[0] == 0.5 and beta2[1] == pytest.approx(0.9 + 0.09 * (3 * EPOCH_IMAGES - BATCH) / 768)


def test_a_resume_whose_schedules_say_otherwise_is_refused_naming_the_setting(app, scheduled_runs):
    _, stopped = scheduled_runs
    last = (stopped / "checkpoints" / "last.pt").read_bytes()
    args = ["run", "--resume", str(stopped), "--set", "train.epochs=4", "--quiet"]
    result = CliRunner().invoke(app, [*args, "--set", "schedules.optim.generator.lr.params.images=2000"])
    assert result.exit_code == 2, result.output
    assert "schedules: at 768 images shown, optim.generator.lr is" in result.stderr
    assert "Traceback" not in result.output
    assert (stopped / "checkpoints" / "last.pt").read_bytes() == last


def test_constant_schedules_train_exactly_as_the_settings_they_replace(app, workdir):
    """Each setter puts its value where the step reads it: the same run with the values set in the config."""
    values = {"lr": 1e-4, "beta1": 0.3, "half_life": 1000.0, "strength": 0.3, "r1_gamma": 0.1}
    constant = {
        "optim.generator.lr": values["lr"],
        "optim.discriminator.beta1": values["beta1"],
        "train.ema_half_life": values["half_life"],
        "augment.strength": values["strength"],
        "loss.params.r1_gamma": values["r1_gamma"],
    }
    schedules = {target: {"name": "constant", "params": {"value": value}} for target, value in constant.items()}
    common = ["augment.pipeline=[translation, cutout]", "train.epochs=1"]
    train(app, *common, "name=scheduled", f"schedules={json.dumps(schedules)}")
    train(
        app,
        *common,
        "name=set",
        f"optim.generator.lr={values['lr']!r}",
        f"optim.discriminator.betas=[{values['beta1']!r}, 0.999]",
        f"train.ema_half_life={values['half_life']!r}",
        f"augment.strength={values['strength']!r}",
        f"loss.params.r1_gamma={values['r1_gamma']!r}",
    )
    train(app, *common, "name=unscheduled", "train.ema_half_life=1000.0")
    scheduled, set_, unscheduled = (workdir / "runs" / name for name in ("scheduled", "set", "unscheduled"))
    assert_same_weights(scheduled / "checkpoints" / "last.pt", set_ / "checkpoints" / "last.pt")
    for key, value in ema_weights(scheduled).items():
        assert torch.equal(value, ema_weights(set_)[key]), key
    different = torch.load(unscheduled / "checkpoints" / "last.pt", weights_only=True)["generator"]
    same = torch.load(set_ / "checkpoints" / "last.pt", weights_only=True)["generator"]
    assert any(not torch.equal(different[key], same[key]) for key in same)  # the values do change training


def test_the_report_charts_and_tabulates_the_scheduled_values(app, scheduled_runs, tmp_path):
    straight, _ = scheduled_runs
    out = tmp_path / "report.html"
    run(app, "report", str(straight), "--out", str(out))
    page = out.read_text()
    assert "<h2>Scheduled settings</h2>" in page and "alt='scheduled settings' src='data:image/png;base64," in page
    assert "<td>optim.generator.lr</td><td>cosine</td><td>0.0001931 (step 4)</td><td>5e-05 (step 24)</td>" in page
    assert "<td>loss.params.r1_gamma</td><td>r3gan</td>" in page


def test_a_report_of_a_run_without_schedules_has_no_such_section(app, workdir, tmp_path):
    train(app, "train.epochs=1")
    out = tmp_path / "report.html"
    run(app, "report", str(workdir / "runs" / "smoke"), "--out", str(out))
    assert "Scheduled settings" not in out.read_text()


@pytest.mark.parametrize("world_size", [1, 2, 4])  # 4: the last 4 images sit each epoch out
def test_images_shown_counts_every_image_of_every_step_taken_mid_epoch_too(world_size):
    order = ShardedOrder(100, BATCH, torch.Generator().manual_seed(0), rank=0, world_size=world_size)
    shown = 0
    for epoch in range(2):
        order.start_epoch()
        for share in order:
            assert order.images_shown(epoch) == shown
            shown += len(share) * world_size
            order.step_taken()
        order.finish_epoch()
    assert order.images_shown(2) == shown
    resumed = ShardedOrder(100, BATCH, torch.Generator().manual_seed(0), rank=0, world_size=world_size)
    resumed.load_state_dict({"epoch_step": 2, "rng": {"data": torch.Generator().manual_seed(0).get_state()}})
    assert resumed.images_shown(1) == shown // 2 + 2 * BATCH  # an epoch, and two steps of the next


@pytest.mark.slow
def test_two_processes_take_the_values_of_one_and_resume_to_the_weights_of_an_unstopped_run(scheduled_runs, tmp_path):
    """Schedules read the global image count: every process, and a two-process run, takes one process's values."""
    launch = ["run", str(SMOKE), "--nproc", "2", "--quiet", *(part for o in SCHEDULED for part in ("--set", o))]
    succeeded(ganforge(tmp_path, *launch, "--set", "name=straight", "--set", "train.epochs=3"))
    succeeded(ganforge(tmp_path, *launch, "--set", "name=stopped", "--set", "train.epochs=1"))
    stopped, straight = tmp_path / "runs" / "stopped", tmp_path / "runs" / "straight"
    succeeded(ganforge(tmp_path, "run", "--resume", stopped, "--nproc", "2", "--quiet", "--set", "train.epochs=3"))
    assert_same_weights(straight / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    assert without_timing(metrics(stopped)) == without_timing(metrics(straight))

    def scheduled(run_dir):
        return [{k: v for k, v in line.items() if k.startswith("schedule/")} for line in metrics(run_dir)]

    one_process, _ = scheduled_runs
    assert scheduled(straight) == scheduled(one_process) and scheduled(straight)[0]
