"""MLflow (a local folder store), W&B (offline) and CSV loggers: a tiny fit logged, then read
back with each backend's own reader and compared with what the run handed its loggers (a
recording logger beside it) and with the run's ``config.yaml``."""

import csv
import struct

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import pyrovae
from pyrovae.infer.loggers import CSVLogger, Logger, MLflowLogger, flatten, make_loggers


class Recorder(Logger):
    def __init__(self):
        self.metrics, self.images = {}, {}

    def log_metrics(self, metrics, step):
        for name, value in metrics.items():
            self.metrics.setdefault(name, []).append((step, value))

    def log_image(self, name, image, step):
        self.images[name, step] = image


def _fit(digits, out, logger):
    recorder = Recorder()
    pyrovae.fit(
        pyrovae.VAE(64, 2, hidden=(16,)),
        digits,
        epochs=2,
        batch_size=400,
        progress=False,
        out=out,
        logger=[recorder, *logger],
    )
    with open(out / "config.yaml") as f:
        config = {k: str(v) for k, v in flatten(yaml.safe_load(f)).items()}
    return recorder, config


def _png_bytes(image):
    """The ``(H, W, 3)`` bytes a PNG of ``image`` ``(3, H, W)`` in [0, 1] holds."""
    return np.asarray((image * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0))


def _read_png(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_mlflow_logs_metrics_params_and_images_to_a_folder_store(digits, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's opt-in for folder stores
    uri = (tmp_path / "mlruns").as_uri()
    recorder, config = _fit(digits, tmp_path / "run", [MLflowLogger("digits", "a", uri)])
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("digits").experiment_id])
    assert run.info.run_name == "a" and run.info.status == "FINISHED"
    assert set(run.data.metrics) == set(recorder.metrics)
    for name, logged in recorder.metrics.items():
        history = client.get_metric_history(run.info.run_id, name)
        assert [(m.step, m.value) for m in history] == logged
    assert run.data.params == config
    images = [a.path.split("/")[-1] for a in client.list_artifacts(run.info.run_id, "images")]
    png = [f"images/{p}" for p in images if p.startswith("samples+step+6+") and p.endswith(".png")]
    assert len(png) == 1 and len([p for p in images if p.endswith(".png")]) == 2  # epochs 1, 2
    local = client.download_artifacts(run.info.run_id, png[0], str(tmp_path))
    np.testing.assert_array_equal(_read_png(local), _png_bytes(recorder.images["samples", 6]))


