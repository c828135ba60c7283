"""The forms of the dock widget: which layers to use, and the settings of a run (PredictOptions)."""

from __future__ import annotations

from napari.layers import Image, Labels
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLineEdit, QSpinBox

from ._layers import OUTPUT_SUFFIX
from .options import DEVICES, MAX_ENSEMBLE, MAX_SUPPORT_SIZE, METHODS, MODES, TASKS, PredictOptions, parse_int_list

CONTROLS = (  # the attributes, also exposed by the widget
    "task",
    "support_size",
    "ensemble",
    "threshold",
    "classes",
    "method",
    "mode",
    "scale",
    "device",
    "probability_check",
    "fill_painted_check",
    "live_check",
    "adapt",
)
ADAPT_CHOICES = {"auto: from 2 examples": None, "always": True, "never": False}  # PredictOptions.adapt


class LayerChoice(QFormLayout):
    """The image and painted labels layers to use, and the channel of an RGB image."""

    def __init__(self) -> None:
        super().__init__()
        self.image_combo, self.labels_combo, self.channel_combo = QComboBox(), QComboBox(), QComboBox()
        self.channel_combo.addItems(["luminance", "0 (red)", "1 (green)", "2 (blue)"])
        self.addRow("image", self.image_combo)
        self.addRow("painted labels", self.labels_combo)
        self.addRow("RGB channel", self.channel_combo)

    def refresh(self, layers) -> None:
        """List the Image and Labels layers of ``layers`` (a napari LayerList) but the plugin's
        output layers, keeping the choices."""
        for combo, kind in ((self.image_combo, Image), (self.labels_combo, Labels)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            names = [layer.name for layer in layers if isinstance(layer, kind) and not layer.name.endswith(OUTPUT_SUFFIX)]
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)

    def channel(self) -> int | None:
        """The RGB channel to segment (0, 1, 2), or None for the luminance."""
        i = self.channel_combo.currentIndex()
        return None if i == 0 else i - 1


class SettingsBox(QGroupBox):
    """The run settings; ``options()`` gives them as PredictOptions."""

    def __init__(self) -> None:
        super().__init__("settings")
        defaults = PredictOptions()
        self.task = QComboBox()
        self.task.addItems(list(TASKS))
        self.task.setToolTip(
            "classes: each painted label value is a class; instances: each value is one object (paint each with a new label), "
            "and every object of the result gets its own value. Guessed from your examples until you choose."
        )
        self.support_size = QSpinBox(minimum=1, maximum=MAX_SUPPORT_SIZE, value=defaults.support_size)
        self.ensemble = QSpinBox(minimum=1, maximum=MAX_ENSEMBLE, value=defaults.ensemble)
        self.threshold = QDoubleSpinBox(minimum=0.01, maximum=0.99, singleStep=0.05, value=defaults.threshold)
        self.classes = QLineEdit(placeholderText="all (e.g. 1,2)")
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.method = QComboBox()
        self.method.addItems(["auto", *METHODS])
        self.method.setToolTip(
            "who predicts: UniverSeg, a pixel classifier (random forest, as in ilastik), their blend, "
            "or auto: whichever predicts your examples best from the others (with mode auto)"
        )
        self.scale = QDoubleSpinBox(minimum=0.0, maximum=4.0, singleStep=0.05, value=0.0, specialValueText="auto")
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.probability_check = QCheckBox("also show probabilities")
        self.fill_painted_check = QCheckBox("write into unpainted slices of the painted layer")
        self.live_check = QCheckBox("live: segment each slice I move to")
        self.adapt = QComboBox()
        self.adapt.addItems(list(ADAPT_CHOICES))
        self.adapt.setCurrentIndex(list(ADAPT_CHOICES.values()).index(defaults.adapt))
        self.adapt.setToolTip(
            "fine-tune a copy of UniverSeg on your examples (one class at a time), in the background while you paint; "
            "each accepted example continues it, about 15 s on a laptop CPU. auto: from 2 examples (one overfits)"
        )
        form = QFormLayout(self)
        for label, w in (
            ("task", self.task),
            ("max support size", self.support_size),
            ("ensemble", self.ensemble),
            ("threshold", self.threshold),
            ("classes", self.classes),
            ("predictor", self.method),
            ("mode", self.mode),
            ("tiled scale", self.scale),
            ("device", self.device),
            ("learn from examples", self.adapt),
        ):
            form.addRow(label, w)
        for w in (self.probability_check, self.fill_painted_check, self.live_check):
            form.addRow(w)

    def options(self) -> PredictOptions:
        """The settings as PredictOptions, validated; a ValueError naming a bad one."""
        text = self.classes.text().strip()
        options = PredictOptions(
            task=self.task.currentText(),
            support_size=self.support_size.value(),
            ensemble=self.ensemble.value(),
            threshold=self.threshold.value(),
            classes=parse_int_list(text, "classes") if text and text != "all" and self.task.currentText() == "classes" else None,
            mode=self.mode.currentText(),
            scale=self.scale.value() or None,
            method=self.method.currentText(),
            adapt=ADAPT_CHOICES[self.adapt.currentText()],
        )
        options.validate()
        return options
