"""Data sets: ``"digits"`` (offline default), ``"mnist"``, ``"fashion-mnist"``, user arrays
(:func:`from_arrays`) and user files (:func:`load_file`: ``.npy``, ``.npz``, ``.csv``, ``.pt``,
a folder of images).

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
import csv
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import checks, sampling

if TYPE_CHECKING:
    from PIL.Image import Image

Index = torch.Tensor | Sequence[int]
"""Row indices: a 1-D integer tensor or a sequence of ints."""

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

    def __len__(self) -> int:
        return self.x.shape[0]

    def rows(self, index: Index) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(x[index], y[index] or None)`` for a 1-D tensor of row indices."""
        return self.x[index], None if self.y is None else self.y[index]

    def chunks(self, size: int) -> Iterable[torch.Tensor]:
        """The rows in order, ``size`` at a time: ``(≤ size, D)`` tensors."""
        return torch.split(self.x, size)

    def __repr__(self) -> str:
        x = f"x={tuple(self.x.shape)} {str(self.x.dtype).removeprefix('torch.')}"
        return f"Split({x}{'' if self.y is None else f', y={tuple(self.y.shape)}'})"


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

    def __init__(self, dataset: Any) -> None:
        is_map = hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
        if not is_map or isinstance(dataset, str | bytes | dict):
            raise ValueError(
                f"data must be rows, a pyrovae.data.Data or a map-style Dataset (with "
                f"__getitem__ and __len__), got {type(dataset).__name__}; for a DataLoader "
                "pass its .dataset"
            )
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def rows(self, index: Index | range) -> tuple[torch.Tensor, torch.Tensor | None]:
        index = [int(i) for i in index]
        fetch = getattr(self.dataset, "__getitems__", None)
        items = fetch(index) if fetch is not None else [self.dataset[i] for i in index]
        if not items:
            return torch.empty(0), None
        pairs = [_as_pair(item) for item in items]
        x = torch.stack([torch.as_tensor(a) for a, _ in pairs])
        has_y = pairs[0][1] is not None
        return x, torch.as_tensor([int(b) for _, b in pairs]) if has_y else None

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(self), size):
            yield self.rows(range(start, min(start + size, len(self))))[0]

    def __repr__(self) -> str:
        return f"DatasetSplit({type(self.dataset).__name__}, {len(self)} rows)"

    @property
    def x(self) -> torch.Tensor:
        return self.rows(range(len(self)))[0]

    @property
    def y(self) -> torch.Tensor | None:
        return self.rows(range(len(self)))[1] if len(self) else None


def _as_pair(item: Any) -> tuple[Any, Any]:
    if isinstance(item, tuple | list):
        if len(item) not in (1, 2):
            raise ValueError(
                f"a Dataset item must be a row, (x,) or (x, y); got a tuple of {len(item)}"
            )
        return item[0], item[1] if len(item) == 2 else None
    return item, None


