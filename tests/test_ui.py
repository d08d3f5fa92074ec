"""The tray app's panel offscreen (QT_QPA_PLATFORM=offscreen), wired to a real bridge over a JACK loopback:
sliders reach the sampling, Suggest fills the list, previews paint the notes, drags carry a .mid of N bars."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

pytest.importorskip("PyQt6.QtWidgets")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6.QtGui import QColor, QImage  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from jack_fixtures import (controls_checkpoint, jack_backend, jack_server, left_sounding, live_checkpoint,  # noqa: E402,F401
                           port_named, wait_connected)
from muse_bridge.commands import Command  # noqa: E402
from muse_bridge.ports import PolledInput, close_output  # noqa: E402
from muse_bridge.settings import BridgeSettings, SettingsChange, SettingsError, read_settings  # noqa: E402
from ui.startup import LaunchOptions  # noqa: E402
from ui.app import TrayApp  # noqa: E402
from ui.panel import Panel  # noqa: E402
from ui.panel_tabs import PREVIEW_SECONDS, ValueSlider  # noqa: E402
from ui.pianoroll import ANSWER_NOTE, CANDIDATE_NOTE, CONTEXT_NOTE, PLAYHEAD, PLAYING_NOTE, PianoRoll, Roll  # noqa: E402
from ui.tray import TrayIcon  # noqa: E402
from engine.music import Note  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def qapp():
    return QApplication.instance() or QApplication([])


def wait_until(condition, what: str, timeout: float = 20.0) -> None:
    """Run the Qt event loop until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        QApplication.processEvents()
        time.sleep(0.01)


def open_app(qapp, checkpoint, tmp_path, monkeypatch) -> TrayApp:
    monkeypatch.setenv("MUSE_BRIDGE_SOCKET", str(tmp_path / "muse.sock"))
    tag = f"{os.getpid()}-{time.monotonic_ns() % 10**6}"
    settings = BridgeSettings().with_changes({
        "ports.api": "jack", "ports.input_name": f"UI In {tag}", "ports.output_name": f"UI Out {tag}",
        "candidates": 3, "bars": 1, "sampling.max_tokens_per_bar": 24, "seed": 4, "fast_step": False,
        "ports.client_name": f"ui-{tag}"})
    options = LaunchOptions(checkpoint=Path(checkpoint.path), device="cpu", settings_path=tmp_path / "settings.json")
    app = TrayApp(qapp, options, settings, use_tray=False).start()
    wait_until(lambda: app.bridge is not None, "the bridge never loaded")
    return app


def running_app(qapp, checkpoint, tmp_path, monkeypatch):
    app = open_app(qapp, checkpoint, tmp_path, monkeypatch)
    yield app
    app.shutdown()
    app.panel.close()


@pytest.fixture
def tray_app(qapp, jack_server, live_checkpoint, tmp_path, monkeypatch):
    yield from running_app(qapp, live_checkpoint, tmp_path, monkeypatch)


@pytest.fixture
def steer_app(qapp, jack_server, controls_checkpoint, tmp_path, monkeypatch):
    """The app with a model that has bar controls."""
    yield from running_app(qapp, controls_checkpoint, tmp_path, monkeypatch)


def play_c_major(app: TrayApp) -> None:
    """C E G C, E G C E as a test keyboard plays them into the bridge's input."""
    backend = jack_backend()
    keys = backend.open_output(port_named(backend.get_output_names(), app.bridge.settings.value.ports.input_name))
    try:
        wait_connected(keys, app.bridge)
        for pitch in (60, 64, 67, 72, 64, 67, 72, 76):
            keys.send(mido.Message("note_on", note=pitch, velocity=90))
            time.sleep(0.03)
            keys.send(mido.Message("note_off", note=pitch))
        assert app.bridge.intake.settle(10)
    finally:
        close_output(keys)


def suggest(app: TrayApp) -> None:
    before = app.bridge.audition.current
    app.command(Command.SUGGEST)
    def shown() -> bool:   # the new candidates in the list, candidate 1 marked as playing (two events: both in)
        current, rows = app.bridge.audition.current, app.panel.candidates
        return (current is not before and current is not None and rows.candidates == list(current.candidates)
                and rows.row_widget(0).number.text().startswith("▶"))
    wait_until(shown, "no candidates came")


