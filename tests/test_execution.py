"""The execution settings (execution.py) on the CPU: no host syncs inside a step, layout and
precision paths that compute what the plain path computes, and a CPU DataLoader path whose
batches have the statistics of the on-device pipeline."""
from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import replace

import pytest
import torch

from nasbench_eval import run
from nasbench_eval.config import RunConfig
from nasbench_eval.data import Augment, BatchStream, TorchLoaderStream
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.execution import reference_execution, resolve_execution
from nasbench_eval.runner import build_search

# every method whose step the runner drives (random-ws included: its step trains w)
STEP_METHODS = ["darts", "darts-2nd", "sdarts-rs", "sdarts-adv", "maxw", "msr", "darts-es",
                "rdarts-l2", "rdarts-dp", "random-ws"]


def _search(method: str = "darts", space: str = "s3", **kw):
    cfg = RunConfig(method=method, space=space, dataset="synthetic", layers=3, channels=4,
                    batch_size=8, epochs=2, progress=False, device="cpu",
                    dataset_options={"n_train": 64, "n_test": 16, "shape": [3, 8, 8]}, **kw)
    torch.manual_seed(0)
    return build_search(cfg)


HOST_SIDE_FUNCTIONS = {"draw", "sample_genotype"}  # spaces/spec.py, CPU generator only


@contextlib.contextmanager
def _forbid_host_syncs():
    """Make every host round-trip an error: .item(), .cpu(), .tolist(), .numpy(), Python
    truth/number conversion of a tensor, and torch.cuda.synchronize."""
    calls: list[str] = []

    def trap(name):
        original = getattr(torch.Tensor, name.split(".")[-1], None)

        def f(*args, **kwargs):
            # Host-side tensors by design, also when the search runs on CUDA (reading them is
            # no device sync): torch.optim's step counters (CPU unless capturable) and the
            # draws of a CPU torch.Generator that random-ws samples its paths with.
            caller = sys._getframe(1).f_code
            if original and ("/torch/optim/" in caller.co_filename
                             or caller.co_name in HOST_SIDE_FUNCTIONS):
                return original(*args, **kwargs)
            calls.append(name)
            raise AssertionError(f"host sync inside a search step: {name}")
        return f

    names = ["item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__"]
    saved = {n: getattr(torch.Tensor, n) for n in names}
    saved_sync = torch.cuda.synchronize
    try:
        for n in names:
            setattr(torch.Tensor, n, trap(f"Tensor.{n}"))
        torch.cuda.synchronize = trap("torch.cuda.synchronize")
        yield calls
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)
        torch.cuda.synchronize = saved_sync


def test_sync_trap_catches_item():
    """The trap itself must bite, or the test below proves nothing."""
    x = torch.ones(2)
    with pytest.raises(AssertionError, match="Tensor.item"), _forbid_host_syncs():
        x.sum().item()
    with pytest.raises(AssertionError, match="__bool__"), _forbid_host_syncs():
        if x.sum() > 0:
            pass
    assert x.sum().item() == 2.0  # restored


@pytest.mark.parametrize("method", STEP_METHODS)
def test_no_host_sync_inside_a_step(method):
    space = "darts" if method == "msr" else "s3"
    s = _search(method, space)
    tb, vb = next(iter(s.train.epoch(torch.Generator().manual_seed(1)))), \
        next(iter(s.val.epoch(torch.Generator().manual_seed(2))))
    s.supernet.train()
    s.method.step(tb, vb)  # first step may initialise state lazily
    with _forbid_host_syncs() as calls:
        out = s.method.step(tb, vb)
    assert calls == []
    assert {"train_loss", "train_correct", "train_count"} <= set(out)
    assert all(isinstance(v, torch.Tensor) for v in out.values())


def _two_steps(**kw):
    s = _search("darts", "darts", **kw)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    losses = []
    s.supernet.train()
    for (tb, vb), _ in zip(zip(s.train.epoch(g1), s.val.epoch(g2)), range(2)):
        losses.append(s.method.step(tb, vb)["train_loss"])
    return s, torch.stack(losses)