def as_split(rows: Any) -> Split | DatasetSplit | None:
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
    vectors; ``image_shape`` is what the pictures draw: ``(H, W)`` for grey-level images,
    ``(C, H, W)`` for colour (C = 3, RGB, or 4, RGBA) and ``None`` otherwise.
    """

    train: Split | DatasetSplit
    valid: Split | DatasetSplit | None
    test: Split | DatasetSplit | None

    def __init__(
        self,
        train: Any,
        valid: Any = None,
        test: Any = None,
        binarize: str = "none",
        image_shape: Sequence[int] | None = None,
        name: str = "",
    ) -> None:
        if binarize not in BINARIZE:
            raise ValueError(f"binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
        train, valid, test = as_split(train), as_split(valid), as_split(test)
        if train is None:
            raise ValueError("Data needs training rows; got train=None")
        on_disk = [s for s in (valid, test) if isinstance(s, DatasetSplit)]
        if (on_disk and binarize != "none") or (
            isinstance(train, DatasetSplit) and binarize == "static"
        ):
            raise ValueError(
                f"binarize={binarize!r} draws whole splits once, which a Dataset read batch by "
                "batch does not allow: binarize the rows in your Dataset, or use 'dynamic' "
                "with a Dataset for the training rows only"
            )
        for split in (train, valid, test) if binarize != "none" else ():
            if isinstance(split, Split):
                _check_probabilities(split.x, binarize)
        shape = None if image_shape is None else tuple(int(s) for s in image_shape)
        if shape is not None and len(shape) == 2:
            shape = (1, *shape)
        if shape is not None and (len(shape) != 3 or math.prod(shape) != _row_length(train)):
            raise ValueError(
                f"image_shape {image_shape} does not match rows of {_row_length(train)} values; "
                "give (H, W) or (C, H, W) with C·H·W = the row length"
            )
        self._input_shape = shape
        self.image_shape = _picture_shape(shape)
        self.binarize, self.name = binarize, name
        gen = torch.Generator().manual_seed(_SPLIT_SEED)
        once = binarize != "none"
        self.train = _binarized(train, gen) if binarize == "static" else train
        self.valid = _binarized(valid, gen) if once and valid is not None else valid
        self.test = _binarized(test, gen) if once and test is not None else test

    def __repr__(self) -> str:
        splits = ",\n".join(f"    {k}={getattr(self, k)!r}" for k in ("train", "valid", "test"))
        return (
            f"Data(name={self.name!r}, input_shape={self.input_shape}, "
            f"binarize={self.binarize!r},\n{splits},\n)"
        )

    @property
    def input_dim(self) -> int:
        """D: the length of a row (C·H·W for images)."""
        return _row_length(self.train)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` for images, ``(D,)`` for vectors."""
        return self._input_shape or (self.input_dim,)

    def batches(
        self,
        batch_size: int,
        epoch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        labels: bool = False,
        labelled_per_batch: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Shuffled training batches ``(B, D)`` for one epoch; with ``labels``, ``(B, D + 1)``:
        each row followed by its label (−1: unlabelled), for the models that learn from
        labels (see :func:`pyrovae.infer.train.with_labels`); ``(B, D + c)`` for real-valued
        conditions ``y`` ``(N, c)`` (the conditional VAE's ``condition_dim``).

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

        With ``num_workers`` > 0 the rows are read by that many worker processes of a
        ``torch.utils.data.DataLoader`` (:func:`read_batches`), ahead of the step that uses
        them; the batches are the same, in the same order (``pin_memory``: in page-locked
        memory, for faster copies to a CUDA device).
        """
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        size = batch_size * world_size
        order: Sequence[torch.Tensor]
        if labelled_per_batch:
            y = self.train.y
            if y is None:
                raise ValueError("labelled_per_batch needs training labels; these data have none")
            order = sampling.mixed_batches(y, size, labelled_per_batch * world_size, gen)

        else:
            order = sampling.plain_batches(len(self.train), size, gen)
        dynamic = self.binarize == "dynamic"  # drawn for the global batch, so read it whole
        wanted = [index if dynamic else index[rank::world_size] for index in order]
        read = read_batches(self.train, wanted, num_workers, pin_memory, gen.initial_seed())
        for x, y in read:
            if dynamic:
                x = torch.bernoulli(x, generator=gen)[rank::world_size]  # the global draw
                y = None if y is None else y[rank::world_size]
            if not labels:
                yield x
            elif y is None:
                raise ValueError(f"labels=True needs labels: {self.name or 'these data'} have none")
            else:
                yield torch.cat([x, y.reshape(len(y), -1).to(x.dtype)], 1)


def read_batches(
    split: Split | DatasetSplit,
    indices: Sequence[torch.Tensor],
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``split.rows(index)`` for each index tensor of ``indices``, in order: read here, or with
    ``num_workers`` > 0 by a ``DataLoader`` whose batch sampler is ``indices`` itself, so that
    its worker processes read exactly these batches (each a ``__getitems__`` call on the
    split's data set) while the caller trains on earlier ones. The loader's worker seeds come
    from a generator seeded with ``seed``, not from torch's global generator, which the run's
    own sampling noise keeps to itself."""
    if not num_workers:
        return (split.rows(index) for index in indices)
    loader: torch.utils.data.DataLoader[tuple[torch.Tensor, torch.Tensor | None]]
    loader = torch.utils.data.DataLoader(
        _BatchReader(split),
        batch_sampler=indices,  # type: ignore[arg-type]  # any iterable of index batches
        num_workers=num_workers,
        collate_fn=_as_read,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )
    return iter(loader)


class _BatchReader(torch.utils.data.Dataset):
    """A split as a ``Dataset`` whose ``__getitems__`` reads a whole batch ``(x, y)``."""

    def __init__(self, split: Split | DatasetSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, index: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.split.rows(index)


def _as_read(batch: Any) -> Any:
    return batch


def _picture_shape(input_shape: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """``(H, W)`` of grey images, ``(C, H, W)`` of RGB(A) ones, ``None`` for anything else."""
    if input_shape is None or input_shape[0] not in (1, 3, 4):
        return None
    return input_shape[1:] if input_shape[0] == 1 else input_shape


def _row_length(split: Split | DatasetSplit) -> int:
    first = next(iter(split.chunks(1)), None)
    return 0 if first is None or not len(first) else first[0].numel()


def _check_probabilities(x: torch.Tensor, binarize: str) -> None:
    """Binarisation draws x ~ Bernoulli(value): every value must be a probability."""
    if len(x) and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"binarize={binarize!r} draws each value v as Bernoulli(v), so the rows must lie in "
            f"[0, 1], got values in {x.min().item():.4g}…{x.max().item():.4g}; scale them to "
            "[0, 1], or binarize 'none' (with a Gaussian likelihood)"
        )


def _binarized(split: Split | DatasetSplit, gen: torch.Generator) -> Split:
    return Split(torch.bernoulli(split.x, generator=gen), split.y)


def load(name: str = "digits", root: str | Path | None = None, binarize: str = "none") -> Data:
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
    raise ValueError(
        f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)} (for your own "
        "files: pyrovae.data.load_file(path))"
    )


def from_arrays(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray | None = None,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.1,
    binarize: str = "none",
    seed: int = 0,
) -> Data:
    """Wrap user data (tensor or array) as :class:`Data`: rows ``(N, D)``, grey-level images
    ``(N, H, W)`` or images ``(N, C, H, W)`` (channels first, as torch has them: RGB is C = 3;
    channels-last arrays ``(N, H, W, 3)`` are refused with the transpose to apply).

    ``y``: integer labels ``(N,)``, or real-valued conditions ``(N, c)`` (floating point,
    kept as they are: the conditional VAE's ``condition_dim``).

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
        y = torch.as_tensor(np.asarray(y))
        conditions = y.dim() == 2 and y.is_floating_point() and len(y) == len(x)
        y = y if conditions else y.long()
        if not conditions and y.shape != x.shape[:1]:
            raise ValueError(
                f"labels must have shape ({x.shape[0]},) (or real-valued conditions "
                f"({x.shape[0]}, c)), got {tuple(y.shape)}"
            )
    n = x.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test, n_valid = int(round(n * test_fraction)), int(round(n * valid_fraction))
    parts = (
        order[: n - n_test - n_valid],
        order[n - n_test - n_valid : n - n_test],
        order[n - n_test :],
    )
    splits = [Split(x[i], None if y is None else y[i]) if len(i) else None for i in parts]
    train, valid, test = splits
    return Data(train, valid, test, binarize=binarize, image_shape=image_shape, name="arrays")


FILE_KINDS = (".npy", ".npz", ".csv", ".pt")


def load_file(
    path: str | Path,
    labels: str | int | None = None,
    key: str | None = None,
    binarize: str = "none",
) -> Data:
    """Load the user's own data from ``path`` as :class:`Data`, split into training,
    validation and test rows as :func:`from_arrays` does (test 20 %, validation 10 %), with a
    fixed permutation (seed 0): like a named data set, a file always gives the same splits.

    * ``.npy``: one array, rows ``(N, D)``, grey images ``(N, H, W)`` or images
      ``(N, C, H, W)``; ``labels``: a column of ``(N, D)`` rows (an index), taken out of them.
    * ``.npz``: named arrays; ``key`` names the data (by default the only array that is not
      the labels), ``labels`` the key of the labels ``(N,)``.
    * ``.csv``: comma-separated numbers, one row per line, with a header line of column names
      or without (a first line holding anything but numbers is a header); ``labels``: a column
      name or index. Read as float32.

    A column index may also be given as a string of digits (``"3"``, ``"-1"``), as a command
    line passes it, wherever no column or key has that name.
    * ``.pt``: a tensor (as ``.npy``) or a dict of tensors (as ``.npz``), saved with
      ``torch.save`` and read with ``weights_only=True``.
    * a folder: its images (the files with a suffix of torchvision's ``IMG_EXTENSIONS``, in
      name order; subfolders are not read), read with PIL, all of one size and colour mode:
      grey (C = 1), RGB (C = 3) or RGBA (C = 4); pixels / 255, the shape ``(C, H, W)`` kept in
      ``input_shape``.

    Labels must be whole numbers (class indices, −1 for an unlabelled row). Values must be
    floating point (scale integer arrays to [0, 1] first) and finite. A file that cannot be
    used raises a one-line ``ValueError`` that says what to change.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; give a {', '.join(FILE_KINDS)} file or a folder of images"
        )
    if path.is_dir():
        if labels is not None or key is not None:
            raise ValueError(f"{path}: a folder of images has no labels or keys; leave them unset")
        x, y = _read_images(path), None
    elif path.suffix.lower() not in FILE_KINDS:
        raise ValueError(
            f"{path}: unknown kind of file {path.suffix!r}; give a {', '.join(FILE_KINDS)} file "
            "or a folder of images"
        )
    else:
        read = {".npy": _read_npy, ".npz": _read_npz, ".csv": _read_csv, ".pt": _read_pt}
        x, y = read[path.suffix.lower()](path, labels, key)
    if y is not None:
        y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)
        if y.is_floating_point() and not (y == y.round()).all():
            raise ValueError(
                f"{path}: labels must be whole numbers (class indices), got {y[:5].tolist()}"
            )
    try:
        data = from_arrays(x, y, binarize=binarize, seed=_SPLIT_SEED)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    data.name = path.name
    return data


