"""Datasets as uint8 tensors, and batches drawn from them on the compute device.

Every dataset, from ``digits`` to CIFAR-10, is held in memory as uint8 ``N x C x H x W``
(CIFAR-10 is 150 MB) and moved to the device once. Shuffling, the search split, random crop,
flip and normalisation then happen on the device in whole batches, so a GPU never waits for
a CPU DataLoader and a step has static shapes. Randomness comes from a ``torch.Generator``
the caller seeds, which makes an epoch's batches a pure function of (seed, epoch).
"""
from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .errors import DataUnavailableError
from .lazy_torch import LazyModule, torch
from .registry import Registry

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor
else:
    np = LazyModule("numpy")  # imported by the loaders, not by `list datasets`

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def default_data_root() -> Path:
    """``$NASBENCH_EVAL_DATA``, else ``~/.cache/nasbench-eval/data``."""
    env = os.environ.get("NASBENCH_EVAL_DATA")
    return Path(env) if env else Path.home() / ".cache" / "nasbench-eval" / "data"


@dataclass(frozen=True)
class Augment:
    crop_padding: int = 0
    hflip: bool = False
    cutout: int = 0
    """Side of the square zeroed (after normalisation, as DARTS's Cutout); 0 = off."""
    cutout_prob: float = 1.0
    """Probability per image of applying cutout (RobustDARTS ramps it over the search)."""


@dataclass
class Dataset:
    """A labelled image set with its held-out test split (never used by the search)."""

    name: str
    train_x: Tensor  # uint8 N x C x H x W
    train_y: Tensor  # int64 N
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    augment: Augment = Augment()

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    def search_split(self, train_portion: float) -> tuple[Tensor, Tensor]:
        """Indices of search-train and search-val: the first ``portion`` of the training
        set and the rest, in stored order, as the DARTS reference splits it."""
        n = len(self.train_y)
        split = int(np.floor(train_portion * n))
        if not 0 < split < n:
            raise ValueError(f"train_portion {train_portion} leaves an empty search split of {n} images")
        return torch.arange(split), torch.arange(split, n)


def _stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xf = x.float() / 255.0
    return (tuple(xf.mean(dim=(0, 2, 3)).tolist()), tuple(xf.std(dim=(0, 2, 3)).tolist()))


# --------------------------------------------------------------------------- loaders

def _digits(root: Path, **_: object) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, offline): the embedded default.

    A fixed stratified 80/20 split (independent of the run seed) keeps the test images the
    same for every run, so anytime errors are comparable across seeds.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.clip(np.rint(d.images * 16.0), 0, 255).astype(np.uint8)[:, None]
    xtr, xte, ytr, yte = train_test_split(images, d.target, test_size=0.2, random_state=0,
                                          stratify=d.target)
    train_x = torch.from_numpy(xtr)
    mean, std = _stats(train_x)
    return Dataset("digits", train_x, torch.from_numpy(ytr).long(), torch.from_numpy(xte),
                   torch.from_numpy(yte).long(), 10, mean, std)