def colour_columns(image: QImage, colour: QColor) -> set[int]:
    """The x of every column holding a pixel of `colour`."""
    rgb = colour.rgb()
    return {x for x in range(image.width()) for y in range(image.height()) if image.pixel(x, y) == rgb}


def test_moving_a_slider_changes_the_sampling_the_next_suggestion_uses(tray_app, tmp_path):
    panel = tray_app.panel
    panel.sampling.temperature.slider.setValue(35)
    panel.sampling.top_k.slider.setValue(12)
    wait_until(lambda: tray_app.bridge.settings.value.sampling.top_k == 12, "the sliders never reached the bridge")
    suggest(tray_app)
    assert tray_app.bridge.audition.current.sampling.temperature == pytest.approx(0.35)
    assert tray_app.bridge.audition.current.sampling.top_k == 12
    assert panel.sampling.temperature.text.text() == "0.35"


def test_settings_changed_in_the_panel_are_saved_and_shown_again(tray_app, qapp):
    panel = tray_app.panel
    panel.sampling.bars.setValue(3)
    panel.key.key_scale.setCurrentText("dorian")
    panel.key.key_root.setCurrentText("A")
    panel.key.key_root.activated.emit(panel.key.key_root.currentIndex())   # what a pick from the list sends
    panel.key.range_lo.setValue(48)
    panel.key.range_on.setChecked(True)
    wait_until(lambda: tray_app.bridge.settings.value.sampling.pitch_range == (48, 96), "the range never reached the bridge")
    saved, problems = read_settings(tray_app.options.settings_path)
    assert problems == []
    assert (saved.bars, saved.sampling.key_lock, saved.sampling.pitch_range) == (3, "A dorian", (48, 96))
    fresh = Panel()
    fresh.show_settings(saved)
    assert (fresh.sampling.bars.value(), fresh.key.key_root.currentText(), fresh.key.key_scale.currentText()) == (3, "A", "dorian")
    assert fresh.key.range_on.isChecked() and fresh.key.range_lo.value() == 48


def test_density_polyphony_and_chords_from_the_panel_steer_the_suggestion_and_are_saved(steer_app):
    panel, bridge = steer_app.panel, steer_app.bridge
    assert panel.sampling.density.isEnabled() and panel.key.chords.isEnabled()
    panel.sampling.density.slider.setValue(12)
    panel.sampling.polyphony.slider.setValue(1)
    panel.key.chords.setText("Am F")
    panel.key.chords.editingFinished.emit()
    wait_until(lambda: bridge.settings.value.sampling.chords == ("Am", "F"), "the chords never reached the bridge")
    wait_until(lambda: (panel.sampling.density.text.text(), panel.sampling.polyphony.text.text()) == ("12 notes/bar", "single line"),
               "the panel does not show the settings in force")
    suggest(steer_app)
    sampling = bridge.audition.current.sampling
    assert (sampling.density, sampling.polyphony, sampling.chords) == (12, 1, ("Am", "F"))
    tokenizer = bridge.tokenizer
    for candidate in bridge.audition.current.candidates:
        strings = [tokenizer.token_str(t) for t in candidate.tokens]
        assert strings[2:8] == ["ACBarOnsetPolyphonyMin_1", "ACBarOnsetPolyphonyMax_1", "ACBarPitchClass_0",
                                "ACBarPitchClass_4", "ACBarPitchClass_9", "ACBarNoteDensity_12"]   # Am: A C E
    saved, _ = read_settings(steer_app.options.settings_path)
    assert (saved.sampling.density, saved.sampling.polyphony, saved.sampling.chords) == (12, 1, ("Am", "F"))
    fresh = Panel()
    fresh.show_settings(saved)
    assert (fresh.sampling.density.slider.value(), fresh.sampling.polyphony.slider.value(), fresh.key.chords.text()) == (12, 1, "Am F")
    panel.sampling.density.slider.setValue(0)      # the slider's left end: auto
    wait_until(lambda: bridge.settings.value.sampling.density is None, "auto never reached the bridge")
    assert panel.sampling.density.text.text() == "auto"


