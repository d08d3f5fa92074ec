"""`python -m trainer` on bad input: exit status 2 and one line naming the file, folder or option; never a
traceback; nothing half-written; outliers skipped with their reason."""
import json

import mido
import pytest

from fuzz_midi import fuzz_corpus
from trainer.__main__ import main


def trainer(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if " INFO " not in line and " WARNING " not in line
             and not line.startswith("tokenizing")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    assert main(["prepare", "--midi", "tests/data/pop909", "--out", str(out), "--validation-fraction", "0.4",
                 "--workers", "1"]) == 0
    return out


def test_prepare_on_a_missing_folder_names_it(capsys, tmp_path):
    code, err = trainer(capsys, "prepare", "--midi", tmp_path / "nowhere", "--out", tmp_path / "o")
    assert code == 2 and "nowhere: no such folder" in one_line(err)


def test_prepare_with_every_file_skipped_still_writes_the_reasons(capsys, tmp_path):
    (tmp_path / "midi").mkdir()
    (tmp_path / "midi" / "a.mid").write_bytes(b"MThd garbage")
    (tmp_path / "midi" / "b.mid").write_text("lyrics")
    code, err = trainer(capsys, "prepare", "--midi", tmp_path / "midi", "--out", tmp_path / "o", "--workers", "1")
    assert code == 2 and "skipped.json" in one_line(err)
    assert {e["path"] for e in json.loads((tmp_path / "o" / "skipped.json").read_text())} == {"a.mid", "b.mid"}
    assert not (tmp_path / "o" / "index.json").exists()


def test_prepare_skips_a_file_of_mostly_silence_and_says_why(capsys, tmp_path):
    midi = tmp_path / "midi"
    midi.mkdir()
    for name, gap_bars in (("song.mid", 2), ("outlier.mid", 500)):
        mid = mido.MidiFile(ticks_per_beat=480)
        mid.tracks.append(mido.MidiTrack([
            mido.Message("note_on", note=60, velocity=80, time=0), mido.Message("note_off", note=60, time=480),
            mido.Message("note_on", note=64, velocity=80, time=gap_bars * 1920), mido.Message("note_off", note=64, time=480)]))
        mid.save(str(midi / name))
    code, _ = trainer(capsys, "prepare", "--midi", midi, "--out", tmp_path / "o", "--workers", "1")
    assert code == 0
    [skipped] = json.loads((tmp_path / "o" / "skipped.json").read_text())
    assert skipped["path"] == "outlier.mid" and "empty bars in a row" in skipped["reason"]


def test_prepare_on_a_fuzzed_corpus_keeps_the_good_files_and_lists_the_rest(capsys, tmp_path):
    corpus = fuzz_corpus(tmp_path / "midi", seed=3, per_kind=2)
    code, err = trainer(capsys, "prepare", "--midi", tmp_path / "midi", "--out", tmp_path / "o", "--workers", "1")
    assert code == 0, err
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    skipped = json.loads((tmp_path / "o" / "skipped.json").read_text())
    assert len(index["files"]) + len(skipped) == len(corpus)
    assert index["files"] and skipped and all(s["reason"] for s in skipped)


def test_train_without_prepared_data_says_what_to_do(capsys, tmp_path):
    code, err = trainer(capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--size", "micro")
    assert code == 2 and "not a prepared dataset" in one_line(err) and "prepare" in one_line(err)


def test_resuming_from_a_corrupt_or_foreign_training_state_is_refused(capsys, tmp_path, data):
    run = ["train", "--data", data, "--out", tmp_path / "run", "--steps", "1", "--batch-size", "2", "--seq-len", "64",
           "--val-every", "1", "--val-windows", "1"]
    assert trainer(capsys, *run, "--size", "micro")[0] == 0
    code, err = trainer(capsys, *run, "--size", "mini", "--steps", "2", "--resume")
    assert code == 2 and "another run" in one_line(err)
    (tmp_path / "run" / "train_state.pt").write_bytes(b"\x00" * 10)
    code, err = trainer(capsys, *run, "--size", "micro", "--steps", "2", "--resume")
    assert code == 2 and "train_state.pt: not a readable training state" in one_line(err)


@pytest.mark.parametrize("command", [["finetune", "--data", "DATA", "--out", "OUT", "--from"],
                                     ["eval", "--midi", "tests/data/pop909", "--checkpoint"],
                                     ["export", "--out", "OUT", "--checkpoint"]])
def test_a_text_file_given_as_a_checkpoint_is_named(capsys, tmp_path, data, command):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    args = [str(data) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    code, err = trainer(capsys, *args, text)
    assert code == 2 and "notes.pt: not a readable checkpoint" in one_line(err)
