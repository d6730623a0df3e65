"""sphinx-gallery hooks: run each example for a few steps on the digits (or generated data)
and show the PNG files it writes.

Our examples draw with matplotlib's Agg canvas or write pixels directly, never through pyplot,
so sphinx-gallery's matplotlib scraper would see nothing: :func:`png_scraper` picks up the
pictures each example wrote into its ``--out`` folder instead.
"""

import shutil
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

# arguments that keep each example to seconds of CPU time (besides --out)
FEW_STEPS = {
    "clustering": ["-n", "3", "--pretrain-epochs", "3"],
    "custom_model": ["-n", "10"],
    "cvae": ["-n", "20"],
    "gaussian_vae": ["-n", "1500"],
    "gmm": ["-n", "100"],
    "larger_than_memory": ["-n", "1", "--rows", "2300"],
    "llgae": ["-n", "5"],
    "ss_vae": ["-n", "5"],
    "svae": ["-n", "10", "--num-draws", "5000"],
    "vmf_mixture": ["-n", "50", "--num-points", "500"],
}


def _out(gallery_conf, src_file):
    return Path(gallery_conf["src_dir"]) / "_build" / "gallery_runs" / Path(src_file).stem


def reset_argv(gallery_conf, script_vars):
    """``sys.argv[1:]`` of each example run by the gallery."""
    src = script_vars["src_file"]
    out = _out(gallery_conf, src)
    shutil.rmtree(out, ignore_errors=True)
    return [*FEW_STEPS.get(Path(src).stem, ["-n", "2"]), "--out", str(out)]


def png_scraper(block, block_vars, gallery_conf, **kwargs):
    """The PNG files the example wrote, copied to the gallery's image paths, as reST: side by
    side, or one below the other at full width when the example says
    ``# sphinx_gallery_multi_image = "single"``."""
    out = _out(gallery_conf, block_vars["src_file"])
    images = []
    for png, target in zip(
        sorted(out.glob("*.png")), block_vars["image_path_iterator"], strict=False
    ):
        shutil.copyfile(png, target)
        images.append(target)
    if block_vars.get("file_conf", {}).get("multi_image") == "single":
        return "".join(figure_rst([image], gallery_conf["src_dir"]) for image in images)
    return figure_rst(images, gallery_conf["src_dir"])