def _synthetic(root: Path, n_train: int = 512, n_test: int = 128, shape: tuple[int, int, int] = (3, 16, 16),
               num_classes: int = 10, augment: bool = False, **_: object) -> Dataset:
    """Random images with a class-dependent mean, so a model can learn something quickly.
    ``augment``: CIFAR-10's search augmentation (random crop with padding 4, horizontal
    flip), so benchmarks run the data pipeline of the real dataset."""
    g = torch.Generator().manual_seed(1234)

    def make(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        base = (y.float() * (160.0 / max(num_classes - 1, 1)) + 48.0).view(-1, 1, 1, 1)
        x = base + 40.0 * torch.randn((n, *shape), generator=g)
        return x.clamp(0, 255).to(torch.uint8), y

    train_x, train_y = make(n_train)
    test_x, test_y = make(n_test)
    mean, std = _stats(train_x)
    return Dataset("synthetic", train_x, train_y, test_x, test_y, num_classes, mean, std,
                   Augment(crop_padding=4, hflip=True) if augment else Augment())


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    _, dtype, ndim = data[0:2], data[2], data[3]
    if dtype != 0x08:
        raise DataUnavailableError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4: 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        for p in (folder / name, folder / "raw" / name):
            if p.is_file():
                return p
    return None


def _fashion_mnist(root: Path, **_: object) -> Dataset:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` when installed, else torchvision."""
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for folder in (FASHION_MNIST_SYSTEM_DIR, root / "FashionMNIST", root / "fashion-mnist"):
        paths = [_find_idx(folder, s) for s in stems]
        if all(paths):
            arrays = [_read_idx(p) for p in paths]  # type: ignore[arg-type]
            break
    else:
        ds_train = _torchvision("FashionMNIST", root, train=True)
        ds_test = _torchvision("FashionMNIST", root, train=False)
        arrays = [ds_train.data.numpy(), ds_train.targets.numpy(),
                  ds_test.data.numpy(), ds_test.targets.numpy()]
    train_x = torch.from_numpy(arrays[0].copy())[:, None]
    mean, std = _stats(train_x)
    return Dataset("fashion-mnist", train_x, torch.from_numpy(arrays[1].astype(np.int64)),
                   torch.from_numpy(arrays[2].copy())[:, None],
                   torch.from_numpy(arrays[3].astype(np.int64)), 10, mean, std)


def _torchvision(cls_name: str, root: Path, **kwargs: object):
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    try:
        return cls(root=str(root), download=True, **kwargs)
    except Exception as exc:  # network errors come in many types; all mean the same here
        raise DataUnavailableError(
            f"dataset {cls_name} is not under {root} and could not be downloaded ({exc}). "
            f"Download it on a machine with internet access into {root} (or set "
            f"NASBENCH_EVAL_DATA / --data-root to where it lies)."
        ) from None


def _cifar(cls_name: str, name: str, classes: int) -> Callable[..., Dataset]:
    def load(root: Path, **_: object) -> Dataset:
        tr = _torchvision(cls_name, root, train=True)
        te = _torchvision(cls_name, root, train=False)
        train_x = torch.from_numpy(tr.data).permute(0, 3, 1, 2).contiguous()
        test_x = torch.from_numpy(te.data).permute(0, 3, 1, 2).contiguous()
        mean, std = _stats(train_x)
        return Dataset(name, train_x, torch.tensor(tr.targets), test_x, torch.tensor(te.targets),
                       classes, mean, std, Augment(crop_padding=4, hflip=True))
    load.__doc__ = f"{name} through torchvision; search augmentation: random crop (pad 4) + flip."
    return load


def _svhn(root: Path, **_: object) -> Dataset:
    """SVHN (train split only, as RobustDARTS) through torchvision; random crop (pad 4) + flip."""
    tr = _torchvision("SVHN", root, split="train")
    te = _torchvision("SVHN", root, split="test")
    train_x = torch.from_numpy(tr.data)
    mean, std = _stats(train_x)
    return Dataset("svhn", train_x, torch.from_numpy(tr.labels).long(), torch.from_numpy(te.data),
                   torch.from_numpy(te.labels).long(), 10, mean, std, Augment(4, True))


class DatasetEntry(NamedTuple):
    """A registered dataset: ``load(root, **options) -> Dataset`` and a one-line description
    (``nasbench-eval list datasets``). Unpacks as ``(load, description)``."""

    load: Callable[..., Dataset]
    description: str


DATASETS: Registry[DatasetEntry] = Registry("dataset")
"""Name -> :class:`DatasetEntry`. A plugin (``$NASBENCH_EVAL_PLUGINS``) adds one with
``DATASETS.add(name, DatasetEntry(load, description))``; an unknown name suggests the nearest."""
for _name, _load, _description in (
    ("digits", _digits, "scikit-learn digits, 1x8x8, 1,437 train / 360 test; offline, the default"),
    ("fashion-mnist", _fashion_mnist, "Fashion-MNIST 1x28x28, 60k/10k; Debian package or download"),
    ("cifar10", _cifar("CIFAR10", "cifar10", 10), "CIFAR-10 3x32x32, 50k/10k; downloaded"),
    ("cifar100", _cifar("CIFAR100", "cifar100", 100), "CIFAR-100 3x32x32, 50k/10k; downloaded"),
    ("svhn", _svhn, "SVHN 3x32x32, 73k/26k; downloaded"),
    ("synthetic", _synthetic,
     "random class-shifted tensors (tests, benchmarks); sizes configurable"),
):
    DATASETS.add(_name, DatasetEntry(_load, _description))
del _name, _load, _description


REDUCTION_OPTIONS = ("train_subset", "test_subset", "downsample")
"""Dataset options every dataset takes (``dataset_options`` of a run, so they enter its id):
a smaller, cheaper version of the data for CPU studies; see :func:`reduce_dataset`."""


def load_dataset(name: str, root: str | Path | None = None, **options: object) -> Dataset:
    """The dataset ``name`` (see :data:`DATASETS`) read from ``root`` (default:
    :func:`default_data_root`). The :data:`REDUCTION_OPTIONS` are applied here, after the
    loader; the other options go to the loader."""
    reduction = {k: options.pop(k) for k in REDUCTION_OPTIONS if k in options}
    data = DATASETS.get(name).load(Path(root) if root else default_data_root(), **options)
    return reduce_dataset(data, **reduction) if reduction else data  # type: ignore[arg-type]


def _stratified(y: Tensor, n: int | None, option: str) -> Tensor:
    """Indices of ``n`` images of labels ``y``, an equal share per class (the first classes
    take the remainder), each class's share drawn at random with a fixed seed (0, not the
    run's: every run sees the same images), returned in stored order."""
    total = len(y)
    if n is None or n == total:
        return torch.arange(total)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= total:
        raise DataUnavailableError(f"dataset option {option}: expected an integer in "
                                   f"[1, {total}] (images to keep), got {n!r}")
    classes = torch.unique(y)
    g = torch.Generator().manual_seed(0)
    keep = []
    for i, c in enumerate(classes.tolist()):
        members = torch.nonzero(y == c).flatten()
        share = n // len(classes) + (1 if i < n % len(classes) else 0)
        if share > len(members):
            raise DataUnavailableError(f"dataset option {option}={n}: class {c} has only "
                                       f"{len(members)} images, {share} needed")
        keep.append(members[torch.randperm(len(members), generator=g)[:share]])
    return torch.sort(torch.cat(keep)).values


def reduce_dataset(data: Dataset, train_subset: int | None = None,
                   test_subset: int | None = None, downsample: int | None = None) -> Dataset:
    """A fixed, cheaper version of ``data``, for studies a CPU cannot afford on the full set.

    * ``train_subset`` / ``test_subset``: keep that many images of the training / test set,
      stratified by class, drawn with a fixed seed and kept in stored order (so the search
      split, the first ``train_portion`` of the training set, stays a fixed sample too);
    * ``downsample``: average ``k x k`` pixel blocks (28 x 28 -> 14 x 14 at 2; a side that
      ``k`` does not divide loses its last pixels), rounded back to uint8.

    The per-channel mean and std are recomputed on the reduced training set."""
    train = _stratified(data.train_y, train_subset, "train_subset")
    test = _stratified(data.test_y, test_subset, "test_subset")
    train_x, test_x = data.train_x[train], data.test_x[test]
    if downsample is not None:
        if isinstance(downsample, bool) or not isinstance(downsample, int) or not (
                1 <= downsample <= min(data.image_size)):
            raise DataUnavailableError(f"dataset option downsample: expected an integer factor "
                                       f"in [1, {min(data.image_size)}], got {downsample!r}")
        pool = lambda x: torch.nn.functional.avg_pool2d(  # noqa: E731
            x.float(), downsample).round().clamp(0, 255).to(torch.uint8)
        train_x, test_x = pool(train_x), pool(test_x)
    mean, std = _stats(train_x)
    return replace(data, train_x=train_x, train_y=data.train_y[train], test_x=test_x,
                   test_y=data.test_y[test], mean=mean, std=std)


# --------------------------------------------------------------------------- batches

class BatchStream:
    """Batches of one split, normalised (and augmented) on the device.

    With ``drop_last`` every batch has the same shape, which a captured step needs.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], device: torch.device, augment: Augment = Augment(),
                 shuffle: bool = True, drop_last: bool = True,
                 memory_format: torch.memory_format | None = None):
        self.memory_format = torch.contiguous_format if memory_format is None else memory_format
        self.x = x.to(device)
        self.y = y.to(device)
        self.batch_size = batch_size
        self.augment = augment
        self.shuffle, self.drop_last = shuffle, drop_last
        self.device = device
        shape = (1, -1, 1, 1)
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(shape)
        self.shift = (torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(shape)

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def normalize(self, x: Tensor) -> Tensor:
        return x.float() * self.scale - self.shift

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the split's images."""
        return int(self.x.shape[-2]), int(self.x.shape[-1])

    def set_cutout(self, side: int, prob: float) -> None:
        """Cutout of ``side`` pixels with probability ``prob`` from the next epoch on; the
        other augmentation settings stay. The declared way for a method (bind_data) to
        change augmentation over a search, e.g. R-DARTS's cutout ramp."""
        self.augment = replace(self.augment, cutout=side, cutout_prob=prob)

    def _draw(self, n: int, g: torch.Generator | None) -> dict[str, Tensor]:
        """The random augmentation parameters of ``n`` images, drawn on the CPU generator and
        moved to the device in one copy (per epoch, not per batch: no sync inside a step)."""
        a = self.augment
        h, w = int(self.x.shape[2]), int(self.x.shape[3])
        params: dict[str, Tensor] = {}
        if a.crop_padding:
            params["offsets"] = torch.randint(0, 2 * a.crop_padding + 1, (2, n), generator=g)
        if a.hflip:
            params["flip"] = torch.rand(n, generator=g) < 0.5
        if a.cutout:
            params["centres"] = torch.stack([torch.randint(0, h, (n,), generator=g),
                                             torch.randint(0, w, (n,), generator=g)])
            params["cutout"] = torch.rand(n, generator=g) < a.cutout_prob
        if not params:
            return params
        # one transfer for the whole epoch
        keys = list(params)
        flat = torch.cat([params[k].reshape(-1).long() for k in keys]).to(self.device)
        out, i = {}, 0
        for k in keys:
            m = params[k].numel()
            out[k] = flat[i:i + m].view(params[k].shape)
            i += m
        return out

    @staticmethod
    def _slice(params: dict[str, Tensor], lo: int, hi: int) -> dict[str, Tensor]:
        return {k: v[..., lo:hi] for k, v in params.items()}

    def _augment(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Random crop (zero padding of the raw pixels, as torchvision) and horizontal flip."""
        a = self.augment
        b, c, h, w = x.shape
        if a.crop_padding:
            p = a.crop_padding
            xp = torch.nn.functional.pad(x, (p, p, p, p))
            oy, ox = params["offsets"]
            rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            x = xp[torch.arange(b, device=x.device)[:, None, None, None],
                   torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
        if a.hflip:
            x = torch.where(params["flip"].bool().view(-1, 1, 1, 1), x.flip(3), x)
        return x

    def _cutout(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Zero one square per image (centre uniform over the image, clipped at the border)."""
        a = self.augment
        h, w = x.shape[2], x.shape[3]
        cy, cx = params["centres"]
        half = a.cutout // 2
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        in_rows = ((rows[None] >= (cy - half)[:, None]) & (rows[None] < (cy + a.cutout - half)[:, None]))
        in_cols = ((cols[None] >= (cx - half)[:, None]) & (cols[None] < (cx + a.cutout - half)[:, None]))
        hole = in_rows[:, :, None] & in_cols[:, None, :] & params["cutout"].bool()[:, None, None]
        return x.masked_fill(hole[:, None], 0.0)

    def epoch(self, generator: torch.Generator | None = None, augment: bool = True
              ) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.y)
        order = (torch.randperm(n, generator=generator).to(self.device) if self.shuffle
                 else torch.arange(n, device=self.device))
        params = self._draw(n, generator) if augment else {}
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, n)
            idx = order[lo:hi]
            x = self.x[idx]
            p = self._slice(params, lo, hi)
            if augment:
                x = self._augment(x, p)
            x = self.normalize(x)
            if augment and self.augment.cutout:
                x = self._cutout(x, p)
            yield x.contiguous(memory_format=self.memory_format), self.y[idx]


class _TransformedImages:
    """Per-image CPU transforms in the order of the reference code: random crop (zero
    padding), horizontal flip, to float in [0, 1], normalise, cutout (DARTS's ``Cutout``).
    A map-style dataset (``__len__``, ``__getitem__``: all a ``DataLoader`` asks of one), not
    a ``torch.utils.data.Dataset`` subclass, so that this module imports without torch."""

    def __init__(self, stream: TorchLoaderStream, augment: bool):
        self.s, self.augment = stream, augment

    def __len__(self) -> int:
        return len(self.s.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        import torchvision.transforms.functional as TF

        a, x = self.s.augment, self.s.x[i]
        if self.augment and a.crop_padding:
            p = a.crop_padding
            x = TF.pad(x, [p, p, p, p])
            oy, ox = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
            x = x[:, oy:oy + self.s.x.shape[2], ox:ox + self.s.x.shape[3]]
        if self.augment and a.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        x = TF.normalize(x.float() / 255.0, self.s.mean, self.s.std)
        if self.augment and a.cutout and torch.rand(()) < a.cutout_prob:
            h, w = x.shape[1:]
            cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
            half = a.cutout // 2
            x = x.clone()
            x[:, max(0, cy - half):max(0, cy + a.cutout - half),
              max(0, cx - half):max(0, cx + a.cutout - half)] = 0.0
        return x, self.s.y[i]


class TorchLoaderStream(BatchStream):
    """The reference-style data path (``--data-loader torch``): images stay on the host, a
    ``torch.utils.data.DataLoader`` applies the transforms image by image on the CPU
    (torch's global RNG, reseeded per epoch by the runner) and each batch is copied to the
    device. Same batches' distribution as :class:`BatchStream`, none of its speed; kept as
    the baseline of benchmarks/search_speed.py and for pipelines that need per-image
    Python transforms."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], device: torch.device, augment: Augment = Augment(),
                 shuffle: bool = True, drop_last: bool = True, num_workers: int = 0,
                 memory_format: torch.memory_format | None = None):
        super().__init__(x[:0], y[:0], batch_size, mean, std, device, augment, shuffle,
                         drop_last, memory_format)
        self.x, self.y = x.cpu(), y.cpu()  # host copies; nothing of the split on the device
        self.mean, self.std = tuple(mean), tuple(std)
        self.num_workers = num_workers

    def epoch(self, generator: torch.Generator | None = None, augment: bool = True
              ) -> Iterator[tuple[Tensor, Tensor]]:
        loader = torch.utils.data.DataLoader(
            _TransformedImages(self, augment), batch_size=self.batch_size,
            shuffle=self.shuffle, generator=generator if self.shuffle else None,
            drop_last=self.drop_last, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda")
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            yield x.contiguous(memory_format=self.memory_format), y.to(self.device, non_blocking=True)
