"""The tray app: tray icon, panel, hotkey and command channel wired to one LiveBridge.

Nothing here waits: the model loads and the ports open on the loader thread, port lists are read on
a thread, and commands go to the bridge's command thread. Bridge events arrive on the bridge's
threads and are carried onto the Qt thread by a signal.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer, pyqtSignal
from PyQt6.QtGui import QKeySequence, QShortcut
from PyQt6.QtWidgets import QApplication, QSystemTrayIcon

from engine.checkpoint import CheckpointError
from engine.midi_file import bundled_phrase, read_phrase
from engine.music import Note
from muse_bridge.command_socket import CommandSocket, CommandSocketError, send_command
from muse_bridge.commands import Command
from muse_bridge.events import (PLAYING, AnswerComing, AnswerEnded, BridgeStatus, CandidatesReady, ContextShown,
                                Notice, PlayingCandidate, PortsChanged, SettingsChanged, StatusChanged)
from muse_bridge.ports import midi_backend
from muse_bridge.protocol import (ChordsFromPlaying, DetectKey, ExportCandidate, FillBars, LearnTrigger, PlayCandidate,
                                  Request, ShowContext)
from muse_bridge.settings import BridgeSettings, SettingsChange, SettingsError, style_folder
from ui.startup import BridgeLoader, LaunchOptions, launch_settings
from ui.hotkey import GlobalHotkey, HotkeyUnavailable
from ui.options import launch_options
from ui.panel import Panel
from ui.tray import TrayIcon

log = logging.getLogger(__name__)

SHORTCUTS = {"Ctrl+Space": Command.SUGGEST, "Ctrl+Right": Command.NEXT, "Ctrl+Left": Command.PREVIOUS,
             "Ctrl+Return": Command.ACCEPT, "Escape": Command.PANIC}


def hotkey_label(spec: str) -> str:
    """pynput's "<ctrl>+<alt>+s" as people write it: "Ctrl+Alt+S"."""
    return "+".join(part.strip("<>").capitalize() for part in spec.split("+"))