def _wandb_records(path):
    """The protobuf records of a W&B transaction log (``run-ID.wandb``): a 7-byte header, then
    32 KiB blocks of chunks, each ``crc32 (4) | length (2) | kind (1) | data``, kind 1 a whole
    record, 2/3/4 its first/middle/last part; a block's last < 7 bytes are padding."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    records, part, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(raw):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, size, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        part, pos = part + raw[pos + 7 : pos + 7 + size], pos + 7 + size
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            records.append(record)
            part = b""
        elif kind == 0:  # zero padding to the end of the block
            pos += block - pos % block
    return records


def test_wandb_offline_writes_metrics_config_and_images(digits, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = pyrovae.infer.loggers.WandbLogger("digits", "a", tmp_path / "wb", mode="offline")
    recorder, config = _fit(digits, tmp_path / "run", [logger])
    (log,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    records = _wandb_records(log)
    params, steps = {}, {}
    for record in records:
        kind = record.WhichOneof("record_type")
        updates = record.run.config.update if kind == "run" else record.config.update
        if kind in ("run", "config"):
            params.update({u.key: yaml.safe_load(u.value_json) for u in updates})
        if kind == "history":
            row = {"/".join(i.nested_key) or i.key: i.value_json for i in record.history.item}
            steps.setdefault(record.history.step.num, {}).update(row)
    params.pop("_wandb")
    assert {k: str(v) for k, v in params.items()} == config
    for name, logged in recorder.metrics.items():
        assert [(s, float(steps[s][name])) for s in sorted(steps) if name in steps[s]] == logged
    image = yaml.safe_load(steps[6]["samples/path"])
    assert wandb.__version__ and image.startswith("media/images/samples_6_")
    np.testing.assert_array_equal(
        _read_png(log.parent / "files" / image), _png_bytes(recorder.images["samples", 6])
    )


def test_csv_by_name_writes_metrics_params_and_images_in_the_run_folder(digits, tmp_path):
    out = tmp_path / "run"
    recorder, config = _fit(digits, out, ["csv"])
    with open(out / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for name, logged in recorder.metrics.items():
        assert [(int(r["step"]), float(r["value"])) for r in rows if r["name"] == name] == logged
    with open(out / "csv" / "params.csv", newline="") as f:
        assert {r["name"]: r["value"] for r in csv.DictReader(f)} == config
    np.testing.assert_array_equal(
        _read_png(out / "csv" / "images" / "samples_6.png"),
        _png_bytes(recorder.images["samples", 6]),
    )


def test_mlflow_by_name_logs_to_the_tracking_uri_of_the_environment(digits, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    (logger,) = make_loggers("mlflow")
    recorder, _ = _fit(digits, tmp_path / "run", [logger])
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("pyrovae").experiment_id])
    assert run.data.metrics["elbo/train"] == recorder.metrics["elbo/train"][-1][1]


@pytest.mark.parametrize(
    "spec, out, match",
    [
        ("comet", "run", "unknown logger 'comet'; known loggers: csv, mlflow, tensorboard, wandb"),
        ("csv", None, r"logger 'csv' writes into the run folder: give out=FOLDER"),
        (["tensorboard"], None, r"or pass TensorBoardLogger\(folder\)"),
        ([3], "run", "a logger must be a name"),
    ],
)
def test_bad_logger_specs_say_what_to_give(spec, out, match):
    with pytest.raises(ValueError, match=match):
        make_loggers(spec, out)


def test_a_csv_logger_object_writes_where_it_is_told(digits, tmp_path):
    recorder, _ = _fit(digits, tmp_path / "run", [CSVLogger(tmp_path / "elsewhere")])
    with open(tmp_path / "elsewhere" / "metrics.csv", newline="") as f:
        assert len([r for r in csv.DictReader(f) if r["name"] == "train/loss"]) == 6


def test_logging_leaves_the_run_alone(digits):
    """The logged terms and samples are drawn from their own seeded stream: a run with two
    loggers trains as one without, and both loggers get the same numbers and pictures."""
    runs = []
    for loggers in ([], [Recorder(), Recorder()]):
        torch.manual_seed(0)
        model = pyrovae.VAE(64, 2, hidden=(16,))
        options = {"epochs": 2, "batch_size": 400, "progress": False}
        history = pyrovae.fit(model, digits, logger=loggers, **options)
        history.pop("seconds")
        runs.append((history, model.state_dict(), loggers))
    (alone, weights, _), (logged, logged_weights, (a, b)) = runs
    assert alone == logged and all(torch.equal(weights[k], logged_weights[k]) for k in weights)
    assert a.metrics == b.metrics and "terms/kl" in a.metrics
    assert torch.equal(a.images["samples", 6], b.images["samples", 6])


def test_a_resumed_run_appends_to_its_csv_and_a_fresh_one_starts_anew(digits, tmp_path):
    def steps(**options):
        pyrovae.fit(
            pyrovae.VAE(64, 2, hidden=(16,)),
            digits,
            batch_size=400,
            progress=False,
            out=tmp_path,
            logger="csv",
            **options,
        )
        with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
            return [int(r["step"]) for r in csv.DictReader(f) if r["name"] == "train/loss"]

    assert steps(epochs=1) == [1, 2, 3]
    assert steps(epochs=2, resume=True) == [1, 2, 3, 4, 5, 6]
    assert steps(epochs=1, overwrite=True) == [1, 2, 3]
