import torch

from compress.context import RunContext
from compress.data import load_dataset
from compress.evaluate import evaluate
from compress.models import build_model
from compress.recipe import DataConfig, TrainConfig
from compress.training import TrainHook, fit


def train_once(seed: int, hooks=()) -> torch.nn.Module:
    torch.manual_seed(seed)
    data = load_dataset(DataConfig(name="digits"))
    model = build_model("lenet-300-100", {})
    fit(model, data, TrainConfig(epochs=2, batch_size=64, lr=0.003), RunContext(torch.device("cpu"), seed), hooks=hooks)
    return model


def test_training_learns_digits():
    data = load_dataset(DataConfig(name="digits"))
    model = train_once(0)
    assert evaluate(model, data.test, 1000, torch.device("cpu")).accuracy > 90.0


def test_training_is_reproducible():
    a, b = train_once(1), train_once(1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_hooks_run_every_step():
    class Counter(TrainHook):
        steps = 0

        def after_step(self, model, step, total):
            self.steps = step
            self.total = total

    hook = Counter()
    train_once(0, hooks=[hook])
    assert hook.steps == hook.total == 2 * -(-1437 // 64)


def test_schedules():
    from compress.training import make_schedule

    p = torch.nn.Parameter(torch.zeros(1))
    for kind, expect_end in (("constant", 1.0), ("cosine", 0.0), ("step", 0.1)):
        opt = torch.optim.SGD([p], lr=1.0)
        sched = make_schedule(opt, TrainConfig(epochs=2, schedule=kind, step_epochs=1), steps_per_epoch=10)
        for _ in range(19):
            opt.step()
            sched.step()
        assert abs(opt.param_groups[0]["lr"] - expect_end) < 0.05, kind


def _agreement(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x).argmax(1) == b(x).argmax(1)).float().mean())


def test_distillation_pulls_the_student_towards_its_teacher():
    import pytest

    from compress.errors import InputError
    from compress.recipe import FinetuneConfig

    data = load_dataset(DataConfig(name="digits"))
    teacher = train_once(0).eval()
    # a teacher with permuted classes: only the distillation loss can teach that mapping
    perm = torch.roll(torch.arange(10), 1)
    with torch.no_grad():
        last = teacher[-1]
        last.weight.copy_(last.weight[perm.argsort()])
        last.bias.copy_(last.bias[perm.argsort()])
    ctx = RunContext(torch.device("cpu"), 0)
    cfg = FinetuneConfig(epochs=2, batch_size=64, lr=0.003, distill=1.0, temperature=2.0)
    torch.manual_seed(0)
    student = build_model("lenet-300-100", {})
    fit(student, data, cfg, ctx, teacher=teacher)
    assert _agreement(student.eval(), teacher, data.test.x) > 0.9
    with pytest.raises(InputError, match="needs the uncompressed model as teacher"):
        fit(student, data, cfg, ctx)


def test_a_non_finite_loss_stops_training_with_a_clear_error():
    import pytest

    from compress.errors import TrainingError

    data = load_dataset(DataConfig(name="digits"))
    model = build_model("lenet-300-100", {})
    with torch.no_grad():
        model[1].bias.fill_(float("nan"))
    with pytest.raises(TrainingError, match="the loss became nan by step 10") as info:
        fit(model, data, TrainConfig(epochs=1, batch_size=64), RunContext(torch.device("cpu"), 0))
    assert "lower the learning rate" in info.value.hint


def test_max_steps_ends_training_and_the_schedule_there():
    data = load_dataset(DataConfig(name="digits"))
    model = build_model("lenet-300-100", {})
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.003, max_steps=30)  # 23 steps an epoch: stops in the second

    class Last(TrainHook):
        def after_step(self, model, step, total):
            self.step, self.total = step, total

    hook = Last()
    res = fit(model, data, cfg, RunContext(torch.device("cpu"), 0), hooks=[hook])
    assert res.steps == hook.step == hook.total == 30


def test_bf16_autocast_trains_and_fp16_on_the_cpu_is_refused():
    import pytest

    from compress.errors import InputError

    data = load_dataset(DataConfig(name="digits"))
    torch.manual_seed(0)
    model = build_model("lenet-300-100", {})
    fit(model, data, TrainConfig(epochs=2, batch_size=64, lr=0.003, precision="bf16"), RunContext(torch.device("cpu"), 0))
    assert evaluate(model, data.test, 1000, torch.device("cpu")).accuracy > 85.0
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: the weights stay fp32
    with pytest.raises(InputError, match="train.precision: fp16 needs a CUDA device"):
        fit(model, data, TrainConfig(precision="fp16"), RunContext(torch.device("cpu"), 0))


def test_channels_last_training_keeps_masks_and_grids_and_ends_in_the_usual_layout(tmp_path, cnn_base):
    import compress
    from tests.conftest import from_checkpoint

    for quantize in ({"bits": 4, "method": "kmeans"}, {"bits": 4}):
        raw = from_checkpoint(tmp_path / quantize.get("method", "linear"), cnn_base, {"prune": {"rate": 60}},
                              {"quantize": quantize}, {"finetune": {"epochs": 1, "channels_last": True}})
        res = compress.run(compress.load_recipe(raw))
        rows = {r.stage: r for r in res.report.rows}
        assert rows["finetune"].nonzero <= rows["prune"].nonzero  # pruned weights stayed zero
        weight = res.model[3].weight  # the second convolution
        levels = max(len(torch.unique(channel)) for channel in weight)  # linear grids are per output channel
        assert weight.is_contiguous() and levels <= 17  # 4-bit codes (+ the pruned zeros)
        x = res.state.data.test.head(8).x
        assert torch.equal(compress.load(res.output)(x), res.model.cpu().eval()(x))
