"""Live bridge latency over a real JACK loopback, with the bundled model (or --checkpoint).

- note -> state advanced: from the moment the test keyboard sends a note's note-off (the note is
  complete) until the Session's state holds its tokens, and where that time goes: JACK to the bridge's
  input port, input to the live score, the score to the commit (the tokens final), the commit to the
  worker taking them, the model's step. Eighth notes at 120 bpm, 60 ms long.
- suggest -> first note scheduled: from the Suggest request until the Player holds candidate 1 (its
  first bar, streamed), K candidates of N bars (the settings' defaults), after a phrase; and the share
  of suggestions that start on the first bar line after the request (requests at least --lead seconds
  before it). At 120 and 180 bpm; with the PyTorch step, the fast step, and the fast step with
  candidates made in pauses, side by side in one run.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import time

import mido

from bench.results import add_threads_argument, apply_threads, write
from engine.checkpoint import load_checkpoint
from engine.fast_step import FastStep
from muse_bridge.bridge import LiveBridge
from bench.jackd import start_jackd, stop_jackd
from muse_bridge.ports import close_output
from muse_bridge.settings import BridgeSettings

log = logging.getLogger("bench.live")


def percentiles(values: list[float]) -> dict:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, round(q * (len(values) - 1)))]  # noqa: E731
    return {"n": len(values), "p50_ms": round(1000 * pick(0.5), 2), "p99_ms": round(1000 * pick(0.99), 2),
            "max_ms": round(1000 * values[-1], 2)}


def measure_notes(bridge: LiveBridge, keys, notes: int) -> dict:
    """Eighth notes 60 ms long; for each note-off, where the time went until the state held its tokens
    (the worker's feed timings, matched to the note-off by when it reached the bridge)."""
    released = []
    for k in range(notes):
        due = time.monotonic() + 0.19
        keys.send(mido.Message("note_on", note=48 + k % 36, velocity=64 + k % 48))
        time.sleep(0.06)
        released.append(time.monotonic())
        keys.send(mido.Message("note_off", note=48 + k % 36))
        time.sleep(max(0.0, due - time.monotonic()))
    time.sleep(0.5)
    bridge.intake.settle(30)
    timings = sorted((t for t in list(bridge.worker.feed_timings) if t.received_at is not None), key=lambda t: t.received_at)
    stages: dict[str, list[float]] = {k: [] for k in ("note_off_to_state_advanced", "port_to_bridge",
                                                      "input_to_score", "score_to_commit", "commit_to_worker",
                                                      "model_step")}
    for sent in released:
        t = next((t for t in timings if sent <= t.received_at < sent + 0.1), None)
        if t is None:
            continue
        stages["note_off_to_state_advanced"].append(t.fed_at - sent)
        stages["port_to_bridge"].append(t.received_at - sent)
        stages["input_to_score"].append(t.applied_at - t.received_at)
        stages["score_to_commit"].append(t.committed_at - t.applied_at)
        stages["commit_to_worker"].append(t.started_at - t.committed_at)
        stages["model_step"].append(t.fed_at - t.started_at)
    return {"notes": notes, "notes_in_state": len(stages["model_step"]),
            **{name: percentiles(values) for name, values in stages.items() if values}}


def measure_suggest(bridge: LiveBridge, repeats: int, lead: float, rng: random.Random) -> dict:
    """Suggest at a random moment that lies at least `lead` seconds before a bar line, after a pause of
    about a bar (time for candidates made ahead, when that is on): request -> first note scheduled, and
    whether candidate 1 starts on the first bar line after the request."""
    to_first_note, to_candidates, on_time = [], [], []
    bar_seconds = bridge.clock.seconds_per_bar()
    for _ in range(repeats):
        time.sleep(bar_seconds * (1 + rng.random()))
        ahead = bridge.clock.seconds_until(bridge.clock.next_bar_line())
        if ahead < lead:
            time.sleep(ahead + lead * 0.2 + rng.random() * (bar_seconds - 1.2 * lead))   # into the next bar
        expected = bridge.clock.next_bar_line()
        bridge.suggester.suggest()
        if not bridge.suggester.done.wait(120):
            raise RuntimeError("a suggestion took more than 2 minutes")
        to_first_note.append(bridge.suggester.last_first_note_seconds)
        to_candidates.append(bridge.suggester.last_suggest_seconds)
        playing = bridge.player.playback
        on_time.append(playing is not None and (playing.start_tick, playing.cut) == (expected, False))
        bridge.panic()
    return {"suggest_to_first_note_scheduled": percentiles(to_first_note),
            "suggest_to_candidates_ready": percentiles(to_candidates),
            "started_on_the_first_bar_line": round(sum(on_time) / len(on_time), 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--notes", type=int, default=48)
    parser.add_argument("--suggests", type=int, default=10)
    parser.add_argument("--lead", type=float, default=0.25, help="least seconds between a request and its bar line")
    parser.add_argument("--period", type=int, default=64, help="JACK frames per cycle (48 kHz) of the server started here")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    apply_threads(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    load_before = os.getloadavg()  # what else the machine was doing, recorded beside the numbers
    ckpt = load_checkpoint(args.checkpoint)
    fast = FastStep.for_model(ckpt.model)
    rng = random.Random(0)
    runs = []
    server = start_jackd(period=args.period)
    try:
        for bpm in (120.0, 180.0):
            for step, precompute in (("pytorch", False), ("fast", False), ("fast", True)):
                settings = BridgeSettings().with_changes({
                    "ports.api": "jack", "ports.input_name": "Bench In", "ports.output_name": "Bench Out",
                    "clock.bpm": bpm, "precompute": precompute})
                with LiveBridge(ckpt, settings, settings_path=None, client_name="muse-bench") as bridge:
                    bridge.worker.use_fast_step(fast if step == "fast" else None)
                    bridge.worker.wait_idle(60)          # the start-up measurement of the generation rate
                    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
                    [port] = [n for n in backend.get_output_names() if n.endswith(":Bench In")]
                    keys = backend.open_output(port)
                    try:
                        notes = measure_notes(bridge, keys, args.notes)
                        suggest = measure_suggest(bridge, args.suggests, args.lead, rng)
                    finally:
                        close_output(keys)
                    row = {"bpm": bpm, "step": step, "candidates_made_in_pauses": precompute,
                           "context_tokens_at_end": bridge.status.now().context_tokens, **notes, **suggest}
                log.info("%s", row)
                runs.append(row)
    finally:
        stop_jackd(server)
    path = write("live", {
        "checkpoint": ckpt.path, "model": ckpt.model.cfg.to_dict(), "device": str(next(ckpt.model.parameters()).device),
        "transport": f"JACK dummy driver, 48 kHz, {args.period}-frame periods requested, internal clock (no MIDI clock)",
        "candidates": settings.candidates, "bars": settings.bars,
        "max_tokens_per_bar": settings.sampling.max_tokens_per_bar, "request_lead_seconds_at_least": args.lead,
        "runs": runs, "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
    })
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