Arrays = tuple[Any, Any]  # rows (an array or tensor) and labels (one, or None)


def _read_npy(path: Path, labels: str | int | None, key: str | None) -> Arrays:
    if key is not None:
        raise ValueError(f"{path}: a .npy file holds one array and no keys; leave key unset")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as err:  # object arrays, or not a .npy file
        raise ValueError(
            f"{path} is not a .npy array of numbers ({err}); save it with np.save(path, array)"
        ) from None
    return _column(path, x, labels)


def _column(path: Path, x: Any, labels: str | int | None) -> Arrays:
    """Rows ``x`` without the column ``labels`` (an index, or its digits as from a command
    line), and that column."""
    if labels is None:
        return x, None
    if isinstance(labels, str) and labels.removeprefix("-").isdigit():
        labels = int(labels)
    if isinstance(labels, bool) or not isinstance(labels, int) or x.ndim != 2:
        raise ValueError(
            f"{path}: labels of an array are one of its columns, given by index, for rows "
            f"(N, D); got labels={labels!r} for shape {tuple(x.shape)}"
        )
    if not -x.shape[1] <= labels < x.shape[1]:
        raise ValueError(f"{path}: no column {labels} in rows of {x.shape[1]} values")
    keep = [j for j in range(x.shape[1]) if j != labels % x.shape[1]]
    return x[:, keep], x[:, labels]


