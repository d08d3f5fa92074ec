"""The panel beside the DAW: status, the commands, the candidate list, and every setting one click away.

Presentation only: it shows what the bridge tells (`show_*`) and asks for changes with signals; the
app (ui/app.py) connects those to the bridge. A change the bridge refuses comes back as the settings
in force, which the widgets then show again.
"""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                             QLineEdit, QProgressBar, QPushButton, QSlider, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from engine.keys import NOTE_NAMES, SCALES
from engine.sampler import MAX_DENSITY, MAX_POLYPHONY
from muse_bridge.controller import Command
from muse_bridge.events import BridgeStatus, CandidatesReady, Notice, PortsChanged
from muse_bridge.ports import MIDI_APIS
from muse_bridge.settings import BridgeSettings
from ui.candidates import CandidateList
from ui.tray import ACTIVITY_COLOURS, ACTIVITY_WORDS

LEARNABLE = (Command.SUGGEST, Command.NEXT, Command.PREVIOUS, Command.ACCEPT, Command.PANIC)
NO_STYLE = "none (the model's own)"
NO_CONTROLS = "this model has no bar controls: density, polyphony and chords need one trained with them"


def density_label(value: float) -> str:
    return "auto" if value == 0 else f"{int(value)} notes/bar"


def polyphony_label(value: float) -> str:
    return "auto" if value == 0 else "single line" if value == 1 else f"≤ {int(value)} at once"


def note_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


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
    """A horizontal slider over integers shown as `label(value)`; emits `moved(value, released)`."""

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
        self.slider.sliderReleased.connect(lambda: self.moved.emit(self.value(), True))

    def value(self) -> float:
        return self.slider.value() * self.scale

    def set_value(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value / self.scale))
        self.slider.blockSignals(False)
        self.text.setText(self.label(self.value()))

    def _changed(self, _raw: int) -> None:
        self.text.setText(self.label(self.value()))
        self.moved.emit(self.value(), not self.slider.isSliderDown())


