from __future__ import annotations

import pytest
import torch

from nasbench_eval import data as data_mod
from nasbench_eval.data import Augment, BatchStream, load_dataset
from nasbench_eval.errors import DataUnavailableError, UnknownNameError


def test_digits_is_the_offline_default_with_a_held_out_test_split():
    ds = load_dataset("digits")
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.shape[1:] == (1, 8, 8)
    assert len(ds.train_y) + len(ds.test_y) == 1797 and len(ds.test_y) == 360
    assert ds.num_classes == 10 and set(ds.test_y.tolist()) == set(range(10))
    tr, va = ds.search_split(0.5)
    assert len(tr) == 718 and len(va) == 719 and not set(tr.tolist()) & set(va.tolist())
    assert torch.equal(load_dataset("digits").test_x, ds.test_x)  # split does not depend on seed


def test_batches_are_normalised_static_and_reproducible():
    ds = load_dataset("synthetic", n_train=200, shape=(3, 8, 8))
    s = BatchStream(ds.train_x, ds.train_y, 64, ds.mean, ds.std, torch.device("cpu"))
    batches = list(s.epoch(torch.Generator().manual_seed(3)))
    assert len(batches) == len(s) == 3 and all(x.shape == (64, 3, 8, 8) for x, _ in batches)
    x = torch.cat([b[0] for b in batches])
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1
    again = list(s.epoch(torch.Generator().manual_seed(3)))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    full = BatchStream(ds.train_x, ds.train_y, 64, ds.mean, ds.std, torch.device("cpu"),
                       shuffle=False, drop_last=False)
    assert sum(len(y) for _, y in full.epoch()) == 200


def test_crop_and_flip_on_device_match_torchvision_semantics():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).view(2, 1, 6, 6)
    s = BatchStream(x, torch.zeros(2, dtype=torch.long), 2, (0.0,), (1 / 255,), torch.device("cpu"),
                    Augment(crop_padding=2, hflip=True))
    g = torch.Generator().manual_seed(0)
    seen_flip = seen_shift = False
    for _ in range(50):
        out = s._augment(x, s._draw(len(x), g))
        assert out.shape == x.shape
        for i in range(2):
            padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
            windows = [padded[:, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
            match = [w for w in windows if torch.equal(w, out[i]) or torch.equal(w.flip(2), out[i])]
            assert match, "every output must be a crop of the zero-padded image, maybe flipped"
            seen_flip |= any(torch.equal(w.flip(2), out[i]) and not torch.equal(w, out[i]) for w in windows)
            seen_shift |= not torch.equal(out[i], x[i]) and not torch.equal(out[i], x[i].flip(2))
    assert seen_flip and seen_shift


def test_datasets_are_a_registry_that_suggests_the_near_name():
    assert {"digits", "cifar10", "synthetic"} <= set(data_mod.DATASETS)
    load, description = data_mod.DATASETS.get("digits")
    assert load is data_mod._digits and "offline" in description
    with pytest.raises(UnknownNameError, match="did you mean 'cifar10'"):
        load_dataset("cifar-10")


def test_a_dataset_added_to_the_registry_loads_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod.DATASETS, "_entries", dict(data_mod.DATASETS._entries))
    seen = {}

    def tiny(root, **options):
        seen.update(root=root, **options)
        return data_mod._synthetic(root, n_train=32, n_test=8, shape=(1, 4, 4))

    data_mod.DATASETS.add("tiny", data_mod.DatasetEntry(tiny, "a test dataset"))
    ds = load_dataset("tiny", root=tmp_path, flavour="x")
    assert seen == {"root": tmp_path, "flavour": "x"} and ds.train_x.shape[1:] == (1, 4, 4)


def test_offline_download_names_the_expected_path(tmp_path, monkeypatch):
    import torchvision

    class Offline:
        def __init__(self, *a, **k):
            raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(DataUnavailableError) as info:
        load_dataset("cifar10", root=tmp_path)
    assert str(tmp_path) in str(info.value) and "could not be downloaded" in str(info.value)


def test_fashion_mnist_reads_idx_files(tmp_path, monkeypatch):
    import gzip
    import struct

    def idx(path, arr):
        header = struct.pack(">BBBB", 0, 0, 0x08, arr.dim()) + struct.pack(">" + "I" * arr.dim(), *arr.shape)
        with gzip.open(path, "wb") as f:
            f.write(header + arr.numpy().tobytes())

    folder = tmp_path / "fm"
    folder.mkdir()
    idx(folder / "train-images-idx3-ubyte.gz", torch.randint(0, 255, (20, 28, 28), dtype=torch.uint8))
    idx(folder / "train-labels-idx1-ubyte.gz", torch.randint(0, 10, (20,), dtype=torch.uint8))
    idx(folder / "t10k-images-idx3-ubyte.gz", torch.randint(0, 255, (5, 28, 28), dtype=torch.uint8))
    idx(folder / "t10k-labels-idx1-ubyte.gz", torch.randint(0, 10, (5,), dtype=torch.uint8))
    monkeypatch.setattr(data_mod, "FASHION_MNIST_SYSTEM_DIR", folder)
    ds = load_dataset("fashion-mnist", root=tmp_path / "nothing")
    assert ds.train_x.shape == (20, 1, 28, 28) and ds.test_x.shape == (5, 1, 28, 28)
    assert ds.train_y.dtype == torch.int64


def test_cutout_zeroes_one_clipped_square_after_normalisation():
    x = torch.full((64, 2, 10, 10), 200, dtype=torch.uint8)
    s = BatchStream(x, torch.zeros(64, dtype=torch.long), 64, (0.5, 0.5), (0.25, 0.25),
                    torch.device("cpu"), Augment(cutout=4))
    (out, _), = list(s.epoch(torch.Generator().manual_seed(0)))
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1])  # same hole in every channel
    counts = zero[:, 0].sum(dim=(1, 2))
    assert counts.max() == 16 and counts.min() >= 4  # 4x4 inside, clipped at borders
    for img in zero[:, 0]:  # the hole is one axis-aligned rectangle
        r, c = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert img.sum() == len(r) * len(c) and img[r.min():r.max() + 1, c.min():c.max() + 1].all()
    off = BatchStream(x, torch.zeros(64, dtype=torch.long), 64, (0.5, 0.5), (0.25, 0.25),
                      torch.device("cpu"), Augment(cutout=4, cutout_prob=0.0))
    (out_off, _), = list(off.epoch(torch.Generator().manual_seed(0)))
    assert not (out_off == 0).any()


