"""The panel's tabs, one class each: Sampling, Key & range (with chords), MIDI and Triggers.

Each tab shows the settings in force (`show(settings)`, without asking for changes) and asks for changes
with `settingsRequested(changes, persist)`; the panel passes them on as one SettingsChange.
"""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                             QLineEdit, QPushButton, QSlider, QSpinBox, QWidget)

from engine.chords import split_chords
from engine.keys import NOTE_NAMES, SCALES
from engine.sampler import MAX_DENSITY, MAX_POLYPHONY
from muse_bridge.commands import Command
from muse_bridge.ports import MIDI_APIS
from muse_bridge.settings import MAX_BARS, MAX_CANDIDATES, BridgeSettings
from muse_bridge.protocol import Setting
from ui.theme import HINT

LEARNABLE = (Command.SUGGEST, Command.NEXT, Command.PREVIOUS, Command.ACCEPT, Command.PANIC, Command.ANSWER,
             Command.FILL)
NO_STYLE = "none (the model's own)"
PREVIEW_SECONDS = 0.15   # a dragged slider sends its value at most this often; the final value when let go
NO_CONTROLS = "this model has no bar controls: density, polyphony and chords need one trained with them"


def note_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def density_label(value: float) -> str:
    return "auto" if value == 0 else f"{int(value)} notes/bar"


def polyphony_label(value: float) -> str:
    return "auto" if value == 0 else "single line" if value == 1 else f"≤ {int(value)} at once"


def show_controls_available(widgets: list[QWidget], available: bool) -> None:
    """Bar-control widgets on, or off saying why (their own tooltips come back when they are on again)."""
    for widget in widgets:
        help_text = widget.property("help")
        if help_text is None:
            help_text = widget.toolTip()
            widget.setProperty("help", help_text)
        widget.setEnabled(available)
        widget.setToolTip(help_text if available else NO_CONTROLS)


class NoteSpinBox(QSpinBox):
    """A MIDI pitch shown with its name: 60 is 'C4 (60)'."""

    def __init__(self, value: int):
        super().__init__()
        self.setRange(0, 127)
        self.setValue(value)

    def textFromValue(self, value: int) -> str:
        return f"{note_name(value)} ({value})"

    def valueFromText(self, text: str) -> int:
        digits = text.rsplit("(", 1)[-1].rstrip(")")
        return int(digits) if digits.isdigit() else self.value()


class ValueSlider(QWidget):
    """A horizontal slider over integers shown as `label(value)`; emits `moved(value, released)`: while it is dragged,
    a preview at most every PREVIEW_SECONDS (the latest value), then the final value once, when it is let go."""

    moved = pyqtSignal(float, bool)

    def __init__(self, lo: int, hi: int, scale: float, label=lambda v: f"{v:.2f}"):
        super().__init__()
        self.scale, self.label = scale, label
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(lo, hi)
        self.text = QLabel()
        self.text.setMinimumWidth(40)
        self.text.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.text)
        self.slider.valueChanged.connect(self._changed)
        self.slider.sliderReleased.connect(self._released)
        self._preview = QTimer(self)
        self._preview.setSingleShot(True)
        self._preview.setInterval(round(PREVIEW_SECONDS * 1000))
        self._preview.timeout.connect(lambda: self.moved.emit(self.value(), False))

    def value(self) -> float:
        return self.slider.value() * self.scale

    def set_value(self, value: float) -> None:
        if self.slider.isSliderDown():
            return   # being dragged: the composer's hand wins over the settings echoed back
        self.slider.blockSignals(True)
        self.slider.setValue(round(value / self.scale))
        self.slider.blockSignals(False)
        self.text.setText(self.label(self.value()))

    def _changed(self, _raw: int) -> None:
        self.text.setText(self.label(self.value()))
        if not self.slider.isSliderDown():
            self.moved.emit(self.value(), True)    # a click or a key: final at once
        elif not self._preview.isActive():
            self._preview.start()                  # dragged: the value then, if it is still down

    def _released(self) -> None:
        self._preview.stop()
        self.moved.emit(self.value(), True)