class Panel(QWidget):
    commandRequested = pyqtSignal(object)              # Command
    auditionRequested = pyqtSignal(int)                # 0-based candidate
    settingsRequested = pyqtSignal(dict, bool)         # changes, persist
    learnRequested = pyqtSignal(str)                   # command name
    detectKeyRequested = pyqtSignal()
    refreshPortsRequested = pyqtSignal(str)            # MIDI API
    exportRequested = pyqtSignal(int, str)             # candidate, path
    chordsFromPlayingRequested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Muse Bridge")
        self.resize(470, 780)
        self.settings = BridgeSettings()
        self._styles: list[Path] = []
        root = QVBoxLayout(self)
        root.setContentsMargins(10, 10, 10, 8)
        root.setSpacing(8)
        root.addLayout(self._build_header())
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        root.addWidget(self.progress)
        root.addLayout(self._build_commands())
        self.candidates = CandidateList()
        self.candidates.setMinimumHeight(230)
        self.candidates.auditionRequested.connect(self.auditionRequested.emit)
        root.addWidget(self.candidates, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_sampling(), "Sampling")
        self.tabs.addTab(self._build_key(), "Key && range")
        self.tabs.addTab(self._build_midi(), "MIDI")
        self.tabs.addTab(self._build_triggers(), "Triggers")
        root.addWidget(self.tabs)
        self.status_line = QLabel("starting…")
        self.status_line.setWordWrap(True)
        root.addWidget(self.status_line)
        self.show_settings(self.settings)
        self.set_ready(False)

    # ---- building ----------------------------------------------------------------------------

    def _build_header(self) -> QGridLayout:
        grid = QGridLayout()
        self.activity = QLabel()
        self.activity.setStyleSheet("font-size: 15px; font-weight: bold;")
        self.tempo = QLabel("– bpm")
        self.tempo.setStyleSheet("font-size: 15px;")
        self.bar = QLabel("bar –")
        self.bar.setStyleSheet("font-size: 15px;")
        self.details = QLabel("")
        self.details.setStyleSheet("color: #8b929c;")
        grid.addWidget(self.activity, 0, 0)
        grid.addWidget(self.tempo, 0, 1, Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.bar, 0, 2, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.details, 1, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        return grid

    def _build_commands(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for text, command, tip in (("Suggest", Command.SUGGEST, "K candidates from the next bar line (Ctrl+Space)"),
                                   ("◀", Command.PREVIOUS, "previous candidate (Ctrl+Left)"),
                                   ("▶", Command.NEXT, "next candidate (Ctrl+Right)"),
                                   ("Accept", Command.ACCEPT, "the candidate joins the context (Ctrl+Return)"),
                                   ("Clear", Command.CLEAR, "forget the context"),
                                   ("Panic", Command.PANIC, "stop; all notes off (Esc)")):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, c=command: self.commandRequested.emit(c))
            row.addWidget(button, 2 if command is Command.SUGGEST else 1)
            self.buttons[command.value] = button
        self.buttons["suggest"].setStyleSheet("QPushButton { font-weight: bold; padding: 6px 14px; }")
        export = QPushButton("Export…")
        export.setToolTip("save the candidate being auditioned as a .mid file (or drag a row out)")
        export.clicked.connect(self._export_clicked)
        row.addWidget(export, 1)
        self.buttons["export"] = export
        return row

    def _build_sampling(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.temperature = ValueSlider(0, 200, 0.01)
        self.temperature.moved.connect(lambda v, done: self.settingsRequested.emit({"sampling.temperature": v}, done))
        self.top_p = ValueSlider(5, 100, 0.01)
        self.top_p.moved.connect(lambda v, done: self.settingsRequested.emit({"sampling.top_p": v}, done))
        self.top_k = ValueSlider(0, 100, 1, label=lambda v: "off" if v == 0 else f"{int(v)}")
        self.top_k.moved.connect(lambda v, done: self.settingsRequested.emit({"sampling.top_k": int(v)}, done))
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Top-k", self.top_k)
        # bar controls: the slider's left end is "auto", the model's own choice
        self.density = ValueSlider(0, MAX_DENSITY, 1, label=density_label)
        self.density.moved.connect(lambda v, done: self.settingsRequested.emit(
            {"sampling.density": int(v) or None}, done))
        self.polyphony = ValueSlider(0, MAX_POLYPHONY, 1, label=polyphony_label)
        self.polyphony.moved.connect(lambda v, done: self.settingsRequested.emit(
            {"sampling.polyphony": int(v) or None}, done))
        form.addRow("Density", self.density)
        form.addRow("Polyphony", self.polyphony)
        counts = QHBoxLayout()
        self.bars = QSpinBox()
        self.bars.setRange(1, 16)
        self.bars.setSuffix(" bars")
        self.bars.valueChanged.connect(lambda v: self.settingsRequested.emit({"bars": v}, True))
        self.count = QSpinBox()
        self.count.setRange(1, 16)
        self.count.setSuffix(" candidates")
        self.count.valueChanged.connect(lambda v: self.settingsRequested.emit({"candidates": v}, True))
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
        return page

    def _build_key(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
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
        played = QPushButton("From playing")
        played.setToolTip("the chords of the last bars you played, one a bar")
        played.clicked.connect(self.chordsFromPlayingRequested.emit)
        chords_row.addWidget(self.chords, 1)
        chords_row.addWidget(played)
        self.chords_from_playing = played
        form.addRow("Chords", chords_row)
        hint = QLabel("Every suggested note stays in the key's scale and the range (a bar's chord wins).")
        hint.setStyleSheet("color: #8b929c;")
        form.addRow(hint)
        return page

    def _build_midi(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
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
        self.port_state.setStyleSheet("color: #8b929c;")
        self.port_state.setWordWrap(True)
        form.addRow(self.port_state)
        return page

    def _build_triggers(self) -> QWidget:
        page = QWidget()
        grid = QGridLayout(page)
        self.trigger_labels: dict[str, QLabel] = {}
        for row, command in enumerate(LEARNABLE):
            grid.addWidget(QLabel(command.value.capitalize()), row, 0)
            label = QLabel("–")
            grid.addWidget(label, row, 1)
            learn = QPushButton("Learn")
            learn.setToolTip(f"then move a control or press a key on your controller to trigger {command.value}")
            learn.clicked.connect(lambda _=False, c=command.value: self._learn(c))
            grid.addWidget(learn, row, 2)
            self.trigger_labels[command.value] = label
        grid.setColumnStretch(1, 1)
        return page

    # ---- what the user asks for --------------------------------------------------------------

    def _export_clicked(self) -> None:
        index = max(self.candidates.currentRow(), 0)
        path, _ = QFileDialog.getSaveFileName(self, "Export candidate", f"muse_candidate_{index + 1}.mid",
                                              "MIDI files (*.mid)")
        if path:
            self.exportRequested.emit(index, path)

    def _style_picked(self, row: int) -> None:
        path = None if row == 0 else str(self._styles[row - 1])
        self.settingsRequested.emit({"style": path}, True)

    def _browse_style(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Style preset", "", "Style presets (*.pt)")
        if path:
            self.settingsRequested.emit({"style": path}, True)

    def _key_picked(self, _row: int = 0) -> None:
        root = self.key_root.currentText()
        self.settingsRequested.emit({"sampling.key_lock": "off" if root == "off"
                                     else f"{root} {self.key_scale.currentText()}"}, True)

    def _chords_edited(self) -> None:
        text = self.chords.text().strip()
        chords = () if text.lower() in ("", "auto") else tuple(text.replace(",", " ").replace("|", " ").split())
        if chords != self.settings.sampling.chords:
            self.settingsRequested.emit({"sampling.chords": chords}, True)

    def _range_changed(self, *_) -> None:
        on = self.range_on.isChecked()
        self.range_lo.setEnabled(on)
        self.range_hi.setEnabled(on)
        self.settingsRequested.emit({"sampling.pitch_range": (self.range_lo.value(), self.range_hi.value())
                                     if on else None}, True)

    def _apply_ports(self) -> None:
        self.settingsRequested.emit({"ports.api": self.api.currentText(),
                                     "ports.input_name": self.input_port.currentText().strip(),
                                     "ports.output_name": self.output_port.currentText().strip(),
                                     "ports.virtual": self.virtual.isChecked(),
                                     "ports.output_channel": self.channel.value() - 1}, True)

    def _learn(self, command: str) -> None:
        self.trigger_labels[command].setText("waiting for a control or key…")
        self.learnRequested.emit(command)

    # ---- what the bridge tells ---------------------------------------------------------------

    def set_ready(self, ready: bool) -> None:
        for button in self.buttons.values():
            button.setEnabled(ready)
        self.tabs.setEnabled(ready)
        self.progress.setVisible(not ready)

    def show_loading(self, text: str, done: float) -> None:
        self.progress.setValue(round(done * 100))
        self.progress.setFormat(text)
        self.status_line.setText(text)

    def show_status(self, s: BridgeStatus) -> None:
        colour = ACTIVITY_COLOURS.get(s.activity, "#8b929c")
        self.activity.setText(f"<span style='color:{colour}'>●</span> {ACTIVITY_WORDS.get(s.activity, s.activity)}")
        self.tempo.setText(f"{s.bpm:.1f} bpm · {s.clock}")
        self.bar.setText(f"bar {s.bar}" if s.bar else "bar –")
        latency = f"{s.last_suggest_seconds:.2f} s" if s.last_suggest_seconds is not None else "–"
        pending = f" (+{s.pending_tokens})" if s.pending_tokens else ""
        dropped = (f" · {s.overflow} dropped" if s.overflow else "") + (
            f" · {s.unsent} unsent (output port gone)" if s.unsent else "")
        self.details.setText(f"context {s.context_tokens} tokens{pending} · last suggestion {latency} · "
                             f"{s.device}{dropped}")

    def show_notice(self, notice: Notice) -> None:
        self.status_line.setStyleSheet("color: #ff6b6b;" if notice.error else "")
        self.status_line.setText(notice.text)

    def show_ports(self, ports: PortsChanged) -> None:
        state = [f"in: {ports.input_name or 'not open'}", f"out: {ports.output_name or 'not open'}",
                 f"{ports.api}, {'virtual' if ports.virtual else 'existing'} ports"]
        self.port_state.setText(" · ".join(state))

    def show_available_ports(self, inputs: list[str], outputs: list[str]) -> None:
        for box, names, current in ((self.input_port, inputs, self.settings.ports.input_name),
                                    (self.output_port, outputs, self.settings.ports.output_name)):
            box.blockSignals(True)
            box.clear()
            box.addItems(sorted(set(names) | {current}))
            box.setCurrentText(current)
            box.blockSignals(False)

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
        """Every widget shows `settings` (the ones in force), without asking for changes."""
        self.settings = settings
        sampling = settings.sampling
        self.temperature.set_value(sampling.temperature)
        self.top_p.set_value(sampling.top_p)
        self.top_k.set_value(sampling.top_k)
        self.density.set_value(sampling.density or 0)
        self.polyphony.set_value(sampling.polyphony or 0)
        self.chords.setText(" ".join(sampling.chords))
        widgets = (self.bars, self.count, self.key_root, self.key_scale, self.range_on, self.range_lo, self.range_hi,
                   self.api, self.virtual, self.channel)
        for w in widgets:
            w.blockSignals(True)
        self.bars.setValue(settings.bars)
        self.count.setValue(settings.candidates)
        key = sampling.key
        self.key_root.setCurrentText("off" if key is None else NOTE_NAMES[key.root])
        self.key_scale.setCurrentText(key.scale if key else "major")
        self.range_on.setChecked(sampling.pitch_range is not None)
        lo, hi = sampling.pitch_range or (36, 96)
        self.range_lo.setValue(lo)
        self.range_hi.setValue(hi)
        self.range_lo.setEnabled(sampling.pitch_range is not None)
        self.range_hi.setEnabled(sampling.pitch_range is not None)
        self.api.setCurrentText(settings.ports.api)
        self.virtual.setChecked(settings.ports.virtual is not False)
        self.channel.setValue(settings.ports.output_channel + 1)
        for w in widgets:
            w.blockSignals(False)
        for box, name in ((self.input_port, settings.ports.input_name), (self.output_port, settings.ports.output_name)):
            if box.findText(name) < 0:
                box.addItem(name)
            box.setCurrentText(name)
        for command, label in self.trigger_labels.items():
            trigger = settings.triggers.get(command)
            label.setText(f"{'CC' if trigger[0] == 'cc' else 'note'} {trigger[1]}, any channel" if trigger else "–")
        self._fill_styles()

    def show_candidates(self, ready: CandidatesReady, bpm: float) -> None:
        self.candidates.show_candidates(ready, bpm)

    def show_playing(self, index: int | None) -> None:
        self.candidates.set_playing(index)

    def show_controls_available(self, available: bool) -> None:
        """Whether the model has bar controls: without them, their widgets are off and say why."""
        for widget in (self.density, self.polyphony, self.chords, self.chords_from_playing):
            help_text = widget.property("help")
            if help_text is None:
                help_text = widget.toolTip()
                widget.setProperty("help", help_text)
            widget.setEnabled(available)
            widget.setToolTip(help_text if available else NO_CONTROLS)

