"""PC-DARTS: partial channel edges (1/K through the candidates, bypass, shuffle) and edge
normalisation (derivation by softmax(beta) x softmax(alpha))."""
from __future__ import annotations

import pytest
import torch

from nasbench_eval.config import RunConfig
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.methods import create_method
from nasbench_eval.methods.composed import edge_scale
from nasbench_eval.spaces import load_space
from nasbench_eval.spaces.darts.supernet import MixedEdge
from nasbench_eval.spaces.nb101.supernet import ChoiceBlock
from nasbench_eval.spaces.nb201.supernet import MixedEdge as Nb201MixedEdge


def _shuffle_by_hand(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Output channel i * groups + g is input channel g * (C / groups) + i."""
    c = x.shape[1]
    n = c // groups
    out = torch.empty_like(x)
    for g in range(groups):
        for i in range(n):
            out[:, i * groups + g] = x[:, g * n + i]
    return out


def _partial(kind: str, stride: int):
    """A mixed edge on 8 channels under partial channels K=4: a DARTS edge (with a zero
    candidate, which has no module), a NAS-Bench-201 edge (stride 1) or a NAS-Bench-1Shot1
    choice block's mixed op."""
    if kind == "darts":
        edge = MixedEdge(("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"),
                         channels=8, stride=stride)
        columns = edge.columns
    elif kind == "nb201":
        edge = Nb201MixedEdge(("none", "avg_pool_3x3", "skip_connect", "nor_conv_3x3"),
                              channels=8)
        columns = edge.columns
    else:
        edge = ChoiceBlock(("maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu"), channels=8)
        columns = [0, 1, 2]
    edge.set_partial(4)
    conv = edge.ops[columns.index(1 if kind == "nb1shot1" else 3)]
    assert next(conv.parameters()).shape[0] == 2  # rebuilt on 8 / 4 = 2 channels
    return edge.double(), columns


@pytest.mark.parametrize("kind,stride", [("darts", 1), ("darts", 2), ("nb201", 1),
                                         ("nb1shot1", 1)])
def test_edge_output_is_candidates_on_a_quarter_concatenated_with_the_bypass_shuffled(
        kind, stride):
    torch.manual_seed(0)
    edge, columns = _partial(kind, stride)
    x = torch.randn(3, 8, 6, 6, dtype=torch.float64)
    w = torch.tensor([0.1, 0.2, 0.3, 0.4] if kind != "nb1shot1" else [0.1, 0.2, 0.3],
                     dtype=torch.float64)
    w = w / w.sum() * 0.7  # row sum 0.7: the bypass is scaled by it
    out = edge(x, w)
    inner = sum(w[k] * op(x[:, :2]) for k, op in zip(columns, edge.ops))
    rest = x[:, 2:] if stride == 1 else torch.nn.functional.max_pool2d(x[:, 2:], 2, 2)
    expected = _shuffle_by_hand(torch.cat([inner, 0.7 * rest], dim=1), 4)
    assert out.shape == (3, 8, 6 // stride, 6 // stride)
    assert torch.allclose(out, expected, atol=1e-14)


def _tiny(method: str = "pc-darts", space: str = "darts", **options):
    cfg = RunConfig(method=method, space=space, layers=3, channels=8, epochs=4,
                    method_options=options)
    torch.manual_seed(0)
    net = load_space(space).build_supernet(8, 3, 3, 1)
    m = create_method(method)
    m.setup(net, load_space(space), cfg, steps_per_epoch=4)
    return m, net


@pytest.mark.parametrize("space", ["darts", "nb1shot1-1", "nb201"])
def test_partial_channels_shrink_the_candidates_and_the_method_trains(space):
    m, net = _tiny(space=space)
    full = load_space(space).build_supernet(8, 3, 3, 1)
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in full.parameters())
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 3, (4,), generator=g))
    grads, _ = m.alpha_grads(batch, batch)
    beta_grads = grads[len(m.alphas):]
    before = {k: b.detach().clone() for k, b in m.betas.items()}
    out = m.step(batch, batch)
    assert torch.isfinite(out["train_loss"])
    if space != "nb1shot1-1":
        assert all(not torch.equal(before[k], m.betas[k]) for k in before)  # beta is learned
    else:  # every beta is alone in its group: softmax 1, no gradient (NB-1Shot1: no beta)
        assert all(not g.any() for g in beta_grads)


@pytest.mark.parametrize("space", ["darts", "nb1shot1-2", "nb201"])
def test_channels_not_divisible_by_k_are_refused_with_the_flag(space):
    with pytest.raises(NasbenchEvalError, match="--partial-channels 3"):
        _tiny(space=space, partial_channels=3)