def _read_npz(path: Path, labels: str | int | None, key: str | None) -> Arrays:
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except ValueError as err:
        raise ValueError(f"{path} is not an .npz archive of arrays of numbers ({err})") from None
    return _named(path, arrays, labels, key, "np.savez(path, x=rows, y=labels)")


def _named(
    path: Path, arrays: Mapping[Any, Any], labels: str | int | None, key: str | None, how: str
) -> Arrays:
    """Data and labels from a dict of named arrays (an .npz or a .pt dict)."""
    for name in (key, labels):
        if name is not None and name not in arrays:
            raise ValueError(
                f"{path} has no array {name!r}; its arrays: {', '.join(map(repr, arrays))}"
            )
    if key is None:
        rest = [k for k in arrays if k != labels]
        if len(rest) != 1:
            raise ValueError(
                f"{path} holds arrays {', '.join(map(repr, rest)) or 'none'} besides the "
                f"labels; name the data with key=NAME (save them as {how})"
            )
        key = rest[0]
    return arrays[key], None if labels is None else arrays[labels]


def _read_pt(path: Path, labels: str | int | None, key: str | None) -> Arrays:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle of other objects, or not a torch file
        raise ValueError(
            f"{path} is not a tensor or a dict of tensors ({type(err).__name__}); save them "
            "with torch.save(tensor, path) or torch.save({'x': rows, 'y': labels}, path)"
        ) from None
    if torch.is_tensor(loaded):
        if key is not None:
            raise ValueError(f"{path} holds one tensor and no keys; leave key unset")
        return _column(path, loaded, labels)
    if isinstance(loaded, dict) and all(torch.is_tensor(v) for v in loaded.values()):
        return _named(path, loaded, labels, key, "torch.save({'x': rows, 'y': labels}, path)")
    raise ValueError(
        f"{path} holds a {type(loaded).__name__}, not a tensor or a dict of tensors; save "
        "them with torch.save(tensor, path) or torch.save({'x': rows, 'y': labels}, path)"
    )