def test_channels_last_computes_what_contiguous_computes():
    a, la = _two_steps(memory_format="contiguous")
    b, lb = _two_steps(memory_format="channels_last")
    x, _ = next(iter(b.train.epoch(torch.Generator().manual_seed(1))))
    assert x.is_contiguous(memory_format=torch.channels_last)
    conv = next(m for m in b.supernet.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-4)
    for k in a.method.alphas:
        torch.testing.assert_close(a.method.alphas[k], b.method.alphas[k], rtol=1e-4, atol=1e-5)


def test_memory_format_does_not_change_s4_noise_or_the_search():
    """Issue 17: --memory-format stays out of the run id because it computes the same up to
    rounding, S4's noise op included (its draws do not follow the input's layout). float64:
    the same seed gives the same noise in both layouts, and the S4 supernet's train-mode
    outputs on the same batches (noise edges drawing) agree to 1e-10."""
    from nasbench_eval.spaces.darts.ops import Noise

    x = torch.randn(3, 5, 7, 7, dtype=torch.float64)
    for stride in (1, 2):
        torch.manual_seed(0)
        a = Noise(stride)(x)
        torch.manual_seed(0)
        b = Noise(stride)(x.contiguous(memory_format=torch.channels_last))
        assert a.dtype == torch.float64 and torch.equal(a, b)
        torch.manual_seed(0)  # the default layout's draws are what randn_like gave before
        assert torch.equal(b, torch.randn_like(
            x.contiguous(memory_format=torch.channels_last)[:, :, ::stride, ::stride]))
    runs = []
    for fmt in ("contiguous", "channels_last"):
        s = _search("darts", "s4", memory_format=fmt)
        s.supernet.double()
        for k in s.method.alphas:
            s.method.alphas[k].data = s.method.alphas[k].data.double()
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
        torch.manual_seed(3)
        s.supernet.train()
        outs = []
        for (tb, vb), _ in zip(zip(s.train.epoch(g1), s.val.epoch(g2)), range(2)):
            outs.append(s.supernet(tb[0].double(), s.method.mixing_weights()))
        runs.append(torch.stack(outs))
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-10, atol=1e-10)


def test_bf16_autocast_keeps_alpha_mixing_and_loss_in_fp32():
    s32, l32 = _two_steps(precision="fp32")
    s16, l16 = _two_steps(precision="bf16")
    assert s16.execution.precision == "bf16"
    assert all(a.dtype == torch.float32 for a in s16.method.alphas.values())
    assert all(p.dtype == torch.float32 for p in s16.supernet.parameters())
    assert all(w.dtype == torch.float32 for w in s16.method.mixing_weights().values())
    batch = next(iter(s16.train.epoch(torch.Generator().manual_seed(3))))
    loss, logits = s16.method.loss(batch, s16.method.mixing_weights())
    assert loss.dtype == torch.float32 and logits.dtype == torch.float32
    # the bf16 forward really ran in bf16: its logits differ from the fp32 forward's ...
    with torch.no_grad():
        fp32_logits = s16.supernet(batch[0], s16.method.mixing_weights())
    assert not torch.equal(logits.detach(), fp32_logits)
    # ... but the search computes the same thing up to bf16 rounding
    torch.testing.assert_close(l16, l32, rtol=5e-2, atol=5e-2)


def test_hessian_probe_is_fp32_under_bf16():
    s = _search("darts", "s3", precision="bf16", hessian_iters=5)
    batch = next(iter(s.val.epoch(torch.Generator().manual_seed(1))))
    ref = _search("darts", "s3", precision="fp32", hessian_iters=5)
    assert s.method.hessian_eigenvalue(batch) == pytest.approx(
        ref.method.hessian_eigenvalue(batch), rel=1e-4)


def test_auto_resolution_and_bad_names():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    ex = resolve_execution("auto", "auto", "device", False, cpu)
    assert (ex.memory_format, ex.precision, ex.cudnn_benchmark) == ("channels_last", "fp32", False)
    ex = resolve_execution("auto", "auto", "device", False, cuda)
    assert (ex.memory_format, ex.precision, ex.cudnn_benchmark) == ("channels_last", "bf16", True)
    with pytest.raises(NasbenchEvalError, match="valid choices: auto, fp32, bf16"):
        resolve_execution("auto", "fp16", "device", False, cpu)
    with pytest.raises(NasbenchEvalError, match="valid choices: device, torch"):
        resolve_execution("auto", "auto", "dali", False, cpu)