class TrayApp(QObject):
    """Owns the panel, the tray icon, the hotkey and the command channel; the bridge once it is loaded."""

    bridgeEvent = pyqtSignal(object)
    loaded = pyqtSignal(object, list)
    loadFailed = pyqtSignal(str)
    loading = pyqtSignal(str, float)
    portsListed = pyqtSignal(list, list, list)          # inputs, outputs, style presets
    commandArrived = pyqtSignal(object)                 # a Command from the hotkey or the command socket's thread
    appRequested = pyqtSignal(str)                      # "show" or "quit", from the command socket's thread

    def __init__(self, app: QApplication, options: LaunchOptions, settings: BridgeSettings,
                 problems: list[str] = (), use_tray: bool | None = None):
        super().__init__()
        self.app, self.options, self.settings = app, options, settings
        self.bridge = None
        self.panel = Panel()
        self.panel.show_settings(settings)
        use_tray = QSystemTrayIcon.isSystemTrayAvailable() if use_tray is None else use_tray
        self.tray = TrayIcon(hotkey_label(settings.hotkey)) if use_tray else None
        self.hotkey: GlobalHotkey | None = None
        self.channel: CommandSocket | None = None
        self._wire()
        for problem in problems:
            self.notify(Notice(problem, error=True))

    def _wire(self) -> None:
        p = self.panel
        p.commandRequested.connect(self.command)
        p.auditionRequested.connect(lambda i: self.send(PlayCandidate(i)))
        p.settingsRequested.connect(self.change_settings)
        p.learnRequested.connect(lambda c: self.send(LearnTrigger(c)))
        p.detectKeyRequested.connect(lambda: self.send(DetectKey()))
        p.chordsFromPlayingRequested.connect(lambda: self.send(ChordsFromPlaying()))
        p.refreshPortsRequested.connect(self.refresh_ports)
        p.contextRequested.connect(lambda: self.send(ShowContext()))
        p.fillRequested.connect(lambda first, last: self.send(FillBars(first, last)))
        p.exportRequested.connect(lambda i, path: self.send(ExportCandidate(i, Path(path))))
        for keys, command in SHORTCUTS.items():
            QShortcut(QKeySequence(keys), p).activated.connect(lambda c=command: self.command(c))
        if self.tray is not None:
            self.tray.commandRequested.connect(self.command)
            self.tray.showPanelRequested.connect(self.show_panel)
            self.tray.quitRequested.connect(self.app.quit)
            self.tray.set_ready(False)
        self.bridgeEvent.connect(self._on_event)
        self.loaded.connect(self._loaded)
        self.loadFailed.connect(lambda text: self.notify(Notice(f"cannot start: {text}", error=True)))
        self.loading.connect(self._loading)
        self.portsListed.connect(self._ports_listed)
        self.commandArrived.connect(self.command)
        self.appRequested.connect(lambda name: self.app.quit() if name == "quit" else self.show_panel())
        self.app.aboutToQuit.connect(self.shutdown)

    # ---- life cycle ---------------------------------------------------------------------------

    def start(self) -> "TrayApp":
        if self.tray is not None:
            self.tray.show()
        else:
            log.info("no system tray here: the panel is the app's window")
        self.show_panel()
        try:
            self.channel = CommandSocket(self.commandArrived.emit, on_quit=lambda: self.appRequested.emit("quit"),
                                         on_show=lambda: self.appRequested.emit("show")).start()
        except (CommandSocketError, OSError) as e:
            self.notify(Notice(f"command channel not available: {e}", error=True))
        try:
            keys = {self.settings.hotkey: lambda: self.commandArrived.emit(Command.SUGGEST),
                    self.settings.fill_hotkey: lambda: self.commandArrived.emit(Command.FILL)}
            self.hotkey = GlobalHotkey(keys).start()
        except HotkeyUnavailable as e:
            self.notify(Notice(str(e)))
        BridgeLoader(self.options, self.settings, self.loading.emit, self.loaded.emit, self.loadFailed.emit).start()
        return self

    def shutdown(self) -> None:
        """Hotkey and channel down, then the bridge: every note it started gets its note-off."""
        if self.hotkey is not None:
            self.hotkey.stop()
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        if self.tray is not None:
            self.tray.hide()

    def show_panel(self) -> None:
        self.panel.show()
        self.panel.raise_()
        self.panel.activateWindow()

    # ---- loading ----------------------------------------------------------------------------

    def _loading(self, text: str, done: float) -> None:
        self.panel.show_loading(text, done)
        if self.tray is not None:
            self.tray.set_activity(self.tray.activity, text)

    def _loaded(self, bridge, problems: list[str]) -> None:
        self.bridge = bridge
        bridge.events.subscribe(self.bridgeEvent.emit)
        now = bridge.snapshot()
        self.settings = now.settings
        self.panel.show_settings(self.settings)
        if self.tray is not None:
            self.tray.show_answer_mode(self.settings.answer.on)
        self.panel.show_ports(now.ports)
        self.panel.show_controls_available(now.has_controls)
        self.panel.set_ready(True)
        if self.tray is not None:
            self.tray.set_ready(True)
        self.notify(Notice(f"ready: model on {now.device}"))
        if now.ports.input_name is None or now.ports.output_name is None:   # told before this app subscribed
            self.notify(Notice(now.message, error=True))
        for problem in problems:
            self.notify(Notice(problem, error=True))
        self.refresh_ports(self.settings.ports.api)

    # ---- commands and settings ----------------------------------------------------------------

    def command(self, command: Command) -> None:
        self.send(command)

    def send(self, request: Request) -> None:
        """A request to the bridge (muse_bridge/protocol.py), once it is loaded."""
        if self.bridge is None:
            self.notify(Notice("the model is still loading"))
            return
        self.bridge.send(request)

    def change_settings(self, change: SettingsChange) -> None:
        if self.bridge is None:
            return
        try:
            self.bridge.send(change)
        except SettingsError as e:
            self.notify(Notice(str(e), error=True))
            self.panel.show_settings(self.bridge.snapshot().settings)   # the last good values again

    def refresh_ports(self, api: str) -> None:
        """List the API's ports and the style presets on a thread; the panel gets them by signal."""
        folder = style_folder(self.options.settings_path)

        def work() -> None:
            styles = sorted(folder.glob("*.pt")) if folder.is_dir() else []
            try:
                backend = midi_backend(api)
                inputs, outputs = backend.get_input_names(), backend.get_output_names()
            except (OSError, ValueError) as e:
                self.bridgeEvent.emit(Notice(f"MIDI ports of {api!r} not listed: {e}", error=True))
                inputs, outputs = [], []
            self.portsListed.emit(inputs, outputs, styles)
        threading.Thread(target=work, name="muse-port-list", daemon=True).start()

    def _ports_listed(self, inputs: list, outputs: list, styles: list) -> None:
        self.panel.show_available_ports(inputs, outputs)
        self.panel.show_styles(styles)

    # ---- events ----------------------------------------------------------------------------

    def _on_event(self, event) -> None:
        if self.bridge is None:
            return   # delivered after shutdown
        if isinstance(event, StatusChanged):
            self.panel.show_status(event.status)
            if self.tray is not None:
                s = event.status
                self.tray.set_activity(s.activity, f"{s.bpm:.0f} bpm · bar {s.bar}" +
                                       (f" · candidate {s.candidate}/{s.candidates}" if s.candidate else ""))
        elif isinstance(event, CandidatesReady):
            self.panel.show_candidates(event, self.bridge.snapshot().bpm)
        elif isinstance(event, ContextShown):
            self.panel.show_context(event)
        elif isinstance(event, PlayingCandidate):
            self.panel.show_playing(event.index)
        elif isinstance(event, AnswerComing):
            self.panel.show_answer(event)
        elif isinstance(event, AnswerEnded):
            self.panel.answer_ended(event)
        elif isinstance(event, Notice):
            self.notify(event)
        elif isinstance(event, PortsChanged):
            self.panel.show_ports(event)
        elif isinstance(event, SettingsChanged):
            self.settings = event.settings
            self.panel.show_settings(event.settings)
            if self.tray is not None:
                self.tray.show_answer_mode(event.settings.answer.on)

    def notify(self, notice: Notice) -> None:
        """The panel's status line; errors also as a tray notification."""
        self.panel.show_notice(notice)
        if notice.error and self.tray is not None:
            self.tray.showMessage("Muse Bridge", notice.text, QSystemTrayIcon.MessageIcon.Warning, 6000)


