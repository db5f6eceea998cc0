from __future__ import annotations

from pathlib import Path

import pytest

from nasbench_eval.errors import SpecError, UnknownNameError
from nasbench_eval.spaces.registry import builtin_spaces, load_space, load_spec_file, spec_dir


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


def test_builtin_spaces_present():
    assert {"darts", "s1", "s2", "s3", "s4"} <= set(builtin_spaces())
    assert spec_dir().is_dir()


@pytest.mark.parametrize("name,ops", [
    ("darts", ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
               "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")),
    ("s2", ("skip_connect", "sep_conv_3x3")),
    ("s3", ("none", "skip_connect", "sep_conv_3x3")),
    ("s4", ("noise", "sep_conv_3x3")),
])
def test_uniform_spaces(name, ops):
    sp = load_space(name)
    assert sp.num_edges == 14
    assert sp.uniform_ops() == ops
    assert sp.arch_shapes() == {"normal": (14, len(ops)), "reduce": (14, len(ops))}


def test_s1_has_per_edge_lists_in_both_cells():
    sp = load_space("s1")
    assert sp.uniform_ops() is None
    assert sp.edge_ops["normal"][0] == ("skip_connect", "dil_conv_3x3")
    assert sp.edge_ops["normal"][5] == ("max_pool_3x3", "skip_connect")
    assert sp.edge_ops["normal"][13] == ("dil_conv_3x3", "dil_conv_5x5")
    assert sp.edge_ops["reduce"][0] == ("max_pool_3x3", "avg_pool_3x3")
    assert sp.edge_ops["reduce"][6] == ("max_pool_3x3", "sep_conv_3x3")
    assert sp.edge_ops["reduce"][13] == ("skip_connect", "dil_conv_5x5")
    assert all(len(ops) == 2 for c in ("normal", "reduce") for ops in sp.edge_ops[c])


def test_cell_counts_are_computed():
    # node k has k+2 inputs: C(2,2) C(3,2) C(4,2) C(5,2) = 180 edge choices per cell
    assert load_space("darts").count_cells("normal") == 180 * 7 ** 8  # 7 non-none ops, 8 edges
    for name in ("s1", "s2", "s3", "s4"):
        assert load_space(name).count_cells("normal") == 180 * 2 ** 8
    assert load_space("s3").count_architectures() == (180 * 2 ** 8) ** 2


def test_spec_by_path_and_per_cell_ops(tmp_path):
    p = write(tmp_path, 'name="x"\nfamily="darts-cell"\nnodes=2\n'
                        '[normal]\nops=["skip_connect","sep_conv_3x3"]\n[reduce]\nops=["max_pool_3x3"]\n')
    sp = load_space(str(p))
    assert sp.num_edges == 5 and sp.arch_shapes()["reduce"] == (5, 1)


@pytest.mark.parametrize("text,field,fragment", [
    ('name="x"\nfamily="darts-cell"\nnodes=4\nops=["skip_connect","sep_conv_9x9"]\n',
     "ops[1]", "valid ops: avg_pool_3x3"),
    ('name="x"\nfamily="tree"\nnodes=4\nops=["skip_connect"]\n', "family", "valid families: darts-cell"),
    ('name="x"\nnodes=4\nops=["skip_connect"]\n', "family", "missing"),
    ('name="x"\nfamily="darts-cell"\nnodes=4\nops=["skip_connect"]\ncolour="red"\n', "colour",
     "valid fields"),
    ('name="x"\nfamily="darts-cell"\nnodes=0\nops=["skip_connect"]\n', "nodes", "integer"),
    ('name="x"\nfamily="darts-cell"\nnodes=4\nops=["none"]\n', "ops", "other than 'none'"),
    ('name="x"\nfamily="darts-cell"\nnodes=4\nops=["skip_connect","skip_connect"]\n', "ops", "twice"),
    ('name="x"\nfamily="darts-cell"\nnodes=4\n', "normal", "missing"),
    ('name="x"\nfamily="darts-cell"\nnodes=2\n[normal]\nedge_ops=[["skip_connect"]]\n[reduce]\nops=["skip_connect"]\n',
     "normal.edge_ops", "exactly 5 edges"),
    ('name="x"\nfamily="darts-cell"\nnodes=1\n[normal]\nedge_ops=[["skip_connect"],["skip_connect","sep_conv_3x3"]]\n'
     '[reduce]\nops=["skip_connect"]\n', "normal.edge_ops", "same number of candidates"),
    ('name="x"\nfamily="darts-cell"\nnodes=2\n[normal]\nops=["skip_connect"]\nedge_ops=[]\n[reduce]\nops=["skip_connect"]\n',
     "normal", "exactly one of"),
    ('name = [unclosed\n', "<toml>", "not valid TOML"),
])
def test_malformed_specs_name_file_and_field(tmp_path, text, field, fragment):
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec_file(p)
    assert info.value.field == field
    msg = str(info.value)
    assert str(p) in msg and f"'{field}'" in msg and fragment in msg


def test_unknown_space_lists_choices():
    with pytest.raises(UnknownNameError) as info:
        load_space("s9")
    assert "s9" in str(info.value)
    for name in ("darts", "s1", "s2", "s3", "s4", "sharpdarts", "nb1shot1-1"):
        assert name in info.value.valid


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_space(str(tmp_path / "nope.toml"))
