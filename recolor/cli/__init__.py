"""The `recolor` command line: a thin layer over the Python API.

Each command parses options, builds a config, calls the library and reports with Rich. Heavy modules
(torch, cv2) are imported inside the commands, so `recolor --help` stays instant.

    app.py       the Typer app and what every command shares: console, fail, load_colorizer
    options.py   the options more than one command takes (--model, --device, --render-factor, ...)
    report.py    all the Rich output: progress bars, summaries, tables, the model list
    image.py, video.py, train.py, eval.py, models.py, serve.py: one module per command
"""
from .app import app

# Each module registers its command on `app` when imported; `recolor --help` lists them in this order.
from . import image, video, train, eval, models, serve  # noqa: E402,F401,I001

__all__ = ["app"]