class SamplingTab(QWidget):
    """Temperature, top-p, top-k, the song memory, density and polyphony; bars and candidates; the style preset."""

    settingsRequested = pyqtSignal(dict, bool)

    def __init__(self):
        super().__init__()
        self.settings = BridgeSettings()
        self._styles: list[Path] = []
        form = QFormLayout(self)
        ask = self.settingsRequested.emit
        self.temperature = ValueSlider(0, 200, 0.01)
        self.temperature.moved.connect(lambda v, done: ask({Setting.TEMPERATURE: v}, done))
        self.top_p = ValueSlider(5, 100, 0.01)
        self.top_p.moved.connect(lambda v, done: ask({Setting.TOP_P: v}, done))
        self.top_k = ValueSlider(0, 100, 1, label=lambda v: "off" if v == 0 else f"{int(v)}")
        self.top_k.moved.connect(lambda v, done: ask({Setting.TOP_K: int(v)}, done))
        self.memory = ValueSlider(0, 100, 0.01, label=lambda v: "off" if v == 0 else f"{v:.2f}")
        self.memory.setToolTip("how strongly candidates follow what came after the same notes earlier in the song")
        self.memory.moved.connect(lambda v, done: ask({Setting.MEMORY: v}, done))
        # bar controls: the slider's left end is "auto", the model's own choice
        self.density = ValueSlider(0, MAX_DENSITY, 1, label=density_label)
        self.density.moved.connect(lambda v, done: ask({Setting.DENSITY: int(v) or None}, done))
        self.polyphony = ValueSlider(0, MAX_POLYPHONY, 1, label=polyphony_label)
        self.polyphony.moved.connect(lambda v, done: ask({Setting.POLYPHONY: int(v) or None}, done))
        for label, widget in (("Temperature", self.temperature), ("Top-p", self.top_p), ("Top-k", self.top_k),
                              ("Song memory", self.memory), ("Density", self.density), ("Polyphony", self.polyphony)):
            form.addRow(label, widget)
        counts = QHBoxLayout()
        self.bars = QSpinBox()
        self.bars.setRange(1, MAX_BARS)
        self.bars.setSuffix(" bars")
        self.bars.valueChanged.connect(lambda v: ask({Setting.BARS: v}, True))
        self.count = QSpinBox()
        self.count.setRange(1, MAX_CANDIDATES)
        self.count.setSuffix(" candidates")
        self.count.valueChanged.connect(lambda v: ask({Setting.CANDIDATES: v}, True))
        counts.addWidget(self.bars)
        counts.addWidget(self.count)
        form.addRow("Length", counts)
        style_row = QHBoxLayout()
        self.style = QComboBox()
        self.style.setToolTip("style presets made by `python -m trainer finetune --mode state`")
        self.style.activated.connect(self._style_picked)
        browse = QPushButton("Open…")
        browse.clicked.connect(self._browse_style)
        style_row.addWidget(self.style, 1)
        style_row.addWidget(browse)
        form.addRow("Style", style_row)

    def _style_picked(self, row: int) -> None:
        path = None if row == 0 else str(self._styles[row - 1])
        self.settingsRequested.emit({Setting.STYLE: path}, True)

    def _browse_style(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Style preset", "", "Style presets (*.pt)")
        if path:
            self.settingsRequested.emit({Setting.STYLE: path}, True)

    def show_styles(self, presets: list[Path]) -> None:
        self._styles = sorted(presets)
        self._fill_styles()

    def _fill_styles(self) -> None:
        current = self.settings.style
        styles = self._styles + ([Path(current)] if current and Path(current) not in self._styles else [])
        self._styles = styles
        self.style.blockSignals(True)
        self.style.clear()
        self.style.addItems([NO_STYLE] + [p.stem for p in styles])
        self.style.setCurrentIndex(styles.index(Path(current)) + 1 if current else 0)
        self.style.blockSignals(False)

    def show_settings(self, settings: BridgeSettings) -> None:
        self.settings, sampling = settings, settings.sampling
        self.temperature.set_value(sampling.temperature)
        self.top_p.set_value(sampling.top_p)
        self.top_k.set_value(sampling.top_k)
        self.memory.set_value(sampling.memory)
        self.density.set_value(sampling.density or 0)
        self.polyphony.set_value(sampling.polyphony or 0)
        for box, value in ((self.bars, settings.bars), (self.count, settings.candidates)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self._fill_styles()


class KeyTab(QWidget):
    """The key lock (and Detect), the pitch range, and the chords of the next bars (and From playing)."""

    settingsRequested = pyqtSignal(dict, bool)
    detectKeyRequested = pyqtSignal()
    chordsFromPlayingRequested = pyqtSignal()

    def __init__(self):
        super().__init__()
        self.settings = BridgeSettings()
        form = QFormLayout(self)
        key_row = QHBoxLayout()
        self.key_root = QComboBox()
        self.key_root.addItems(["off", *NOTE_NAMES])
        self.key_scale = QComboBox()
        self.key_scale.addItems(list(SCALES))
        for box in (self.key_root, self.key_scale):
            box.activated.connect(self._key_picked)
        detect = QPushButton("Detect")
        detect.setToolTip("estimate the key of what you played and lock to it")
        detect.clicked.connect(self.detectKeyRequested.emit)
        key_row.addWidget(self.key_root)
        key_row.addWidget(self.key_scale, 1)
        key_row.addWidget(detect)
        form.addRow("Key lock", key_row)
        range_row = QHBoxLayout()
        self.range_on = QCheckBox("limit to")
        self.range_lo, self.range_hi = NoteSpinBox(36), NoteSpinBox(96)
        for w in (self.range_on, self.range_lo, self.range_hi):
            (w.toggled if w is self.range_on else w.valueChanged).connect(self._range_changed)
        range_row.addWidget(self.range_on)
        range_row.addWidget(self.range_lo)
        range_row.addWidget(QLabel("–"))
        range_row.addWidget(self.range_hi)
        range_row.addStretch(1)
        form.addRow("Pitch range", range_row)
        chords_row = QHBoxLayout()
        self.chords = QLineEdit()
        self.chords.setPlaceholderText("auto, or one chord a bar: C Am F G")
        self.chords.setToolTip("one chord per bar of the suggestion, cycling: C, Am, G7, Fmaj7, Dm7, Bdim, Dsus4, C/E …")
        self.chords.editingFinished.connect(self._chords_edited)
        self.chords_from_playing = QPushButton("From playing")
        self.chords_from_playing.setToolTip("the chords of the last bars you played, one a bar")
        self.chords_from_playing.clicked.connect(self.chordsFromPlayingRequested.emit)
        chords_row.addWidget(self.chords, 1)
        chords_row.addWidget(self.chords_from_playing)
        form.addRow("Chords", chords_row)
        hint = QLabel("Every suggested note stays in the key's scale and the range (a bar's chord wins).")
        hint.setStyleSheet(f"color: {HINT};")
        form.addRow(hint)

    def _key_picked(self, _row: int = 0) -> None:
        root = self.key_root.currentText()
        self.settingsRequested.emit({Setting.KEY_LOCK: "off" if root == "off"
                                     else f"{root} {self.key_scale.currentText()}"}, True)

    def _range_changed(self, *_) -> None:
        on = self.range_on.isChecked()
        self.range_lo.setEnabled(on)
        self.range_hi.setEnabled(on)
        self.settingsRequested.emit({Setting.PITCH_RANGE: (self.range_lo.value(), self.range_hi.value())
                                     if on else None}, True)

    def _chords_edited(self) -> None:
        text = self.chords.text().strip()
        chords = () if text.lower() == "auto" else split_chords(text)   # checked by the bridge, which names a bad one
        if chords != self.settings.sampling.chords:
            self.settingsRequested.emit({Setting.CHORDS: chords}, True)

    def show_settings(self, settings: BridgeSettings) -> None:
        self.settings, sampling = settings, settings.sampling
        widgets = (self.key_root, self.key_scale, self.range_on, self.range_lo, self.range_hi)
        for w in widgets:
            w.blockSignals(True)
        key = sampling.key
        self.key_root.setCurrentText("off" if key is None else NOTE_NAMES[key.root])
        self.key_scale.setCurrentText(key.scale if key else "major")
        self.range_on.setChecked(sampling.pitch_range is not None)
        lo, hi = sampling.pitch_range or (36, 96)
        self.range_lo.setValue(lo)
        self.range_hi.setValue(hi)
        self.range_lo.setEnabled(sampling.pitch_range is not None)
        self.range_hi.setEnabled(sampling.pitch_range is not None)
        for w in widgets:
            w.blockSignals(False)
        self.chords.setText(" ".join(sampling.chords))


class MidiTab(QWidget):
    """The MIDI API, the ports (virtual or existing), the output channel, and which ports are open."""

    settingsRequested = pyqtSignal(dict, bool)
    refreshPortsRequested = pyqtSignal(str)            # MIDI API

    def __init__(self):
        super().__init__()
        self.settings = BridgeSettings()
        form = QFormLayout(self)
        self.api = QComboBox()
        self.api.addItems(list(MIDI_APIS))
        self.api.activated.connect(lambda _: self.refreshPortsRequested.emit(self.api.currentText()))
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(lambda: self.refreshPortsRequested.emit(self.api.currentText()))
        api_row = QHBoxLayout()
        api_row.addWidget(self.api, 1)
        api_row.addWidget(refresh)
        form.addRow("MIDI API", api_row)
        self.virtual = QCheckBox("create virtual ports (else open existing ones by name)")
        self.virtual.setTristate(False)
        form.addRow(self.virtual)
        self.input_port, self.output_port = QComboBox(), QComboBox()
        for box in (self.input_port, self.output_port):
            box.setEditable(True)
        form.addRow("Input", self.input_port)
        form.addRow("Output", self.output_port)
        self.channel = QSpinBox()
        self.channel.setRange(1, 16)
        self.channel.setPrefix("channel ")
        self.apply_ports = QPushButton("Apply ports")
        self.apply_ports.setToolTip("open these ports; if they cannot be opened, the ones in use stay")
        self.apply_ports.clicked.connect(self._apply_ports)
        row = QHBoxLayout()
        row.addWidget(self.channel)
        row.addStretch(1)
        row.addWidget(self.apply_ports)
        form.addRow("Plays on", row)
        self.port_state = QLabel("")
        self.port_state.setStyleSheet(f"color: {HINT};")
        self.port_state.setWordWrap(True)
        form.addRow(self.port_state)

    def _apply_ports(self) -> None:
        self.settingsRequested.emit({Setting.PORTS_API: self.api.currentText(),
                                     Setting.PORTS_INPUT: self.input_port.currentText().strip(),
                                     Setting.PORTS_OUTPUT: self.output_port.currentText().strip(),
                                     Setting.PORTS_VIRTUAL: self.virtual.isChecked(),
                                     Setting.PORTS_CHANNEL: self.channel.value() - 1}, True)

    def show_available_ports(self, inputs: list[str], outputs: list[str]) -> None:
        for box, names, current in ((self.input_port, inputs, self.settings.ports.input_name),
                                    (self.output_port, outputs, self.settings.ports.output_name)):
            box.blockSignals(True)
            box.clear()
            box.addItems(sorted(set(names) | {current}))
            box.setCurrentText(current)
            box.blockSignals(False)

    def show_settings(self, settings: BridgeSettings) -> None:
        self.settings, ports = settings, settings.ports
        for w in (self.api, self.virtual, self.channel):
            w.blockSignals(True)
        self.api.setCurrentText(ports.api)
        self.virtual.setChecked(ports.virtual is not False)
        self.channel.setValue(ports.output_channel + 1)
        for w in (self.api, self.virtual, self.channel):
            w.blockSignals(False)
        for box, name in ((self.input_port, ports.input_name), (self.output_port, ports.output_name)):
            if box.findText(name) < 0:
                box.addItem(name)
            box.setCurrentText(name)


class TriggersTab(QWidget):
    """The MIDI control or key bound to each command, and a Learn button for each."""

    learnRequested = pyqtSignal(object)                # Command

    def __init__(self):
        super().__init__()
        grid = QGridLayout(self)
        self.labels: dict[str, QLabel] = {}
        for row, command in enumerate(LEARNABLE):
            grid.addWidget(QLabel(command.value.capitalize()), row, 0)
            label = QLabel("–")
            grid.addWidget(label, row, 1)
            learn = QPushButton("Learn")
            learn.setToolTip(f"then move a control or press a key on your controller to trigger {command.value}")
            learn.clicked.connect(lambda _=False, c=command: self._learn(c))
            grid.addWidget(learn, row, 2)
            self.labels[command.value] = label
        grid.setColumnStretch(1, 1)

    def _learn(self, command: Command) -> None:
        self.labels[command.value].setText("waiting for a control or key…")
        self.learnRequested.emit(command)

    def show_settings(self, settings: BridgeSettings) -> None:
        for command, label in self.labels.items():
            trigger = settings.triggers.get(command)
            label.setText(f"{'CC' if trigger[0] == 'cc' else 'note'} {trigger[1]}, any channel" if trigger else "–")