def _read_csv(path: Path, labels: str | int | None, key: str | None) -> Arrays:
    if key is not None:
        raise ValueError(f"{path}: a .csv file has columns, not keys; leave key unset")
    with open(path, newline="") as f:
        lines = [(n, row) for n, row in enumerate(csv.reader(f), 1) if row]
    if not lines:
        raise ValueError(f"{path} is empty; give one row of comma-separated numbers per line")
    header = None
    if not all(_is_number(v) for v in lines[0][1]):
        header, lines = lines[0][1], lines[1:]
        if not lines:
            raise ValueError(f"{path} has a header line but no rows below it")
    width = len(header or lines[0][1])
    for n, row in lines:
        if len(row) != width:
            raise ValueError(
                f"{path}: line {n} has {len(row)} values, the {'header' if header else 'first'} "
                f"line {width}; every line needs the same columns"
            )
        for j, value in enumerate(row):
            if not _is_number(value):
                raise ValueError(
                    f"{path}: line {n}, column {j + 1}: {value.strip()!r} is not a number; "
                    "give numbers only, separated by commas (labels as class indices)"
                )
    x = np.array([[float(v) for v in row] for _, row in lines], dtype=np.float32)
    if isinstance(labels, str) and header is not None and labels in header:
        labels = header.index(labels)
    elif isinstance(labels, str) and not labels.removeprefix("-").isdigit():
        columns = f"its columns: {', '.join(header)}" if header else "it has no header line"
        raise ValueError(f"{path} has no column {labels!r}; {columns}")
    return _column(path, x, labels)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _read_images(folder: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets.folder import IMG_EXTENSIONS
    from torchvision.transforms.functional import pil_to_tensor

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise ValueError(
            f"{folder} holds no images ({', '.join(IMG_EXTENSIONS)}); put the images in that "
            "folder itself (subfolders are not read)"
        )
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(pil_to_tensor(_colour_mode(image, file)))
        except UnidentifiedImageError:
            raise ValueError(f"{file} is not an image PIL can read; remove it") from None
        if images[-1].shape != images[0].shape:
            raise ValueError(
                f"{folder}: mixed image sizes, {files[0].name} is {tuple(images[0].shape)} "
                f"(C, H, W), {file.name} is {tuple(images[-1].shape)}; give images of one size "
                "and one colour mode (grey, RGB or RGBA)"
            )
    return torch.stack(images).float() / 255.0


def _colour_mode(image: "Image", file: Path) -> "Image":
    """The image as 8-bit grey (``L``), RGB or RGBA."""
    if image.mode in ("L", "RGB", "RGBA"):
        return image
    if image.mode in ("I", "I;16", "I;16B", "F"):
        raise ValueError(
            f"{file} has {image.mode!r} pixels (16-bit or floating point); save the images with "
            "8 bits per channel, or the pixels as a .npy array scaled to [0, 1]"
        )
    if image.mode in ("1", "LA"):
        return image.convert("L") if image.mode == "1" else image.convert("RGBA")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _digits(binarize: str) -> Data:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = from_arrays(
        bunch.images.astype(np.float32) / 16.0, bunch.target, 0.2, 0.16, binarize, _SPLIT_SEED
    )
    data.name = "digits"
    return data


def keep_labels(data: Data, num_labels: int, seed: int = 0) -> Data:
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


def affine(
    x: torch.Tensor, angle: torch.Tensor | Sequence[float], shift: torch.Tensor | Sequence
) -> torch.Tensor:
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
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)

    return torch.nn.functional.grid_sample(images, grid, align_corners=False).reshape(n, d)


def random_affine(
    x: torch.Tensor,
    *,
    degrees: float = 10.0,
    shift: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DEC-DA's augmentation (Guo et al. 2018, Keras's ``ImageDataGenerator(rotation_range=10,
    width_shift_range=0.1, height_shift_range=0.1)``): each row of ``x`` ``(N, s²)`` turned by
    an angle ~ U(−degrees, degrees) and moved by U(−shift·s, shift·s) pixels along each axis
    (:func:`affine`), drawn with ``generator``. Returns ``(N, s²)``."""
    n, side = len(x), math.isqrt(x.shape[-1])
    angle = (2 * torch.rand(n, generator=generator) - 1) * degrees
    moves = (2 * torch.rand(n, 2, generator=generator) - 1) * (shift * side)
    return affine(x, angle, moves)


def data_root(root: str | Path | None = None) -> Path:
    """The folder holding torchvision data sets: ``root``, ``$PYROVAE_DATA`` or the default."""
    return Path(root or os.environ.get("PYROVAE_DATA") or Path.home() / ".pyrovae" / "data")


def _check_idx(path: Path, name: str) -> None:
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


def _torchvision(name: str, root: str | Path | None, binarize: str) -> Data:

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
