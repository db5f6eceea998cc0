"""The method seam (declared hooks with defaults, typed options, the registry) and the supernet
seam (candidates, classifier, edge forward, drop-path) that methods use instead of internals."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nasbench_eval.config import RunConfig
from nasbench_eval.data import Augment, BatchStream
from nasbench_eval.errors import UnknownNameError
from nasbench_eval.methods import (METHODS, GradientMethod, Method, WeightTraining,
                                   create_method, load_all, method_class, register)
from nasbench_eval.options import Option, OptionError
from nasbench_eval.registry import Registry
from nasbench_eval.spaces import load_space
from nasbench_eval.spaces.darts.supernet import DartsSupernet
from nasbench_eval.spaces.supernet import Candidate, EdgeCall, SupernetSeamError

BUILTIN = ["darts", "darts-2nd", "darts-es", "maxw", "msr", "random-ws", "rdarts-dp",
           "rdarts-l2", "sdarts-adv", "sdarts-rs"]


# ----------------------------------------------------------------------------- registry

def test_registry_and_accessors():
    assert isinstance(METHODS, Registry)
    assert set(BUILTIN) <= set(load_all()) and all(name in METHODS for name in BUILTIN)
    assert method_class("darts").name == "darts" and create_method("maxw").name == "maxw"
    with pytest.raises(UnknownNameError, match="did you mean 'darts'"):
        method_class("dartz")
    with pytest.raises(RuntimeError, match="registered twice"):
        register(type("Other", (GradientMethod,), {"name": "darts"}))


@pytest.mark.parametrize("name", BUILTIN)
def test_every_method_declares_typed_options_and_metadata(name):
    cls = method_class(name)
    assert issubclass(cls, Method) and cls.paper and cls.description()
    for key, opt in cls.options.items():
        assert isinstance(opt, Option) and opt.help, key
        assert opt.parse(opt.default, key) == opt.default  # defaults pass their own checks
    assert not hasattr(cls, "option_help")


def test_weight_only_methods_have_no_alpha_machinery():
    for name in ("msr", "random-ws"):
        cls = method_class(name)
        assert issubclass(cls, WeightTraining) and not issubclass(cls, GradientMethod)
    for name in set(BUILTIN) - {"msr", "random-ws"}:
        assert issubclass(method_class(name), GradientMethod)


@pytest.mark.parametrize("name,options,flag", [
    ("sdarts-adv", {"pgd_steps": 0}, "--pgd-steps"),
    ("sdarts-adv", {"pgd_step_size": -1.0}, "--pgd-step-size"),
    ("msr", {"msr_mixing": "softmax"}, "--msr-mixing"),
    ("random-ws", {"rws_samples": 0}, "--rws-samples"),
    ("rdarts-dp", {"rdarts_dp_scope": "cell"}, "--rdarts-dp-scope"),
    ("rdarts-dp", {"rdarts_dp": 1.0}, "--rdarts-dp"),
    ("darts-es", {"es_factor": 0}, "--es-factor"),
    ("darts-2nd", {"hvp_r": "abc"}, "--hvp-r"),
])
def test_bad_option_values_name_the_flag(name, options, flag):
    sp = load_space("s3")
    net = DartsSupernet(sp, channels=4, layers=3, in_channels=1)
    cfg = RunConfig(method=name, space="s3", method_options=options)
    with pytest.raises(OptionError, match=flag):
        create_method(name).setup(net, sp, cfg, steps_per_epoch=1)


def test_none_options_accept_text_none():
    sp = load_space("s3")
    net = DartsSupernet(sp, channels=4, layers=3, in_channels=1)
    m = create_method("sdarts-adv")
    m.setup(net, sp, RunConfig(method="sdarts-adv", space="s3",
                               method_options={"pgd_step_size": "None"}), steps_per_epoch=1)
    assert m.pgd_step_size is None
    d = create_method("rdarts-dp")
    d.setup(net, sp, RunConfig(method="rdarts-dp", space="s3",
                               method_options={"rdarts_cutout": "none"}), steps_per_epoch=1)
    assert d.cutout_side is None


def test_a_minimal_method_gets_every_hook_by_default():
    class Fixed(Method):
        """FIXED: uniform weights, no training."""

        name = "fixed-test"

        def step(self, train_batch, val_batch):
            return {}

        def mixing_weights(self):
            return {k: torch.full(s, 0.5) for k, s in self.supernet.arch_shapes().items()}

        def derive(self):
            return self.space.derive(self.mixing_weights())

    sp = load_space("s3")
    net = DartsSupernet(sp, channels=4, layers=3, in_channels=1)
    m = Fixed()
    assert m.adapt_space(sp) is sp
    m.setup(net, sp, RunConfig(method="darts", space="s3"), steps_per_epoch=1)
    m.set_execution(None, torch.device("cpu"))
    m.bind_data({})
    m.make_capturable(False)
    assert m.end_epoch(0) == {} and m.epoch == 1
    other = Fixed()
    other.load_state_dict(m.state_dict())
    assert other.epoch == 1 and m.derive() is not None
    assert Fixed.capturable is False and Fixed.config_defaults == {} and Fixed.options == {}


# ----------------------------------------------------------------------------- supernet seam

def _net(space="s3", seed=0):
    torch.manual_seed(seed)
    return DartsSupernet(load_space(space), channels=4, layers=3, num_classes=3, in_channels=1)


def test_candidates_enumerate_every_edge_module_in_order():
    net = _net()
    cands = list(net.candidates())
    assert all(isinstance(c, Candidate) for c in cands)
    expected = [(i, cell.cell_type, e, k, edge.op_names[k], op)
                for i, cell in enumerate(net.cells) for e, edge in enumerate(cell.edges)
                for k, op in zip(edge.columns, edge.ops)]
    assert [(c.cell, c.cell_type, c.edge, c.column, c.op, c.module) for c in cands] == expected
    assert isinstance(net.classifier, nn.Linear)


def test_edge_forward_replaces_edges_and_fused_cells_step_aside():
    net = _net().train()
    x = torch.randn(4, 1, 8, 8)
    w = {c: torch.softmax(torch.randn(s), -1) for c, s in net.arch_shapes().items()}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    plain = net(x, w)  # per-edge loop, fused_edges off
    calls: list[EdgeCall] = []

    def passthrough(edge, x_, w_):
        calls.append(edge)
        return edge.default(x_, w_)

    net.load_state_dict(state)
    net.set_fused_edges(True)
    net.set_edge_forward(passthrough)
    # bitwise equal: the fused path (which sums in another order) was not used
    assert torch.equal(net(x, w), plain)
    assert len(calls) == 3 * 14 and {c.cell for c in calls} == {0, 1, 2}
    assert calls[0].op_names == net.space.edge_ops["normal"][0]

    net.set_edge_forward(lambda edge, x_, w_: 0.0 * edge.default(x_, w_))
    assert not torch.equal(net(x, w), plain)
    net.set_edge_forward(None)
    calls.clear()
    net(x, w)
    assert calls == []


def test_set_drop_path_validates_and_other_families_refuse():
    net = _net()
    net.set_drop_path(0.3, "edge")
    assert (net.drop_path_prob, net.drop_path_scope) == (0.3, "edge")
    with pytest.raises(SupernetSeamError, match="scope"):
        net.set_drop_path(0.3, "cell")
    with pytest.raises(SupernetSeamError, match=r"\[0, 1\)"):
        net.set_drop_path(1.0)
    nb = load_space("nb1shot1-3")
    nb_net = nb.build_supernet(4, 3, 3, 1)
    with pytest.raises(SupernetSeamError, match="set_drop_path"):
        nb_net.set_drop_path(0.2, "op")
    m = create_method("rdarts-dp")  # refuses with the seam's error, not an AttributeError
    with pytest.raises(SupernetSeamError):
        m.setup(nb_net, nb, RunConfig(method="rdarts-dp", space="nb1shot1-3"), steps_per_epoch=1)


def test_stream_set_cutout_keeps_the_other_augmentation():
    x = torch.zeros(8, 1, 6, 10, dtype=torch.uint8)
    s = BatchStream(x, torch.zeros(8, dtype=torch.long), 4, (0.5,), (0.5,),
                    torch.device("cpu"), augment=Augment(crop_padding=2, hflip=True))
    assert s.image_size == (6, 10)
    s.set_cutout(3, 0.5)
    assert s.augment == Augment(crop_padding=2, hflip=True, cutout=3, cutout_prob=0.5)


def test_refused_calls_are_the_seam_calls_a_supernet_refuses():
    from nasbench_eval.spaces.supernet import SEAM_PROBES, refused_calls
    calls = tuple(SEAM_PROBES)
    assert refused_calls(_net(), calls) == []  # DARTS cells provide every seam call
    nb = load_space("nb1shot1-1").build_supernet(4, 3, 3, 1)
    assert refused_calls(nb, calls) == ["set_drop_path"]
    assert refused_calls(nb, ("no_such_call",)) == ["no_such_call"]


def test_every_bundled_family_declares_the_seam_calls_its_supernet_provides():
    """``SpaceFamily.supernet_calls`` (what ``list methods`` reads without torch) is exactly
    what a supernet of the family accepts."""
    from nasbench_eval.spaces import builtin_spaces, family_of
    from nasbench_eval.spaces.supernet import SEAM_PROBES, refused_calls
    seen = set()
    for name in builtin_spaces():
        space = load_space(name)
        if space.family in seen:
            continue
        seen.add(space.family)
        net = space.build_supernet(4, 3, 3, 1)
        provided = [c for c in SEAM_PROBES if c not in refused_calls(net, tuple(SEAM_PROBES))]
        assert sorted(family_of(space).supernet_calls) == sorted(provided), space.family
    assert seen >= {"darts-cell", "nb101-cell", "nb201-cell"}