def test_augmentation_randomness_is_drawn_once_per_epoch(monkeypatch):
    """No per-batch host-to-device copies: the epoch's crop/flip/cutout draws move at once."""
    ds = load_dataset("synthetic", n_train=200, shape=(3, 8, 8))
    s = BatchStream(ds.train_x, ds.train_y, 32, ds.mean, ds.std, torch.device("cpu"),
                    Augment(crop_padding=2, hflip=True, cutout=4))
    calls = []
    original = BatchStream._draw
    monkeypatch.setattr(BatchStream, "_draw", lambda self, n, g: calls.append(n) or original(self, n, g))
    batches = list(s.epoch(torch.Generator().manual_seed(0)))
    assert calls == [200] and len(batches) == 6
    again = list(s.epoch(torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))


@pytest.mark.skipif(not (data_mod.FASHION_MNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed "
                           "(apt-get install dataset-fashion-mnist; .ci/run does when it can)")
def test_real_fashion_mnist_from_the_debian_package(tmp_path):
    """The real files (issue 19): sizes, balanced classes, the first labels and the pixel
    mean published for Fashion-MNIST (0.2860 of 255)."""
    ds = load_dataset("fashion-mnist", root=tmp_path / "no-download")
    assert ds.train_x.shape == (60_000, 1, 28, 28) and ds.test_x.shape == (10_000, 1, 28, 28)
    assert ds.train_x.dtype == torch.uint8 and ds.num_classes == 10
    assert torch.bincount(ds.train_y).tolist() == [6_000] * 10
    assert torch.bincount(ds.test_y).tolist() == [1_000] * 10
    assert ds.train_y[:3].tolist() == [9, 0, 0] and ds.test_y[:3].tolist() == [9, 2, 1]
    assert ds.train_x.float().mean().item() / 255 == pytest.approx(0.2860, abs=5e-4)
    assert not (tmp_path / "no-download").exists()  # nothing was downloaded


def test_reduction_options_keep_a_fixed_stratified_subset_and_downsample():
    full = load_dataset("digits")
    ds = load_dataset("digits", train_subset=200, test_subset=50, downsample=2)
    assert ds.train_x.shape == (200, 1, 4, 4) and ds.test_x.shape == (50, 1, 4, 4)
    assert torch.bincount(ds.train_y).tolist() == [20] * 10  # stratified
    assert torch.bincount(ds.test_y).tolist() == [5] * 10
    again = load_dataset("digits", train_subset=200, test_subset=50, downsample=2)
    assert torch.equal(again.train_x, ds.train_x) and torch.equal(again.test_y, ds.test_y)
    # the kept images are the full set's, in stored order, each 2x2 block averaged
    kept = [i for i in range(len(full.train_y))
            if any(torch.equal(full.train_x[i].float().view(1, 4, 2, 4, 2).mean((2, 4)).round()
                               .to(torch.uint8), x) for x in ds.train_x[:3])]
    assert len(kept) >= 3 and kept == sorted(kept)
    assert ds.mean != full.mean  # statistics of the reduced training set
    sub = load_dataset("digits", train_subset=203)
    assert sub.train_x.shape[1:] == (1, 8, 8) and torch.equal(sub.test_x, full.test_x)
    assert sorted(torch.bincount(sub.train_y).tolist()) == [20] * 7 + [21] * 3


@pytest.mark.parametrize("options, message", [
    ({"train_subset": 0}, "train_subset: expected an integer in \\[1, 1437\\]"),
    ({"test_subset": 5000}, "test_subset: expected an integer in \\[1, 360\\]"),
    ({"downsample": 1.5}, "downsample: expected an integer factor"),
])
def test_bad_reduction_options_name_the_option(options, message):
    with pytest.raises(DataUnavailableError, match=message):
        load_dataset("digits", **options)


def test_reduction_options_enter_the_run_id():
    from nasbench_eval.config import RunConfig

    plain = RunConfig(dataset="fashion-mnist")
    reduced = RunConfig(dataset="fashion-mnist", dataset_options={"train_subset": 2000})
    assert plain.run_id() != reduced.run_id()