def _application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Muse Bridge")
    app.setQuitOnLastWindowClosed(False)
    return app


def _settings_or_exit(options: LaunchOptions) -> tuple[BridgeSettings, list[str]] | None:
    try:
        return launch_settings(options)
    except SettingsError as e:
        print(f"muse-bridge: {e}", file=sys.stderr)
        return None


def run_tray(args: argparse.Namespace) -> int:
    """The tray app until Quit, SIGTERM or `muse-bridge --command quit`."""
    try:   # a second start shows the running app's panel instead
        send_command("show", timeout=1.0)
        print("muse-bridge: already running; its panel is shown", file=sys.stderr)
        return 0
    except CommandSocketError:
        pass
    options = launch_options(args)
    loaded = _settings_or_exit(options)
    if loaded is None:
        return 2
    app = _application()
    # PyQt aborts on an exception a slot lets through; the app logs it and goes on instead
    sys.excepthook = lambda *exc: log.error("unexpected error in the tray app", exc_info=exc)
    tray_app = TrayApp(app, options, *loaded).start()
    if tray_app.tray is None:
        app.setQuitOnLastWindowClosed(True)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: app.quit())
    wake = QTimer()   # lets Python run its signal handlers while Qt's loop sleeps
    wake.timeout.connect(lambda: None)
    wake.start(200)
    code = app.exec()
    tray_app.shutdown()
    return code


