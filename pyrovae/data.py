"""Data sets: ``"digits"`` (offline default), ``"mnist"``, ``"fashion-mnist"`` and user arrays.

Every data set comes as :class:`Data` with fixed ``train``/``valid``/``test`` splits of rows in
[0, 1]. Images are stored as flat rows ``(N, C·H·W)`` (what every model scores) and keep their
shape in ``Data.input_shape = (C, H, W)``, which convolutional networks use to see them as
images (``pyrovae.models.VAE(input_dim=data.input_shape, encoder="conv", ...)``). Binarisation:

* ``"none"``: grey levels as they are;
* ``"static"``: every split drawn once, x ~ Bernoulli(pixel), with a fixed seed;
* ``"dynamic"``: training rows redrawn every epoch (as in Burda et al. 2016 and Davidson et al.
  2018); validation and test rows drawn once with a fixed seed, so that figures are comparable
  between runs.

Augmentation of square grey images (flat rows): :func:`affine` turns and moves each row by
given amounts, :func:`random_affine` by random ones (DEC-DA's), e.g. as VaDE's pretraining's
``augment``.
"""

import copy
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checks, sampling

BINARIZE = ("none", "static", "dynamic")
DATASETS = ("digits", "mnist", "fashion-mnist")
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_SPLIT_SEED = 0  # fixes the digits split and every once-only binarisation