def test_execution_settings_enter_the_run_id_only_when_they_change_the_computation():
    """Issue 17: settings that compute something else (other batches, bf16, S4's noise drawn in
    another edge order, compiled random kernels) name another run directory when they are not at
    a value that computes the default's; where and how fast (device, CUDA graphs, out) do not,
    and the default-equivalent spellings keep every existing run id."""
    base = RunConfig(method="darts", space="s3")
    assert base.run_id() == "darts-s3-digits-seed0-" + base.fingerprint()
    same = [{"memory_format": "channels_last"}, {"memory_format": "contiguous"},
            {"fused_edges": "on"}, {"device": "cpu"},
            {"cuda_graphs": True}, {"out": "elsewhere"}, {"progress": False},
            {"data_root": "/tmp/x"}]
    for change in same:
        assert replace(base, **change).run_id() == base.run_id(), change
    other = [{"data_loader": "torch"}, {"precision": "bf16"}, {"precision": "fp32"},
             {"fused_edges": "off"}, {"compile": True},
             reference_execution()]
    ids = {replace(base, **change).run_id() for change in other}
    assert base.run_id() not in ids and len(ids) == len(other)


# ----------------------------------------------------------------------------- data paths

def _image_set(n: int = 64, h: int = 8) -> torch.Tensor:
    """Noise on a left-to-right ramp, so flips and crops move the pixel means."""
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(20, 235, h).view(1, 1, 1, h)
    x = ramp + 20 * torch.randn((n, 3, h, h), generator=g)
    return x.clamp(0, 255).round().to(torch.uint8)


def _all_batches(stream, epochs: int) -> torch.Tensor:
    out = []
    for e in range(epochs):
        torch.manual_seed(1000 + e)  # the DataLoader path draws from the global RNG
        out += [x for x, _ in stream.epoch(torch.Generator().manual_seed(e))]
    return torch.cat(out)


@pytest.mark.parametrize("augment", [Augment(), Augment(crop_padding=2, hflip=True, cutout=4,
                                                         cutout_prob=0.5)])
def test_torch_loader_matches_device_pipeline_in_distribution(augment):
    """Same shapes and dtypes; per-pixel means over many epochs agree, and so do the share of
    exact zeros (padding + cutout) and the pixel variance; without augmentation the two are
    the same images."""
    x, y = _image_set(), torch.arange(64) % 10
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    dev = BatchStream(x, y, 16, mean, std, torch.device("cpu"), augment=augment)
    ref = TorchLoaderStream(x, y, 16, mean, std, torch.device("cpu"), augment=augment)
    a, b = _all_batches(dev, 150), _all_batches(ref, 150)
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    if augment == Augment():
        key = lambda t: sorted(t[:64].flatten(1).mul(1e3).round().tolist())  # noqa: E731
        assert key(a) == key(b)  # the same 64 images, each epoch in its own order
        return
    # means per pixel position over 9,600 augmented images: equal within sampling noise
    ma, mb = a.mean(0), b.mean(0)
    se = (a.std(0) ** 2 / len(a) + b.std(0) ** 2 / len(b)).sqrt()
    assert ((ma - mb).abs() / se).mean() < 1.5  # about 0.8 when the distributions agree
    zero_a, zero_b = (a == 0).float().mean(), (b == 0).float().mean()
    assert abs(zero_a - zero_b) < 0.01
    assert abs(a.std() - b.std()) / b.std() < 0.02
    # and the test has teeth: without the flip the pixel means are far apart
    noflip = BatchStream(x, y, 16, mean, std, torch.device("cpu"),
                         augment=replace(augment, hflip=False))
    c = _all_batches(noflip, 150)
    assert ((c.mean(0) - mb).abs() / se).mean() > 3


