"""The run layer: options, run folders and the commands above the inference core.

* :mod:`.options`: the schema, one entry per option (data, model, run; the training options
  are :class:`pyrovae.infer.options.Options`). Adding an option is one field there; see that
  module's docstring.
* :mod:`.config`: a flat config from defaults < config file < flags, checked; the model and
  the data it names (:func:`~.config.build_model`, :func:`~.config.load_data`).
* :mod:`.folder`: :class:`RunFolder`, which owns a run folder's lock, ``config.yaml``,
  ``checkpoint.pt`` and ``metrics.json`` (each read once per command, each written through
  one atomic write); :mod:`.lock` its lock.
* :mod:`.fit`: ``pyrovae.fit``; :mod:`.load`: ``pyrovae.load`` and ``pyrovae.load_config``;
  :mod:`.describe`: the ``config.yaml`` of a model built in Python.

It imports the inference core, the models and the data; nothing below it imports it.
"""

from .fit import fit
from .folder import CHECKPOINT, CONFIG, METRICS, RunFolder
from .load import load, load_config

__all__ = ["CHECKPOINT", "CONFIG", "METRICS", "RunFolder", "fit", "load", "load_config"]
