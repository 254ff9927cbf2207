"""recolor: bring black-and-white photos and film back to colour.

The public API is imported lazily (PEP 562) so that `import recolor` and `recolor --help` stay instant:
torch and OpenCV load only when a name below is first used.
"""
__version__ = "0.1.0"

_EXPORTS = {
    "Colorizer": "engine",
    "colorize_image": "engine",
    "Hint": "hints",
    "create_model": "model",
    "ModelConfig": "model",
    "load_model": "weights",
    "save_weights": "weights",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'recolor' has no attribute {name!r}")