def test_run_with_the_torch_loader_records_its_execution(tiny_cfg):
    d = run(replace(tiny_cfg, data_loader="torch", memory_format="contiguous", epochs=1,
                    fused_edges="off"))
    doc = json.loads((d / "config.json").read_text())
    assert doc["execution"] == {"memory_format": "contiguous", "precision": "fp32",
                                "data_loader": "torch", "cudnn_benchmark": False,
                                "compile": False, "cuda_graphs": False, "fused_edges": False}
    assert json.loads((d / "summary.json").read_text())["status"] == "finished"


# ----------------------------------------------------------------------------- static step

def test_static_buffer_step_equals_the_direct_step():
    """StepRunner (the CUDA-graph wrapper, here without capture) copies each batch into the
    same persistent buffers and computes exactly what method.step computes."""
    from nasbench_eval.execution import StepRunner

    a, b = _search("sdarts-rs", "s3"), _search("sdarts-rs", "s3")
    runner = StepRunner(b.method, capture=False)
    ptrs = set()
    for s in (a, b):
        s.supernet.train()
    batches = list(zip(a.train.epoch(torch.Generator().manual_seed(1)),
                       a.val.epoch(torch.Generator().manual_seed(2))))[:3]
    for tb, vb in batches:
        torch.manual_seed(7)  # the same perturbation noise on both sides
        out_a = a.method.step(tb, vb)
        torch.manual_seed(7)
        out_b = runner(tb, vb)
        ptrs.add(tuple(t.data_ptr() for t in runner.buffers))
        for k in out_a:
            torch.testing.assert_close(out_a[k], out_b[k], rtol=0, atol=0)
    assert len(ptrs) == 1  # the same buffers every step
    assert runner.buffers[0] is not batches[-1][0][0]  # copies, not the caller's tensors
    for k in a.method.alphas:
        assert torch.equal(a.method.alphas[k], b.method.alphas[k])


def test_capture_only_for_capturable_methods_and_only_on_cuda():
    from nasbench_eval.execution import StepRunner

    assert StepRunner(_search("darts").method, capture=True).capture
    assert not StepRunner(_search("random-ws").method, capture=True).capture
    with pytest.raises(NasbenchEvalError, match="CUDA graphs need a CUDA device"):
        resolve_execution("auto", "auto", "device", False, torch.device("cpu"), cuda_graphs=True)
    with pytest.raises(NasbenchEvalError, match="choose one"):
        resolve_execution("auto", "auto", "device", True, torch.device("cuda"), cuda_graphs=True)
    s = _search("darts")
    s.method.make_capturable()
    assert all(g["capturable"] for g in s.method.alpha_opt.param_groups)


# ----------------------------------------------------------------------------- seam switches

def test_fused_edges_and_drop_path_off_are_seam_calls_every_supernet_takes():
    """prepare_model switches the fused cells through ``set_fused_edges`` (no probing); a
    family without a fused path (nb101, a bare SupernetBase) ignores it, and every supernet
    accepts drop-path 0 ("off", what the one-shot oracle sets) while refusing a non-zero one
    it cannot do."""
    from nasbench_eval.execution import prepare_model
    from nasbench_eval.spaces import load_space
    from nasbench_eval.spaces.supernet import SupernetBase, SupernetSeamError

    cpu = torch.device("cpu")
    darts = load_space("s3").build_supernet(4, 3, 10, 3)
    for fused in (True, False):
        ex = resolve_execution("contiguous", "fp32", "device", False, cpu,
                               fused_edges="on" if fused else "off")
        assert prepare_model(darts, ex, cpu) is darts and darts.fused_edges is fused
    darts.set_drop_path(0.3, "edge")
    darts.set_drop_path(0.0)
    assert darts.drop_path_prob == 0.0

    class Bare(SupernetBase):
        pass

    nb = load_space("nb1shot1-3").build_supernet(4, 3, 3, 1)
    for net in (nb, Bare()):
        net.set_fused_edges(True)  # no fused path: nothing happens
        net.set_drop_path(0.0)
        net.set_drop_path(0.0, "edge")
        net.set_edge_forward(None)
        with pytest.raises(SupernetSeamError, match="drop"):
            net.set_drop_path(0.2)
    prepare_model(nb, resolve_execution("contiguous", "fp32", "device", False, cpu), cpu)
