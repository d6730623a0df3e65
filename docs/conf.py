"""Sphinx configuration of pyrovae's documentation (``make docs``: warnings are errors)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the pyrovae of this checkout
sys.path.insert(0, str(HERE))  # gallery_hooks

project = "pyrovae"
author = "pyrovae developers"
copyright = "pyrovae developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax copied into _static: the maths renders offline
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "sg_execution_times.rst"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"
html_theme = "alabaster"
html_theme_options = {"description": "Variational latent-variable models as Pyro model/guide pairs"}
html_static_path = ["_static"]
html_css_files = ["code.css"]  # long code lines scroll instead of being cut off
smartquotes = False  # keep "--flag" as typed: "–flag" (en-dash) breaks copy-paste

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r"\.py$",  # execute every example
    "within_subsection_order": "FileNameSortKey",
    "reset_argv": "gallery_hooks.reset_argv",  # a few steps each, pictures into a known folder
    "image_scrapers": ("gallery_hooks.png_scraper",),
    "abort_on_example_error": True,
    "download_all_examples": False,
    "show_memory": False,
    "remove_config_comments": True,
}