def test_chords_from_playing_names_the_chords_of_the_last_bars(steer_app):
    play_c_major(steer_app)
    steer_app.panel.key.chords_from_playing.click()
    wait_until(lambda: steer_app.bridge.settings.value.sampling.chords, "no chords were taken from the playing")
    assert steer_app.bridge.settings.value.sampling.chords[-1] == "C"
    wait_until(lambda: steer_app.panel.key.chords.text().endswith("C"), "the panel does not show the chords")


def test_a_model_without_controls_greys_them_out_and_refuses_them(tray_app):
    assert not tray_app.panel.sampling.density.isEnabled() and "no bar controls" in tray_app.panel.sampling.density.toolTip()
    with pytest.raises(SettingsError, match="no bar controls"):
        tray_app.bridge.changes.request(SettingsChange({"sampling.density": 8}))


def test_suggest_fills_the_list_and_the_previews_paint_context_and_candidate_notes(tray_app):
    play_c_major(tray_app)
    suggest(tray_app)
    panel, suggestion = tray_app.panel, tray_app.bridge.audition.current
    assert panel.candidates.count() == len(suggestion.candidates) == 3
    painted = 0
    for i, candidate in enumerate(suggestion.candidates):
        row = panel.candidates.row_widget(i)
        roll = row.roll.roll
        assert roll.candidate == tuple(candidate.notes)
        image = row.roll.grab().toImage()
        total = (roll.context_bars + roll.candidate_bars) * roll.bar_ticks
        boundary = image.width() * roll.context_bars * roll.bar_ticks / total
        grey = colour_columns(image, CONTEXT_NOTE)
        assert grey and max(grey) < boundary, "the context's notes are not drawn before the boundary"
        colour = PLAYING_NOTE if i == 0 else CANDIDATE_NOTE
        columns = colour_columns(image, colour)
        for note in candidate.notes:   # every note's onset column holds its colour
            x = int(image.width() * (roll.context_bars * roll.bar_ticks + note.start) / total)
            assert columns & {x - 1, x, x + 1}, f"candidate {i + 1}: note at tick {note.start} not painted"
            painted += 1
        assert all(x >= boundary - 1 for x in columns)
    assert painted > 0


def test_answer_mode_from_the_panel_answers_a_pause_and_shows_the_answer_with_a_moving_playhead(tray_app):
    panel, bridge = tray_app.panel, tray_app.bridge
    panel.answer.after.setValue(1)
    panel.answer.on.setChecked(True)
    wait_until(lambda: bridge.settings.value.answer.on and bridge.settings.value.answer.after_beats == 1,
               "the answer settings never reached the bridge")
    saved, _ = read_settings(tray_app.options.settings_path)
    assert saved.answer.on and saved.answer.after_beats == 1
    play_c_major(tray_app)   # then a pause: the answer comes from the next bar line
    wait_until(lambda: panel.answer.roll.isVisible() and panel.answer.roll.playhead is not None,
               "no answer was shown playing", timeout=30)
    roll = panel.answer.roll
    assert roll.roll.candidate == tuple(bridge.player.playback.candidate.notes) and roll.roll.answer
    image = roll.grab().toImage()
    assert colour_columns(image, ANSWER_NOTE), "the answer's notes are not drawn in the answer colour"
    first = min(colour_columns(image, PLAYHEAD))
    time.sleep(0.3)
    wait_until(lambda: min(colour_columns(roll.grab().toImage(), PLAYHEAD), default=-1) > first,
               "the playhead does not move")
    wait_until(lambda: "answer" in panel.details.text(), "the status does not show the answer")
    panel.answer.on.setChecked(False)   # off during the answer: it stops
    wait_until(lambda: bridge.player.playback is None, "turning answer mode off did not stop the answer")
    wait_until(lambda: "cut off" in panel.answer.caption.text(), "the panel did not say the answer stopped")


