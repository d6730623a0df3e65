"""The mixtures from the command line: the GMM by flags, the mixture prior by inline YAML."""

import json
import logging

import yaml

from pyrovae import cli


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().out


def test_gmm_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "gmm"
    flags = ["--num-components", 3, "--covariance", "full", "--epochs", 2, "--batch-size", 500]
    flags += ["--reg-covar", 1e-4]
    code, _ = run(capsys, "train", "--model", "gmm", *flags, "--out", out, "--quiet")
    assert code == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["model"], config["num_components"], config["covariance"]) == ("gmm", 3, "full")
    assert config["reg_covar"] == 1e-4
    assert config["binarize"] == "none"
    code, stdout = run(capsys, "evaluate", out, "--num-samples", 2)
    result = json.loads(stdout)
    assert code == 0 and result["log_likelihood"] == result["elbo"]  # exact: nothing to sample
    assert 0 <= result["accuracy"] <= 1 and "nmi" in result


def test_mixture_prior_vae_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "mvae"
    prior = "{name: mixture, num_components: 4}"
    fast = ["--epochs", 1, "--batch-size", 200, "--hidden", 32, "--latent-dim", 3]
    fast += ["--pretrain-epochs", 2]
    code, _ = run(capsys, "train", "--prior", prior, *fast, "--out", out, "--quiet")
    assert code == 0 and (out / "components.png").is_file()
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["pretrain_epochs"] == 2 and config["binarize"] == "none"  # grey, as VaDE
    code, stdout = run(capsys, "evaluate", out, "--num-samples", 5)
    result = json.loads(stdout)
    assert code == 0 and {"elbo", "log_likelihood", "accuracy", "nmi"} <= set(result)


def test_the_vade_start_shows_its_progress_on_stderr_unless_quiet(tmp_path, capsys):
    # the start runs before the first epoch and may take minutes: its INFO lines are shown
    flags = ["train", "--prior", "{name: mixture, num_components: 4}", "--epochs", 1]
    flags += ["--batch-size", 200, "--hidden", 32, "--latent-dim", 3, "--pretrain-epochs", 2]
    assert cli.main([str(a) for a in [*flags, "--out", tmp_path / "a"]]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["out"] == str(tmp_path / "a")  # stdout: the result alone
    lines = captured.err.splitlines()[:7]  # then the epoch's summary and the test ELBO
    shown = [
        "VaDE start: pretraining the auto-encoder, 2 epochs of 12 batches",
        "auto-encoder epoch 1/2: loss ",
        "auto-encoder epoch 2/2: loss ",
        "VaDE start: a 4-component Gaussian mixture on the codes of 1150 rows (EM, 100 starts)",
        "GMM start: EM with equal weights, 100 starts",
        "VaDE start: mixture fitted (",
        "VaDE start: q(z | x) narrowed to sigma ",
    ]
    assert all(line.startswith(start) for line, start in zip(lines, shown, strict=True)), lines
    assert logging.getLogger("pyrovae").handlers == []  # nothing left behind after the run
    assert captured.err.splitlines()[7].startswith("epoch 1  train elbo")
    assert cli.main([str(a) for a in [*flags, "--quiet", "--out", tmp_path / "b"]]) == 0
    assert capsys.readouterr().err == ""
