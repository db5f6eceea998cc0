from __future__ import annotations

import torch

from nasbench_eval.spaces import derive_genotype, discrete_weights, load_space
from nasbench_eval.spaces.darts.genotype import Genotype


def test_derivation_rule_on_hand_made_alphas():
    sp = load_space("s3")  # columns: none, skip_connect, sep_conv_3x3
    w = torch.full((14, 3), 0.1)
    # node 0 (edges 0, 1): both kept (only two inputs)
    w[0] = torch.tensor([0.0, 0.6, 0.4])
    w[1] = torch.tensor([0.0, 0.2, 0.8])
    # node 1 (edges 2, 3, 4): edge 2 has the biggest weight on 'none' -> ignored for ranking
    w[2] = torch.tensor([0.95, 0.03, 0.02])
    w[3] = torch.tensor([0.1, 0.5, 0.4])
    w[4] = torch.tensor([0.1, 0.2, 0.7])
    # node 3 (edges 9..13): edges 12 and 10 are strongest
    w[10] = torch.tensor([0.0, 0.8, 0.2])
    w[12] = torch.tensor([0.0, 0.1, 0.9])
    g = derive_genotype(sp, {"normal": w, "reduce": w.clone()})
    assert g.normal[0:2] == (("sep_conv_3x3", 1), ("skip_connect", 0))  # strongest first
    assert g.normal[2:4] == (("sep_conv_3x3", 2), ("skip_connect", 1))
    assert g.normal[6:8] == (("sep_conv_3x3", 3), ("skip_connect", 1))
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    assert g.normal_concat == (2, 3, 4, 5)


def test_ties_keep_lower_edge_and_op_index():
    sp = load_space("s2")
    w = torch.full((14, 2), 0.5)
    g = derive_genotype(sp, {"normal": w, "reduce": w})
    assert g.normal == (("skip_connect", 0), ("skip_connect", 1)) * 4


def test_discrete_weights_round_trip_and_fraction():
    sp = load_space("darts")
    torch.manual_seed(0)
    alphas = {c: torch.randn(*s) for c, s in sp.arch_shapes().items()}
    g = derive_genotype(sp, alphas)
    w = discrete_weights(sp, g)
    assert all(w[c].sum().item() == 8 for c in w)
    assert all(((w[c].sum(1) == 0) | (w[c].sum(1) == 1)).all() for c in w)
    g2 = derive_genotype(sp, w)  # one-hot weights tie, so compare each node as a set
    for cell in ("normal", "reduce"):
        a, b = g.cell(cell), g2.cell(cell)
        assert [set(a[i:i + 2]) for i in range(0, 8, 2)] == [set(b[i:i + 2]) for i in range(0, 8, 2)]
    assert Genotype.from_dict(g.to_dict()) == g


def test_param_free_fraction():
    g = Genotype(normal=(("skip_connect", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0),
                         ("noise", 1), ("dil_conv_3x3", 2), ("avg_pool_3x3", 0),
                         ("sep_conv_5x5", 1), ("skip_connect", 2)),
                 reduce=(("sep_conv_3x3", 0),) * 8, normal_concat=(2, 3, 4, 5),
                 reduce_concat=(2, 3, 4, 5))
    assert g.param_free_fraction("normal") == 5 / 8
    assert g.param_free_fraction("reduce") == 0.0