@dataclass
class Split:
    """Rows ``x`` of shape ``(N, D)`` and optional integer labels ``y`` of shape ``(N,)``."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self):
        return self.x.shape[0]

    def rows(self, index):
        """``(x[index], y[index] or None)`` for a 1-D tensor of row indices."""
        return self.x[index], None if self.y is None else self.y[index]

    def chunks(self, size):
        """The rows in order, ``size`` at a time: ``(≤ size, D)`` tensors."""
        return torch.split(self.x, size)


class DatasetSplit:
    """The rows of a map-style ``torch.utils.data.Dataset``, read a batch at a time.

    Item ``i`` of the data set is a row ``x`` of shape ``(D,)``, a tuple ``(x,)`` or a pair
    ``(x, y)`` with an integer label ``y`` (e.g. a ``TensorDataset``). Only the rows of the
    batch at hand are in memory, so the data set may be larger than the RAM (a
    ``numpy.memmap`` behind it); a batch of indices is fetched with the data set's
    ``__getitems__`` when it has one, else item by item. Batches hold exactly the rows a
    :class:`Split` of the same rows would give. ``x`` and ``y`` read *every* row (for plots and
    a model's ``initialize``).
    """

    def __init__(self, dataset):
        is_map = hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
        if not is_map or isinstance(dataset, str | bytes | dict):
            raise ValueError(
                f"data must be rows, a pyrovae.data.Data or a map-style Dataset (with "
                f"__getitem__ and __len__), got {type(dataset).__name__}; for a DataLoader "
                "pass its .dataset"
            )
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def rows(self, index):
        index = [int(i) for i in index]
        fetch = getattr(self.dataset, "__getitems__", None)
        items = fetch(index) if fetch is not None else [self.dataset[i] for i in index]
        if not items:
            return torch.empty(0), None
        pairs = [_as_pair(item) for item in items]
        x = torch.stack([torch.as_tensor(a) for a, _ in pairs])
        has_y = pairs[0][1] is not None
        return x, torch.as_tensor([int(b) for _, b in pairs]) if has_y else None

    def chunks(self, size):
        for start in range(0, len(self), size):
            yield self.rows(range(start, min(start + size, len(self))))[0]

    @property
    def x(self):
        return self.rows(range(len(self)))[0]

    @property
    def y(self):
        return self.rows(range(len(self)))[1] if len(self) else None


def _as_pair(item):
    if isinstance(item, tuple | list):
        if len(item) not in (1, 2):
            raise ValueError(
                f"a Dataset item must be a row, (x,) or (x, y); got a tuple of {len(item)}"
            )
        return item[0], item[1] if len(item) == 2 else None
    return item, None


def as_split(rows):
    """A :class:`Split` (or :class:`DatasetSplit`) as is, a tensor or array as a
    :class:`Split`, a map-style ``Dataset`` as a :class:`DatasetSplit`."""
    if rows is None or isinstance(rows, Split | DatasetSplit):
        return rows
    if torch.is_tensor(rows) or isinstance(rows, np.ndarray):
        return Split(torch.as_tensor(rows))
    return DatasetSplit(rows)


class Data:
    """Train/validation/test splits plus how to draw training batches.

    :param Split train, valid, test: the splits (``valid`` and ``test`` may be ``None``); each
        may also be a tensor of rows or a map-style ``Dataset`` (see :func:`as_split`).
    :param str binarize: ``"none" | "static" | "dynamic"``, see the module docstring.
    :param tuple image_shape: ``(height, width)`` or ``(channels, height, width)`` of the
        images whose flattened pixels are the rows, or ``None`` for plain vectors.

    ``input_shape`` is ``(C, H, W)`` for images (C = 1 for grey levels) and ``(D,)`` for
    vectors; ``image_shape`` is ``(H, W)`` for grey-level images (what the pictures draw) and
    ``None`` otherwise.
    """

    def __init__(self, train, valid=None, test=None, binarize="none", image_shape=None, name=""):
        if binarize not in BINARIZE:
            raise ValueError(f"binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
        train, valid, test = as_split(train), as_split(valid), as_split(test)
        on_disk = [s for s in (valid, test) if isinstance(s, DatasetSplit)]
        if (on_disk and binarize != "none") or (
            isinstance(train, DatasetSplit) and binarize == "static"
        ):
            raise ValueError(
                f"binarize={binarize!r} draws whole splits once, which a Dataset read batch by "
                "batch does not allow: binarize the rows in your Dataset, or use 'dynamic' "
                "with a Dataset for the training rows only"
            )
        shape = None if image_shape is None else tuple(int(s) for s in image_shape)
        if shape is not None and len(shape) == 2:
            shape = (1, *shape)
        if shape is not None and (len(shape) != 3 or math.prod(shape) != _row_length(train)):
            raise ValueError(
                f"image_shape {image_shape} does not match rows of {_row_length(train)} values; "
                "give (H, W) or (C, H, W) with C·H·W = the row length"
            )
        self._input_shape = shape
        self.image_shape = shape[1:] if shape is not None and shape[0] == 1 else None
        self.binarize, self.name = binarize, name
        gen = torch.Generator().manual_seed(_SPLIT_SEED)
        once = binarize != "none"
        self.train = _binarized(train, gen) if binarize == "static" else train
        self.valid = _binarized(valid, gen) if once and valid is not None else valid
        self.test = _binarized(test, gen) if once and test is not None else test

    @property
    def input_dim(self):
        """D: the length of a row (C·H·W for images)."""
        return _row_length(self.train)

    @property
    def input_shape(self):
        """``(C, H, W)`` for images, ``(D,)`` for vectors."""
        return self._input_shape or (self.input_dim,)

    def batches(
        self, batch_size, epoch, seed, rank=0, world_size=1, labels=False, labelled_per_batch=0
    ):
        """Shuffled training batches ``(B, D)`` for one epoch; with ``labels``, ``(B, D + 1)``:
        each row followed by its label (−1: unlabelled), for the models that learn from
        labels (see :func:`pyrovae.infer.train.with_labels`).

        The order and the dynamic binarisation are drawn from a generator seeded by
        ``(seed, epoch)`` only, so an epoch repeats exactly after a resume. With
        ``world_size > 1`` each global batch of ``batch_size * world_size`` rows — the batch
        one process with that batch size would see, binarised alike — is dealt out so that
        rank r gets its rows r, r + W, … (a rank may get none of a short last batch). A
        global batch of all rows keeps them in order, so that a non-amortised guide (one
        posterior per row) sees each row at its place.

        With ``labelled_per_batch`` = L > 0 (semi-supervised training, training labels with
        −1 for an unlabelled row), every batch instead holds L labelled rows and
        ``batch_size − L`` unlabelled ones (per process): an epoch is one pass over the
        unlabelled rows, and the labelled rows are dealt out again and again, reshuffled at
        every pass (:func:`pyrovae.sampling.mixed_batches`).
        """
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        size = batch_size * world_size
        if labelled_per_batch:
            y = self.train.y
            order = sampling.mixed_batches(y, size, labelled_per_batch * world_size, gen)
        else:
            order = sampling.plain_batches(len(self.train), size, gen)
        for index in order:
            if self.binarize != "dynamic":  # read this rank's rows only
                x, y = self.train.rows(index[rank::world_size])
            else:
                x, y = self.train.rows(index)
                x = torch.bernoulli(x, generator=gen)[rank::world_size]  # the global draw
                y = None if y is None else y[rank::world_size]
            yield torch.cat([x, y[:, None].to(x.dtype)], 1) if labels else x


def _row_length(split):
    first = next(iter(split.chunks(1)), None)
    return 0 if first is None or not len(first) else first[0].numel()


def _binarized(split, gen):
    return Split(torch.bernoulli(split.x, generator=gen), split.y)


def load(name="digits", root=None, binarize="none"):
    """Load a named data set as :class:`Data`.

    ``"digits"``: scikit-learn's 8×8 digits (1,797 images, pixels / 16), split 1,150 / 288 / 359
    train/valid/test with a fixed permutation. ``"mnist"``, ``"fashion-mnist"``: 28×28 images
    / 255, train = the first 50,000 training images, valid = the last 10,000, test = the official
    10,000. Their files are read by torchvision from ``root`` (else ``$PYROVAE_DATA``, else
    ``~/.pyrovae/data``), downloaded when they are missing and the network allows.
    """
    if name == "digits":
        return _digits(binarize)
    if name in ("mnist", "fashion-mnist"):
        return _torchvision(name, root, binarize)
    raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")


def from_arrays(x, y=None, test_fraction=0.2, valid_fraction=0.1, binarize="none", seed=0):
    """Wrap user data (tensor or array) as :class:`Data`: rows ``(N, D)``, grey-level images
    ``(N, H, W)`` or images ``(N, C, H, W)`` (channels first, as torch has them: RGB is C = 3;
    channels-last arrays ``(N, H, W, 3)`` are refused with the transpose to apply).

    Images are flattened to rows and keep their shape in ``input_shape``. Rows are split at
    random (``seed``) into test, validation and training rows. Values must be
    finite; they are kept as floating point of their own precision (integers are refused: scale
    them to [0, 1] first).
    """
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if not x.is_floating_point():
        raise ValueError(f"data must be floating point, got {x.dtype}; scale them to [0, 1] first")
    if x.dim() == 4 and x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        raise ValueError(
            f"images of shape {tuple(x.shape)} look channels-last (N, H, W, C); pass them "
            "channels-first (N, C, H, W), e.g. x.transpose(0, 3, 1, 2)"
        )
    image_shape = tuple(x.shape[1:]) if x.dim() in (3, 4) else None
    x = x.reshape(x.shape[0], -1) if x.dim() in (3, 4) else x
    if x.dim() != 2 or x.shape[0] < 3:
        raise ValueError(
            f"data must be (N, D), (N, H, W) or (N, C, H, W) with N >= 3, got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("data contain NaN or inf; clean or drop those rows")
    if y is not None:
        y = torch.as_tensor(np.asarray(y)).long()
        if y.shape != x.shape[:1]:
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    n = x.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test, n_valid = int(round(n * test_fraction)), int(round(n * valid_fraction))
    parts = (
        order[: n - n_test - n_valid],
        order[n - n_test - n_valid : n - n_test],
        order[n - n_test :],
    )
    splits = [Split(x[i], None if y is None else y[i]) if len(i) else None for i in parts]
    return Data(*splits, binarize=binarize, image_shape=image_shape, name="arrays")


def _digits(binarize):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = from_arrays(
        bunch.images.astype(np.float32) / 16.0, bunch.target, 0.2, 0.16, binarize, _SPLIT_SEED
    )
    data.name = "digits"
    return data


def keep_labels(data, num_labels, seed=0):
    """A copy of ``data`` whose training rows keep ``num_labels`` labels, the same number per
    class (``num_labels`` must be a multiple of the number of classes), chosen at random with
    ``seed``; every other training label becomes −1 (unlabelled). Validation and test labels
    are kept, to measure accuracy."""
    train = data.train
    if train.y is None:
        raise ValueError(f"{data.name or 'these data'} have no labels to keep")
    y_all = train.y
    classes = y_all.unique()
    k = len(classes)
    checks.int_at_least("num_labels", num_labels, k)  # one per class at least
    if num_labels % k:
        raise ValueError(
            f"num_labels must be a multiple of the {k} classes, so that every class keeps as "
            f"many labels, got {num_labels}; try {num_labels - num_labels % k}"
        )
    gen = torch.Generator().manual_seed(seed)
    y = torch.full_like(y_all, -1)
    for c in classes:
        rows = (y_all == c).nonzero()[:, 0]
        if len(rows) < num_labels // k:
            raise ValueError(f"class {c.item()} has only {len(rows)} training rows")
        keep = rows[torch.randperm(len(rows), generator=gen)[: num_labels // k]]
        y[keep] = c
    kept = copy.copy(data)
    kept.train = Split(train.x, y)
    return kept


def affine(x, angle, shift):
    """Rows ``x`` ``(N, s²)``, each a square grey image, turned by ``angle`` ``(N,)`` degrees
    counter-clockwise about its centre and then moved by ``shift`` ``(N, 2)`` pixels (right,
    down): output(p) = x(R(−angle)(p − c − shift) + c), c the centre, bilinear between pixel
    centres and zero outside the image. Returns ``(N, s²)``."""
    n, d = x.shape
    side = math.isqrt(d)
    if side * side != d:
        raise ValueError(f"rows of {d} values are not square images; affine needs (N, side²)")
    a = torch.deg2rad(torch.as_tensor(angle, dtype=x.dtype, device=x.device))
    cos, sin = a.cos(), a.sin()
    t = torch.as_tensor(shift, dtype=x.dtype, device=x.device) * (2 / side)  # pixels → [−1, 1]
    # affine_grid maps each output point (u, v) (u right, v down) to the input point it reads:
    # R(−angle)((u, v) − t); on screen (v down) R(−angle) is [[cos, −sin], [sin, cos]]
    theta = torch.stack(
        [
            torch.stack([cos, -sin, -(cos * t[:, 0] - sin * t[:, 1])], -1),
            torch.stack([sin, cos, -(sin * t[:, 0] + cos * t[:, 1])], -1),
        ],
        -2,
    )  # (N, 2, 3)
    images = x.reshape(n, 1, side, side)
    grid = torch.nn.functional.affine_grid(theta, images.shape, align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, align_corners=False).reshape(n, d)


def random_affine(x, *, degrees=10.0, shift=0.1, generator=None):
    """DEC-DA's augmentation (Guo et al. 2018, Keras's ``ImageDataGenerator(rotation_range=10,
    width_shift_range=0.1, height_shift_range=0.1)``): each row of ``x`` ``(N, s²)`` turned by
    an angle ~ U(−degrees, degrees) and moved by U(−shift·s, shift·s) pixels along each axis
    (:func:`affine`), drawn with ``generator``. Returns ``(N, s²)``."""
    n, side = len(x), math.isqrt(x.shape[-1])
    angle = (2 * torch.rand(n, generator=generator) - 1) * degrees
    moves = (2 * torch.rand(n, 2, generator=generator) - 1) * (shift * side)
    return affine(x, angle, moves)


def data_root(root=None):
    """The folder holding torchvision data sets: ``root``, ``$PYROVAE_DATA`` or the default."""
    return Path(root or os.environ.get("PYROVAE_DATA") or Path.home() / ".pyrovae" / "data")


def _check_idx(path, name):
    """Refuse an IDX file (LeCun's format: a magic number 0x0000 08 n, n big-endian uint32
    sizes, then the product of the sizes in bytes) whose header or length is wrong, before
    torchvision reads it (which fails with a traceback or a misleading message)."""
    images = "images" in path.name
    with open(path, "rb") as f:
        head = f.read(4 + 4 * 3)
    size = path.stat().st_size
    ndim = 3 if images else 1
    expected = 0x0800 + ndim
    problem = None
    if len(head) < 4 + 4 * ndim:
        problem = f"it has {size} bytes, fewer than an IDX header"
    elif int.from_bytes(head[:4], "big") != expected:
        found = int.from_bytes(head[:4], "big")
        problem = f"its magic number is {found:#010x}, not {expected:#010x}"
    else:
        dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        need = 4 + 4 * ndim + math.prod(dims)
        if size != need:
            problem = (
                f"its header announces {need} bytes ({' x '.join(map(str, dims))}), it has {size}"
            )
    if problem is not None:
        raise ValueError(
            f"{name}: {path} is not a valid IDX file ({problem}); it is corrupt or truncated: "
            "delete it to download it again, or replace it with the original file"
        )


def _torchvision(name, root, binarize):
    import torchvision

    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
    given, root = root, data_root(root)
    raw = root / cls.__name__ / "raw"
    missing = [f for f in _MNIST_FILES if not (raw / f).exists()]
    if missing and given is not None:  # a data root given is only read, never written
        raise FileNotFoundError(
            f"{name}: could not find {', '.join(missing)} in {raw}; a --data-root is only "
            f"read: put the four files {', '.join(_MNIST_FILES)} there, or leave --data-root "
            "unset to download them into $PYROVAE_DATA or ~/.pyrovae/data"
        )
    if missing:
        new = [p for p in (root, raw.parent, raw) if not p.exists()][:1]  # what we would create
        try:
            cls(str(root), train=True, download=True)
            cls(str(root), train=False, download=True)
        except Exception as err:  # offline: torchvision raises URLError/RuntimeError
            for folder in new:  # leave nothing behind
                shutil.rmtree(folder, ignore_errors=True)
            raise FileNotFoundError(
                f"{name}: could not find {', '.join(missing)} in {raw} and could not download "
                f"them ({type(err).__name__}); put the four files {', '.join(_MNIST_FILES)} "
                "there, or point --data-root / $PYROVAE_DATA at the folder that holds "
                f"{cls.__name__}/raw"
            ) from None
    for file in _MNIST_FILES:
        _check_idx(raw / file, name)
    train = cls(str(root), train=True, download=False)
    test = cls(str(root), train=False, download=False)
    x_train = train.data.reshape(len(train.data), -1).float() / 255.0
    x_test = test.data.reshape(len(test.data), -1).float() / 255.0
    n = len(x_train) - len(x_train) // 6  # 50,000 of the official 60,000
    return Data(
        Split(x_train[:n], train.targets[:n]),
        Split(x_train[n:], train.targets[n:]),
        Split(x_test, test.targets),
        binarize=binarize,
        image_shape=(28, 28),
        name=name,
    )
