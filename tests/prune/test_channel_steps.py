"""A climb's next cut, measured from the model it holds: each group's next share, the cheapest per unit saved."""
import copy

import pytest
import torch

import compress
from compress.prune import channel_cost, channel_steps
from compress.prune.channel_plan import GroupPlan
from compress.prune.channel_steps import Step


def test_the_next_share_removes_more_channels():
    group = GroupPlan(None, "g", 4, 0)  # shares 0.25/0.5/0.625/0.75/0.875 remove 1/2/2/3/3 channels (one stays)
    assert channel_steps.next_share(group, 0.0) == 0.25
    assert channel_steps.next_share(group, 0.5) == 0.75  # 0.625 removes no more than 0.5
    assert channel_steps.next_share(group, 0.75) is None  # its last channel stays


def test_steps_are_taken_cheapest_per_unit_saved_until_the_goal_and_never_for_nothing():
    a, b = Step("a", 0.25, 1.0, 10.0), Step("b", 0.25, 0.5, 1.0)
    free, useless = Step("free", 0.25, -0.1, 2.0), Step("useless", 0.25, 0.0, 0.0)
    steps = [a, b, free, useless]
    assert channel_steps.choose(steps, 5.0) == [free, a]
    assert channel_steps.choose(steps, 0.0) == [free]  # always at least one step
    assert channel_steps.choose(steps, 100.0) == [free, a, b]  # a cut that saves nothing is not taken
    assert channel_steps.choose([useless, Step("worse", 0.5, 3.0, -1.0)], 1.0) == [useless]  # unless none saves


def test_a_group_whose_next_share_saves_nothing_is_measured_one_share_further():
    """On a CPU 16 → 12 channels can be slower than 16 and 16 → 8 faster: the step spans both shares."""
    import types

    groups = [GroupPlan(None, "a", 16, 0), GroupPlan(None, "b", 16, 0)]
    effect = {"a": {4: 5.0, 8: -10.0}, "b": {4: -3.0, 8: -6.0}}  # ms added by removing that many channels

    def prune(model, remove):
        for name, n in remove.items():
            model.removed[name] = model.removed.get(name, 0) + n

    def cost(model):
        return 50.0 + sum(effect[g][n] for g, n in model.removed.items() if n)

    now, steps = channel_steps.measure(types.SimpleNamespace(removed={}), groups, {}, prune, cost,
                                       lambda m: 0.1 * sum(m.removed.values()))
    assert now == 50.0
    assert steps == [Step("a", 0.5, pytest.approx(0.8), 10.0), Step("b", 0.25, pytest.approx(0.4), 3.0)]


def test_a_path_can_start_part_way():
    groups = [GroupPlan(None, "fragile", 10, 0), GroupPlan(None, "robust", 10, 0)]
    tables = channel_cost.Tables(groups, {"fragile": {0.5: 2.0, 1.0: 9.0}, "robust": {0.5: 0.1, 1.0: 0.5}},
                                 {"fragile": {0.5: 10.0, 1.0: 20.0}, "robust": {0.5: 10.0, 1.0: 20.0}}, 100.0)
    path = channel_cost.path(tables, start={"fragile": 0.5, "robust": 0.0})
    assert path == [{"fragile": 0.5, "robust": 0.0}, {"fragile": 0.5, "robust": 0.5},
                    {"fragile": 0.5, "robust": 1.0}, {"fragile": 1.0, "robust": 1.0}]


def _walk(cnn_base):
    from compress.context import RunContext
    from compress.data import load_dataset
    from compress.method import Workspace
    from compress.prune import structured
    from compress.prune.channel_search import Walk
    from compress.recipe import ChannelPrune, DataConfig

    model = compress.load(cnn_base)
    ws = Workspace(load_dataset(DataConfig(name="digits")), RunContext(torch.device("cpu")), 1000)
    cfg, example = ChannelPrune(rate=0.0), ws.data.test.x[:1]
    groups = structured.plan_groups(model, cfg, ws, example)
    walk = Walk(model, cfg, ws, example, groups, channel_cost.uniform_path(groups))
    params = lambda m: float(sum(p.numel() for p in m.parameters()))  # noqa: E731
    walk.tables = channel_cost.measure(model, groups, walk.prune, params, ws, limit=200)
    walk.path, walk.cost = channel_cost.path(walk.tables), params
    return walk, params


def test_a_climb_step_saves_its_share_of_what_is_left_and_rewrites_the_path_beyond_it(cnn_base):
    walk, params = _walk(cnn_base)
    at = 2
    model, before = walk.cut(copy.deepcopy(walk.dense), at), walk.path[:at + 1]
    end = params(walk.cut(copy.deepcopy(walk.dense), len(walk.path) - 1))
    level = walk.advance(model, at, 3)
    assert level is not None and level > at and walk.path[:at + 1] == before
    for old, new in zip(walk.path[at:level], walk.path[at + 1:level + 1], strict=True):  # one group a stop
        changed = [g for g in new if new[g] != old[g]]
        assert len(changed) == 1 and new[changed[0]] > old[changed[0]]
    walk.cut(model, level, since=at)
    now = params(walk.cut(copy.deepcopy(walk.dense), at))
    assert params(model) <= now - (now - end) / 3  # the step saved its third of what was left
    assert walk.path[-1] == channel_cost.path(walk.tables)[-1]  # the rewritten path still ends at every last share
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in walk.cut(copy.deepcopy(walk.dense), level).state_dict().items()} == shapes


def test_a_climb_step_follows_what_the_model_saves_now_not_the_tables(cnn_base):
    """The tables (parameters) say every group saves; measured now, only one group's cut saves anything."""
    walk, _ = _walk(cnn_base)
    first = next(g for g in walk.path[1] if walk.path[1][g] > 0)  # what the tables would cut first
    target = next(g for g in walk.groups if g.name != first)
    walk.cost = lambda m: float(dict(m.named_modules())[target.name].weight.shape[0])
    level = walk.advance(copy.deepcopy(walk.dense), 0, 8)
    assert level == 1 and walk.path[1] == {**walk.path[0], target.name: 0.25}


def test_a_climb_ends_when_no_group_has_a_share_left_to_cut(cnn_base):
    walk, _ = _walk(cnn_base)
    walk.path = [walk.path[0], walk.path[-1], walk.path[-1]]  # the last position repeats the one before
    assert walk.advance(walk.cut(copy.deepcopy(walk.dense), 1), 1, 4) is None


@pytest.mark.parametrize("start", [0, 5])
def test_a_uniform_path_is_climbed_in_equal_strides(cnn_base, start):
    from compress.prune.channel_search import Walk

    walk, _ = _walk(cnn_base)
    walk = Walk(walk.dense, walk.cfg, walk.ws, walk.example, walk.groups, channel_cost.uniform_path(walk.groups))
    path = list(walk.path)
    assert walk.advance(walk.dense, start, 5) == start + round((20 - start) / 5) and walk.path == path
    assert walk.advance(walk.dense, 20, 5) is None