def test_answered_bars_of_the_context_are_drawn_in_the_answer_colour(qapp):
    bar = 1920
    context = (Note(60, 80, -2 * bar, -2 * bar + 400), Note(64, 80, -bar, -bar + 400))   # 2 bars; the second answered
    widget = PianoRoll(Roll(context, (Note(67, 80, 0, 400),), 2, 1, bar, 4, answered_bars=frozenset({1})))
    widget.resize(300, 80)
    image = widget.grab().toImage()
    third = image.width() / 3
    answered, played = colour_columns(image, ANSWER_NOTE), colour_columns(image, CONTEXT_NOTE)
    assert answered and all(third - 1 <= x < 2 * third for x in answered)
    assert played and all(x < third for x in played)
    tray = TrayIcon()
    assert tray.actions["answer"].isCheckable()
    tray.show_answer_mode(True)
    assert tray.actions["answer"].isChecked()


def test_a_dragged_candidate_is_a_mid_file_of_exactly_n_bars(tray_app):
    tray_app.bridge.changes.request(SettingsChange({"bars": 2}))
    suggest(tray_app)
    candidate = tray_app.bridge.audition.current.candidates[1]
    mime = tray_app.panel.candidates.mime_for(1)
    [url] = mime.urls()
    midi = mido.MidiFile(url.toLocalFile())
    bar = midi.ticks_per_beat * 4
    assert sum(m.time for m in midi.tracks[0]) == 2 * bar
    tick, sounding, notes = 0, {}, []
    for m in midi.tracks[0]:
        tick += m.time
        if m.type == "note_on" and m.velocity > 0:
            sounding[m.note] = tick
        elif m.type in ("note_on", "note_off"):
            notes.append((sounding.pop(m.note), tick))
    assert not sounding and len(notes) == len({(n.pitch, n.start) for n in candidate.notes})
    assert all(0 <= start < end <= 2 * bar for start, end in notes)


def test_clicking_a_candidate_auditions_it(tray_app):
    suggest(tray_app)
    panel = tray_app.panel
    panel.candidates.itemClicked.emit(panel.candidates.item(2))
    wait_until(lambda: tray_app.bridge.audition.index == 2, "the click did not switch candidate")
    wait_until(lambda: panel.candidates.row_widget(2).number.text().startswith("▶"), "row 3 not marked playing")


def test_detect_key_locks_to_what_was_played(tray_app):
    play_c_major(tray_app)
    tray_app.panel.detectKeyRequested.emit()
    wait_until(lambda: tray_app.bridge.settings.value.sampling.key_lock == "C major", "no key was detected")
    wait_until(lambda: tray_app.panel.key.key_root.currentText() == "C", "the panel does not show the key")


def test_a_port_that_cannot_open_is_refused_and_the_old_ports_keep_working(tray_app):
    before = tray_app.bridge.settings.value.ports
    panel = tray_app.panel
    panel.midi.virtual.setChecked(False)
    panel.midi.input_port.setCurrentText("No Such Keyboard")
    panel.midi.apply_ports.click()
    wait_until(lambda: "No Such Keyboard" in panel.status_line.text(), "the refused port was not reported")
    assert tray_app.bridge.settings.value.ports == before
    assert tray_app.bridge.ports.pair.input is not None and tray_app.bridge.ports.pair.output is not None
    wait_until(lambda: panel.midi.virtual.isChecked() and panel.midi.input_port.currentText() == before.input_name,
               "the panel does not show the ports in force")


def test_a_corrupt_style_preset_is_reported_by_name_and_nothing_changes(tray_app, tmp_path):
    bad = tmp_path / "broken_style.pt"
    bad.write_bytes(b"not a style preset")
    tray_app.panel.settingsRequested.emit(SettingsChange({"style": str(bad)}, True))
    wait_until(lambda: "broken_style.pt" in tray_app.panel.status_line.text(), "the bad style was not named")
    assert tray_app.bridge.settings.value.style is None
    assert read_settings(tray_app.options.settings_path)[0].style is None


def test_a_value_out_of_range_is_refused_with_a_message(tray_app):
    tray_app.change_settings(SettingsChange({"sampling.top_p": 0.0}, True))
    assert "top-p" in tray_app.panel.status_line.text()
    assert tray_app.bridge.settings.value.sampling.top_p == 0.95