def test_edge_normalisation_is_the_identity_on_nb1shot1():
    """NAS-Bench-1Shot1's PC-DARTS has no beta: the edges into a node are the columns of its
    parents / output row, already a softmax. Every beta is alone in its group, so however
    large, it changes neither the mixing weights nor the derived cell."""
    m, _ = _tiny(space="nb1shot1-1")
    assert m.groups == {k: tuple((r,) for r in range(s[0]))
                        for k, s in m.space.arch_shapes().items()}
    with torch.no_grad():
        for a in m.alphas.values():
            a.zero_()
        m.alphas["parents_4"][0] = torch.tensor([0.0, 3.0, 2.0, 1.0])  # parents 1, 2
        m.alphas["output"][0] = torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0])  # output: 4, 3
        m.alphas["ops"][:, 1] = 1.0
    plain = m.space.derive({k: torch.softmax(v.detach(), -1) for k, v in m.alphas.items()})
    assert plain.parents[3] == (1, 2) and plain.output == (3, 4)
    mixing = m.mixing_weights()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for b in m.betas.values():
            b.copy_(5.0 * torch.randn(b.shape, generator=g))
    assert m.derive() == plain
    assert all(torch.equal(mixing[k], v) for k, v in m.mixing_weights().items())


def test_edge_normalisation_changes_which_edges_are_derived():
    m, _ = _tiny()
    space = m.space
    # node 1 of the normal cell: edges 2, 3, 4 from states 0, 1, 2
    node1 = [e for e, (_, t) in enumerate(space.edges) if t == 1]
    assert node1 == [2, 3, 4]
    with torch.no_grad():
        for a in m.alphas.values():
            a.zero_()
        for b in m.betas.values():
            b.zero_()
        a = m.alphas["normal"]
        conv = space.edge_ops["normal"][2].index("sep_conv_3x3")
        a[2, conv], a[3, conv], a[4, conv] = 3.0, 2.0, 1.0  # alpha ranks edges 2 > 3 > 4
    plain = space.derive({k: torch.softmax(v.detach(), -1) for k, v in m.alphas.items()})
    assert sorted(src for _, src in plain.normal[2:4]) == [0, 1]
    assert sorted(src for _, src in m.derive().normal[2:4]) == [0, 1]  # beta = 0: no change
    with torch.no_grad():
        m.betas["normal"][4] = 3.0  # beta favours the edge from state 2
    # softmax(beta) x softmax(alpha): edge 4 now outranks edge 3
    scale = edge_scale(m.betas["normal"].detach(), m.groups["normal"])
    w = torch.softmax(m.alphas["normal"].detach(), -1) * scale[:, None]
    assert w[4].max() > w[3].max()
    assert sorted(src for _, src in m.derive().normal[2:4]) == [0, 2]


def test_edge_scale_is_a_softmax_within_each_node():
    beta = torch.tensor([0.0, 1.0, 0.5, -0.5, 2.0])
    s = edge_scale(beta, ((0, 1), (2, 3, 4)))
    assert torch.allclose(s[:2], torch.softmax(beta[:2], 0))
    assert torch.allclose(s[2:], torch.softmax(beta[2:], 0))


# ----------------------------------------------------------------------------- NAS-Bench-201

def test_nb201_node_edges_are_the_edges_summed_into_each_node():
    net = load_space("nb201").build_supernet(4, 3, 3, 1)
    # edges in architecture-string order: 1<-0 | 2<-0 2<-1 | 3<-0 3<-1 3<-2
    assert net.node_edges() == {"cell": ((0,), (1, 2), (3, 4, 5))}


def test_nb201_edge_normalisation_scales_the_edges_but_never_changes_the_derived_cell():
    """NAS-Bench-201 derives the argmax of every edge (none included): a positive scale per
    row (softmax(beta)) cannot change it, so on nb201 beta acts on the search only (its
    forward), unlike the DARTS cells' top-2 edge choice."""
    m, net = _tiny(space="nb201")
    with torch.no_grad():
        m.alphas["cell"].copy_(torch.randn_like(m.alphas["cell"]))
    before = m.derive()
    assert before == m.space.derive({"cell": torch.softmax(m.alphas["cell"].detach(), -1)})
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 1, 8, 8, generator=g)
    net.eval()  # running statistics: the forward does not depend on the batch
    out0 = net(x, m.mixing_weights())
    with torch.no_grad():
        m.betas["cell"].copy_(torch.tensor([0.0, 5.0, -5.0, 3.0, -3.0, 0.0]))
    assert m.derive() == before
    assert not torch.allclose(net(x, m.mixing_weights()), out0)
