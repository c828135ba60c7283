"""napari-universeg: few-shot segmentation of images and stacks with UniverSeg.

torch is imported lazily, so that napari can start (and read this plugin's manifest) without it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-universeg")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["UniverSeg", "Segmenter", "PredictOptions", "SupportSet", "load_weights", "__version__"]

_LAZY = {
    "UniverSeg": "model",
    "Segmenter": "predict",
    "PredictOptions": "options",
    "SupportSet": "support",
    "load_weights": "weights",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