def run_screenshot(args: argparse.Namespace) -> int:
    """Render the panel after a real phrase with real candidates from the model, to a PNG."""
    from engine.session import Session
    from ui.startup import choose_device, load_model

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    options = launch_options(args)
    loaded = _settings_or_exit(options)
    if loaded is None:
        return 2
    settings = loaded[0]
    path = Path(args.screenshot)
    try:   # where the picture goes is checked before any model work
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"muse-bridge: cannot write {path}: {e}", file=sys.stderr)
        return 2
    try:
        ckpt = load_model(options.checkpoint, choose_device(options.device), lambda text, done: log.info(text))
        tokenizer = ckpt.tokenizer
        phrase = read_phrase(bundled_phrase(), tokenizer.settings)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"muse-bridge: {e}", file=sys.stderr)
        return 2
    session, tokens = Session.for_phrase(ckpt.model, tokenizer, phrase)
    seed = settings.seed if settings.seed is not None else 7
    suggestion = session.suggest(settings.candidates, settings.bars, settings.sampling, seed)
    first = suggestion.candidates[0]
    context, bars = tokenizer.decode_last_bars(tokens, 2, first.ticks_per_beat, first.time_signature)

    app = _application()
    panel = Panel()
    panel.show_settings(settings)
    panel.show_controls_available(tokenizer.settings.controls)
    panel.set_ready(True)
    panel.show_status(BridgeStatus(bpm=round(phrase.tempo_bpm, 1), clock="internal", bar=phrase.n_bars + 1,
                                   context_tokens=len(tokens), pending_tokens=0,
                                   last_suggest_seconds=suggestion.seconds, device=str(session.device), candidate=1,
                                   candidates=len(suggestion.candidates), playing=True, overflow=0, message="",
                                   activity=PLAYING))
    panel.show_ports(PortsChanged(settings.ports.api, settings.ports.input_name, settings.ports.output_name, True))
    panel.show_candidates(CandidatesReady(suggestion, tuple(context), bars), phrase.tempo_bpm)
    panel.show_playing(0)
    panel.show_notice(Notice(f"{len(suggestion.candidates)} candidates after the bundled phrase "
                             f"({phrase.n_bars} bars) in {suggestion.seconds:.2f} s"))
    panel.show()
    app.processEvents()
    if not panel.grab().save(str(path)):
        print(f"muse-bridge: cannot write {path}", file=sys.stderr)
        return 2
    print(str(path))
    if tokenizer.fill_suffix_id is not None:   # a model that fills: the Fill tab, a range chosen, its fills
        fill_path = path.with_name(f"{path.stem}_fill{path.suffix}")
        show_fill(panel, session, tokens, settings, seed)
        app.processEvents()
        if not panel.grab().save(str(fill_path)):
            print(f"muse-bridge: cannot write {fill_path}", file=sys.stderr)
            return 2
        print(str(fill_path))
    panel.close()
    return 0


def show_fill(panel: Panel, session, tokens: list[int], settings: BridgeSettings, seed: int,
              shown_bars: int = 16, gap: tuple[int, int] = (9, 10)) -> None:
    """The panel with its Fill tab open on the phrase's last `shown_bars` bars, bars `gap` of them (0-based,
    counted from the first shown) chosen, and fills of them in the candidate list."""
    from engine.music import MeterMap

    tokenizer = session.tokenizer
    notes, bars = tokenizer.decode_last_bars(tokens, shown_bars)
    first_shown = tokenizer.count_bars(tokens) - bars
    bar_ticks = MeterMap.constant((4, 4)).bar_ticks()
    span = bars * bar_ticks   # the decoded ticks end at 0: shown from the first bar line
    panel.show_context(ContextShown(tuple(Note(n.pitch, n.velocity, n.start + span, n.end + span) for n in notes),
                                    first_shown, bars, tokenizer.count_bars(tokens) - 1, bar_ticks, 4))
    first, last = first_shown + gap[0], first_shown + gap[1]
    panel.fill.roll.choose(first, last)
    starts = tokenizer.bar_starts(tokens) + [len(tokens)]
    fills = session.fill(settings.candidates, last - first + 1, tokens[:starts[first]],
                         tokens[starts[last + 1]:starts[-1]], settings.sampling, seed)
    c = fills.candidates[0]
    context, context_bars = tokenizer.decode_last_bars(tokens[:starts[first]], 2, c.ticks_per_beat, c.time_signature)
    panel.show_candidates(CandidatesReady(fills, tuple(context), context_bars, fill=(first, last)), 120.0)
    panel.show_playing(0)
    panel.tabs.setCurrentWidget(panel.fill)
    panel.show_notice(Notice(f"{len(fills.candidates)} fills of bars {first + 1}-{last + 1} in {fills.seconds:.2f} s"))
