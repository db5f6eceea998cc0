from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nasbench_eval.cli import main

TINY = ["--layers", "3", "--channels", "4", "--batch-size", "32", "--max-steps-per-epoch", "2",
        "--quiet"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_list_spaces_shows_ops_and_counts():
    res = invoke("list", "spaces")
    assert res.exit_code == 0, res.output
    for name in ("darts", "s1", "s2", "s3", "s4"):
        assert f"\n{name} " in "\n" + res.output
    assert "1,037,664,180" in res.output  # DARTS: ~10^9 cells (180 * 7^8)
    assert "46,080" in res.output and "noise" in res.output


def test_list_methods_and_datasets():
    res = invoke("list", "methods")
    assert res.exit_code == 0 and "darts-2nd" in res.output and "--hvp-r" in res.output
    # the bundled spaces each method applies to (issue 18: the nb1shot1 spaces for all three)
    where, method = {}, None
    for line in res.output.splitlines():
        if line[:1].strip():
            method = line.split()[0]
        elif line.strip().startswith("spaces:"):
            where[method] = line.split("(bundled: ")[1].rstrip(")").split(", ")
    for name in ("gdas", "pc-darts", "drnas"):
        assert {"nb1shot1-1", "nb1shot1-2", "nb1shot1-3", "s3", "darts"} <= set(where[name])
    assert "nb1shot1-1" not in where["msr"]  # msr: DARTS cells only
    res = invoke("list", "datasets")
    assert res.exit_code == 0 and "digits" in res.output and "cifar10" in res.output


def test_unknown_names_list_valid_choices(tmp_path):
    res = invoke("run", "--method", "dartz", "--out", str(tmp_path))
    assert res.exit_code != 0 and "unknown method 'dartz'" in res.output and "darts-2nd" in res.output
    res = invoke("run", "--space", "s7", "--out", str(tmp_path))
    assert "unknown space 's7'" in res.output and "s1, s2, s3, s4" in res.output
    assert "nb1shot1-3" in res.output
    res = invoke("run", "--dataset", "mnist", "--out", str(tmp_path))
    assert "unknown dataset 'mnist'" in res.output and "fashion-mnist" in res.output
    res = invoke("list", "oracles")
    assert res.exit_code == 0 and "oneshot" in res.output and "train_epochs=" in res.output
    res = invoke("list", "oracle")
    assert res.exit_code != 0 and "No such command 'oracle'" in res.output
    res = invoke("run", "-o", "hvp_r=0.1", "--out", str(tmp_path), *TINY)
    assert res.exit_code != 0 and "method 'darts' has no option --hvp-r" in res.output
    res = invoke("run", "--epochs", "0", "--out", str(tmp_path))
    assert res.exit_code != 0 and "--epochs: expected a positive integer" in res.output
    assert not any(tmp_path.iterdir())  # bad input creates nothing


def test_bad_spec_path_names_file_and_field(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text('name="mine"\nfamily="darts-cell"\nnodes=4\nops=["skip_conect"]\n')
    res = invoke("run", "--space", str(spec), "--out", str(tmp_path / "r"))
    assert res.exit_code != 0
    assert str(spec) in res.output and "'ops[0]'" in res.output and "skip_connect" in res.output


def test_run_and_resume_from_the_cli(tmp_path):
    out = str(tmp_path / "results")
    res = invoke("run", "--method", "darts", "--space", "s3", "--dataset", "digits", "--epochs", "1",
                 "--out", out, *TINY)
    assert res.exit_code == 0, res.output
    assert "status: finished" in res.output and "genotype: normal[" in res.output
    (run_dir,) = [d for d in Path(out).iterdir() if d.name != "oracle-cache"]  # auto: train
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    res = invoke("run", "--method", "darts", "--space", "s3", "--dataset", "digits", "--epochs", "1",
                 "--out", out, *TINY)
    assert res.exit_code != 0 and "--resume" in res.output
    res = invoke("run", "--method", "darts", "--space", "s3", "--dataset", "digits", "--epochs", "1",
                 "--out", out, "--resume", *TINY)
    assert res.exit_code == 0 and "status: finished" in res.output


def test_unavailable_cuda_is_a_clear_error(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = invoke("run", "--device", "cuda", "--out", str(tmp_path), *TINY)
    assert res.exit_code != 0 and "CUDA is not available" in res.output


def test_nonsense_step_caps_are_refused(tmp_path):
    res = invoke("run", "--max-steps-per-epoch", "-1", "--out", str(tmp_path))
    assert res.exit_code != 0 and "--max-steps-per-epoch: expected a positive integer" in res.output
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- the cli package

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import click  # noqa: E402

from nasbench_eval.cli.common import renamed_option  # noqa: E402
from nasbench_eval.cli.group import COMMANDS, load_command, short_help  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "fixtures" / "plugins" / "cli_flag_plugin.py"


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("NASBENCH_EVAL_PLUGINS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_help_lists_every_command_as_the_command_itself_would():
    res = invoke("--help")
    assert res.exit_code == 0 and "--plugin PATH" in res.output
    for name in COMMANDS:
        assert f"  {name} " in res.output
        # the help text kept beside the lazy entry is the command's own
        assert short_help(name, 200) == load_command(name).get_short_help_str(200), name


def test_analysis_and_help_do_not_import_torch():
    res = _python("import nasbench_eval.analysis, sys; assert 'torch' not in sys.modules")
    assert res.returncode == 0, res.stderr
    res = _python("import sys\nfrom nasbench_eval.cli import main\n"
                  "main(['--help'], standalone_mode=False)\n"
                  "assert 'torch' not in sys.modules, 'torch imported by --help'")
    assert res.returncode == 0, res.stderr
    res = _python("import sys, nasbench_eval, nasbench_eval.sweep\n"
                  "assert 'torch' not in sys.modules\n"
                  "from nasbench_eval import RunConfig, run  # the lazy top-level names\n"
                  "assert RunConfig().method == 'darts' and callable(run)")
    assert res.returncode == 0, res.stderr


def test_help_pages_and_listings_do_not_import_torch():
    """Every command's ``--help`` and every ``list`` (issue 17: they took 2-4 s, all of it
    importing torch). Run under an import hook that refuses torch, so a module that reaches
    for it fails here with the chain of imports in the message; the registries' entries
    (methods, oracles, families, datasets) declare everything these print without torch."""
    from nasbench_eval.cli.listing import list_

    listings = [["list", name] for name in sorted(list_.commands)]
    commands = [["--help"], *([name, "--help"] for name in sorted(COMMANDS)),
                *([*args, "--help"] for args in listings), *listings]
    code = f"""
import contextlib, io, sys, traceback

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{{name}} imported by:\\n" + "".join(traceback.format_stack()))

sys.meta_path.insert(0, NoTorch())
from nasbench_eval.cli import main

for args in {commands!r}:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(args, standalone_mode=False, prog_name="nasbench-eval")
    assert out.getvalue().strip(), f"nothing printed by {{args}}"
    assert "torch" not in sys.modules, f"torch imported by {{args}}"
print(len({commands!r}))
"""
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(len(commands))]
    assert len(commands) >= 20  # the group, its commands and the listings were all found


def test_plugin_method_gets_typed_flags_on_run_and_sweep():
    """``--plugin FILE``: the file's method is listed, its options are flags of run and sweep,
    values are checked by its option schema (errors name the flag), the variable is set for
    worker processes, and only the given options reach the run's config."""
    code = f"""
import os
from click.testing import CliRunner
import nasbench_eval.runner as runner
from nasbench_eval.cli import main

def invoke(*args):
    return CliRunner().invoke(main, ["--plugin", {str(PLUGIN)!r}, *args])

res = invoke("run", "--help")
assert res.exit_code == 0, res.output
assert "--toy-knob INTEGER" in res.output and "[soft|hard]" in res.output, res.output
assert "how far the toy turns (an integer >= 1)" in " ".join(res.output.split()), res.output
assert os.environ["NASBENCH_EVAL_PLUGINS"] == {str(PLUGIN)!r}
res = invoke("sweep", "--help")
assert res.exit_code == 0 and "--toy-flip [true|false]" in res.output, res.output
res = invoke("list", "methods")
assert "cli-flag-toy" in res.output and "--toy-knob" in res.output, res.output
for args in (["--toy-knob", "0"], ["-o", "toy_knob=0"]):
    res = invoke("run", "--method", "cli-flag-toy", *args, "--out", "/nonexistent/x")
    assert res.exit_code != 0 and "--toy-knob: expected an integer >= 1, got 0" in res.output, (
        res.output)
seen = []
runner.run = lambda cfg, resume=False: seen.append(cfg) or (_ for _ in ()).throw(
    KeyboardInterrupt())
res = invoke("run", "--method", "cli-flag-toy", "--toy-knob", "5", "--toy-flip", "TRUE",
             "-o", "toy_mode=hard")
assert seen[0].method_options == {{"toy_mode": "hard", "toy_knob": 5, "toy_flip": True}}, seen
res = invoke("--plugin", "/nonexistent/plugin.py", "list", "methods")
assert res.exit_code != 0 and "plugin /nonexistent/plugin.py does not exist" in res.output
print("ok")
"""
    res = _python(code)
    assert res.returncode == 0 and "ok" in res.stdout, res.stdout + res.stderr


def test_method_flags_are_checked_against_the_chosen_method(tmp_path):
    res = invoke("run", "--method", "darts", "--msr-power-iters", "2", "--out", str(tmp_path))
    assert res.exit_code != 0 and "method 'darts' has no option --msr-power-iters" in res.output
    assert "valid options of 'darts': " in res.output and "perturb" in res.output
    # darts has the perturbation's options (issue 18), but only with --perturb
    res = invoke("run", "--method", "darts", "--pgd-steps", "2", "--out", str(tmp_path))
    assert res.exit_code != 0 and "--pgd-steps apply only with --perturb adversarial" \
        in res.output
    res = invoke("run", "--method", "msr", "--msr-power-iters", "x", "--out", str(tmp_path))
    assert res.exit_code != 0 and "'x' is not a valid integer" in res.output
    res = invoke("run", "--method", "msr", "-o", "msr_power_iters=x", "--out", str(tmp_path))
    assert res.exit_code != 0 and "--msr-power-iters: expected an integer >= 1, got 'x'" in res.output
    assert not any(tmp_path.iterdir())


def test_old_output_option_spellings_still_work_with_a_hint():
    @click.command()
    @renamed_option("--out-dir", "--out", "out")
    @click.option("--out", default="plots")
    def cmd(out: str) -> None:
        click.echo(f"out={out}")

    res = CliRunner().invoke(cmd, ["--out-dir", "figs"])  # output: stdout and stderr
    assert res.exit_code == 0 and "out=figs\n" in res.output
    assert "note: --out-dir is now --out (the old spelling still works)\n" in res.output
    res = CliRunner().invoke(cmd, [])
    assert res.output == "out=plots\n"
    for name in ("plot", "fidelity"):
        res = invoke(name, "--help")
        assert "--out " in res.output and "--out-dir" not in res.output, res.output


def test_python_dash_m_runs_the_cli():
    res = subprocess.run([sys.executable, "-m", "nasbench_eval.cli", "list", "datasets"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.returncode == 0 and "digits" in res.stdout, res.stderr