def test_the_screenshot_shows_a_panel_with_real_candidates(tmp_path):
    png = tmp_path / "panel.png"
    env = dict(os.environ, MUSE_BRIDGE_SETTINGS=str(tmp_path / "settings.json"))
    env.pop("DISPLAY", None)
    run = subprocess.run([sys.executable, "-m", "ui", "--screenshot", str(png)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    image = QImage(str(png))
    assert image.width() >= 400 and image.height() >= 600
    sample = {image.pixel(x, y) for x in range(0, image.width(), 3) for y in range(0, image.height(), 3)}
    assert len(sample) > 50, "the screenshot is nearly blank"
    assert len(colour_columns(image, PLAYING_NOTE)) > 20 and len(colour_columns(image, CANDIDATE_NOTE)) > 20
    fill = QImage(str(tmp_path / "panel_fill.png"))      # the bundled model fills: its Fill tab, a range chosen
    assert run.stdout.split() == [str(png), str(tmp_path / "panel_fill.png")] and fill.height() >= 600
    assert len(colour_columns(fill, PLAYING_NOTE)) > 20


def test_the_app_answers_muse_bridge_command_and_sigterm_leaves_no_note_sounding(jack_server, tmp_path):
    tag = f"{os.getpid()}-term"
    env = dict(os.environ, MUSE_BRIDGE_SETTINGS=str(tmp_path / "settings.json"),
               MUSE_BRIDGE_SOCKET=str(tmp_path / "muse.sock"), QT_QPA_PLATFORM="offscreen")
    log_path = tmp_path / "app.log"     # a file, not a pipe nobody reads: a full pipe would block the app's logging
    with log_path.open("w") as log_file:
        app = subprocess.Popen([sys.executable, "-m", "ui", "-v", "--midi-api", "jack", "--in",
                                f"Term In {tag}", "--out", f"Term Out {tag}", "--bars", "4", "--candidates", "1",
                                "--seed", "2", "--bpm", "240", "--device", "cpu", "--no-fast-step"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=log_file, text=True)
    received: list[mido.Message] = []
    recorder = None
    try:
        # the app's log says when its ports are open: asking JACK for its ports ten times a second would open
        # a JACK client each time, and on a busy machine one of them can fail ("JACK server not running?")
        deadline = time.monotonic() + 60
        while "listening on" not in log_path.read_text():
            assert app.poll() is None and time.monotonic() < deadline, f"the app never opened its ports:\n{log_path.read_text()}"
            time.sleep(0.1)
        backend = jack_backend()
        recorder = PolledInput("UNIX_JACK", port_named(backend.get_input_names(), f"Term Out {tag}"), virtual=False,
                               client_name="term-test-daw", queue_size=65536, callback=lambda m, *_: received.append(m))
        time.sleep(0.3)
        command = subprocess.run([sys.executable, "-m", "ui", "--command", "suggest"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=30)
        assert command.returncode == 0 and command.stdout.strip() == "ok", command.stderr
        deadline = time.monotonic() + 30
        while not any(m.type == "note_on" and m.velocity > 0 for m in received):
            assert time.monotonic() < deadline, f"no candidate note came out; the app's log:\n{log_path.read_text()}"
            time.sleep(0.02)
        app.terminate()                        # SIGTERM mid-candidate: 4 bars at 240 bpm take 4 s
        assert app.wait(timeout=20) == 0
        time.sleep(0.3)
        assert left_sounding(received) == set()
    finally:
        if app.poll() is None:
            app.kill()
        if recorder is not None:
            recorder.close()


def test_muse_bridge_command_without_a_running_app_says_so(tmp_path):
    env = dict(os.environ, MUSE_BRIDGE_SOCKET=str(tmp_path / "nobody.sock"))
    run = subprocess.run([sys.executable, "-m", "ui", "--command", "suggest"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "not running" in run.stderr and "Traceback" not in run.stderr


def test_the_app_starts_without_its_ports_says_so_and_opens_them_when_applied(qapp, jack_server, live_checkpoint,
                                                                               tmp_path, monkeypatch):
    monkeypatch.setenv("MUSE_BRIDGE_SOCKET", str(tmp_path / "muse.sock"))
    tag = f"{os.getpid()}-late"
    settings = BridgeSettings().with_changes({"ports.api": "jack", "ports.virtual": False,
                                              "ports.input_name": f"Late Keys {tag}",
                                              "ports.output_name": f"Late Synth {tag}", "fast_step": False})
    options = LaunchOptions(checkpoint=Path(live_checkpoint.path), device="cpu", settings_path=tmp_path / "s.json")
    app = TrayApp(qapp, options, settings, use_tray=False).start()
    backend = jack_backend()
    keys = synth = None
    try:
        wait_until(lambda: app.bridge is not None, "the bridge never loaded")
        wait_until(lambda: f"Late Keys {tag}" in app.panel.status_line.text(), "the missing port was not named")
        assert not app.bridge.ports.is_open
        keys = backend.open_output(f"Late Keys {tag}", virtual=True, client_name=f"late-keys-{tag}")
        synth = backend.open_input(f"Late Synth {tag}", virtual=True, client_name=f"late-synth-{tag}")
        assert "in: not open" in app.panel.midi.port_state.text()
        app.panel.midi.apply_ports.click()
        wait_until(lambda: app.bridge.ports.is_open, "the ports did not open when applied")
        wait_until(lambda: f"Late Keys {tag}" in app.panel.midi.port_state.text(), "the panel does not show the open ports")
    finally:
        app.shutdown()
        app.panel.close()
        if keys is not None:
            close_output(keys)
        if synth is not None:
            synth.close()


def test_a_dragged_slider_sends_a_few_previews_and_its_final_value_once(qapp):
    slider = ValueSlider(0, 200, 0.01)
    sent = []
    slider.moved.connect(lambda value, done: sent.append((round(value, 2), done)))
    slider.slider.setSliderDown(True)
    started = time.monotonic()
    for step in range(50):                      # 50 steps of a drag, as the mouse moves
        slider.slider.setValue(20 + step)
        QApplication.processEvents()
        time.sleep(0.01)
    slider.set_value(1.5)                       # the settings echoed back meanwhile: the hand wins
    dragged = time.monotonic() - started
    slider.slider.setSliderDown(False)
    finals, previews = [s for s in sent if s[1]], [s for s in sent if not s[1]]
    assert finals == [(0.69, True)] and sent[-1] == finals[0]
    assert 1 <= len(previews) <= dragged / PREVIEW_SECONDS + 1
    slider.slider.setValue(100)                 # a click or a key: final at once
    assert sent[-1] == (1.0, True)


def test_the_fill_tab_chooses_finished_bars_by_dragging_and_asks_to_fill_them(qapp, tmp_path):
    from PyQt6.QtCore import QPoint, Qt
    from PyQt6.QtTest import QTest

    from muse_bridge.events import ContextShown

    panel, asked = Panel(), []
    panel.fillRequested.connect(lambda first, last: asked.append((first, last)))
    notes = tuple(Note(60 + b % 5, 80, b * 1920 + beat * 480, b * 1920 + beat * 480 + 400)
                  for b in range(8) for beat in range(4))
    panel.show_context(ContextShown(notes, first_bar=4, bars=8, finished=11, bar_ticks=1920, beats_per_bar=4))
    panel.tabs.setCurrentWidget(panel.fill)
    panel.set_ready(True)
    panel.show()
    QApplication.processEvents()
    roll = panel.fill.roll
    at = lambda shown_bar: QPoint(int((shown_bar + 0.5) * roll.width() / 8), roll.height() // 2)   # noqa: E731
    assert not panel.fill.fill.isEnabled()
    QTest.mousePress(roll, Qt.MouseButton.LeftButton, pos=at(1))           # context bar 6 (0-based 5)
    QTest.mouseMove(roll, at(6))                                           # dragged over 6 bars: 4 are kept
    QTest.mouseRelease(roll, Qt.MouseButton.LeftButton, pos=at(6))
    assert roll.selection == (5, 8) and panel.fill.label.text() == "bars 6-9"
    QTest.mousePress(roll, Qt.MouseButton.LeftButton, pos=at(7))           # bar 12 is not finished yet
    QTest.mouseRelease(roll, Qt.MouseButton.LeftButton, pos=at(7))
    assert roll.selection == (5, 8)
    panel.grab().save("/tmp/fill_tab.png")
    panel.fill.fill.click()
    assert asked == [(5, 8)]
