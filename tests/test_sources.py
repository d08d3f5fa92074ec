"""`prepare --source`: score collections from fetched checkouts (Mutopia's LilyPond, OpenScore Lieder's
MusicXML) converted with their licences checked, and held-out lists that fix each source's split."""
import json
import shutil
from pathlib import Path

import pytest

from conftest import POP909_FILES
from trainer.__main__ import main as trainer_main
from trainer.prepare import read_heldout, split_of
from trainer.sources import Lieder, Mutopia, is_keyboard, licence_kind

COLLECTIONS = Path(__file__).parent / "data" / "collections"
needs_lilypond = pytest.mark.skipif(shutil.which("lilypond") is None or shutil.which("convert-ly") is None,
                                    reason="LilyPond is not installed (apt-get install lilypond)")


@pytest.mark.parametrize("text, kind", [
    ("Public Domain", "Public Domain"),
    ("Creative Commons Attribution 3.0", "CC BY 3.0"),
    ("Creative Commons Attribution 4.0", "CC BY 4.0"),
    ("Creative Commons Attribution-ShareAlike 4.0", None),
    ("cc-by-sa", None),
    ("Creative Commons Attribution-NonCommercial 4.0", None),
    ("CC0 1.0 Universal", "CC0"),
    ("", None),
])
def test_only_public_domain_cc0_and_cc_by_are_allowed(text, kind):
    assert licence_kind(text) == kind


def test_keyboard_music_is_told_from_the_rest():
    assert is_keyboard("Harpsichord, Piano, Clavichord") and is_keyboard("Organ") and is_keyboard("Piano Duet")
    assert not is_keyboard("Voice and Piano") and not is_keyboard("Violin") and not is_keyboard("")


def test_mutopia_lists_keyboard_works_with_their_licence():
    works = {w.path: w for w in Mutopia(COLLECTIONS / "mutopia").works()}
    assert "ftp/TestA/violin/violin.ly" not in works
    aria = works["ftp/BachJS/BWV515/anna-magdalena-20a/anna-magdalena-20a.ly"]
    assert (aria.title, aria.composer, aria.licence) == ("Aria", "BachJS", "Public Domain")
    assert works["ftp/TestA/sharealike/sharealike.ly"].licence.endswith("ShareAlike 4.0")


def test_lieder_works_carry_the_collections_cc0():
    [work] = Lieder(COLLECTIONS / "lieder").works()
    assert work.licence == "CC0" and work.title == "Just for Today"


def test_a_source_that_is_not_there_is_named(tmp_path, capsys):
    code = trainer_main(["prepare", "--source", f"mutopia={tmp_path / 'nowhere'}", "--out", str(tmp_path / "d")])
    assert code == 2 and "nowhere" in capsys.readouterr().err


def test_a_malformed_source_option_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        trainer_main(["prepare", "--source", "mutopia", "--out", str(tmp_path / "d")])
    assert "NAME=PATH" in capsys.readouterr().err


def test_held_out_lists_fix_the_split(tmp_path):
    (tmp_path / "songs.txt").write_text("# held out\na/b.mid\n")
    heldout = read_heldout(tmp_path, "songs")
    assert heldout == {"a/b.mid"} and read_heldout(tmp_path, "other") is None
    assert split_of("a/b.mid", 0.0, heldout) == "val" and split_of("c.mid", 1.0, heldout) == "train"


def test_the_pop909_held_out_list_is_the_split_the_landed_model_never_saw():
    heldout = read_heldout(Path(__file__).parents[1] / "trainer" / "heldout", "pop909")
    assert len(heldout) == 95 and all(split_of(p, 0.1) == "val" for p in heldout)


@needs_lilypond
def test_prepare_converts_every_source_and_reports_what_it_refused_and_skipped(tmp_path, capsys):
    pytest.importorskip("music21")
    pop = tmp_path / "pop"
    pop.mkdir()
    for f in POP909_FILES[:2]:
        shutil.copy(f, pop / f.name)
    out = tmp_path / "data"
    args = ["prepare", "--out", str(out), "--workers", "1", "--source", f"pop={pop}",
            "--source", f"mutopia={COLLECTIONS / 'mutopia'}", "--source", f"lieder={COLLECTIONS / 'lieder'}"]
    assert trainer_main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sources"]["mutopia"] == {"works": 4, "refused": 1, "failed": 1, "files": 2, "val_files": 0,
                                             "tokens": summary["sources"]["mutopia"]["tokens"], "skipped": 0}
    assert summary["sources"]["lieder"]["files"] == 1 and summary["sources"]["pop"]["files"] == 2
    manifest = {s["name"]: s for s in json.loads((out / "manifest.json").read_text())["sources"]}
    assert manifest["mutopia"]["refused"][0]["path"] == "ftp/TestA/sharealike/sharealike.ly"
    assert "ShareAlike" in manifest["mutopia"]["refused"][0]["reason"]
    assert manifest["mutopia"]["failed"][0]["path"] == "ftp/TestA/broken/broken.ly"
    assert manifest["mutopia"]["licences"] == {"Public Domain": 2} and manifest["lieder"]["licences"] == {"CC0": 1}
    index = json.loads((out / "index.json").read_text())
    assert {f["source"] for f in index["files"]} == {"pop", "mutopia", "lieder"}
    assert all(f["path"].startswith(f["source"] + "/") for f in index["files"])
    assert "No CC BY work" in (out / "ATTRIBUTIONS.md").read_text()       # the fixtures are PD and CC0

    converted = {p: p.stat().st_mtime_ns for p in (out / "converted").rglob("*.mid")}
    assert len(converted) == 3
    assert trainer_main(args) == 0          # a second run converts nothing again: the MIDI made is kept
    capsys.readouterr()
    assert {p: p.stat().st_mtime_ns for p in (out / "converted").rglob("*.mid")} == converted


@needs_lilypond
def test_a_piece_folder_with_a_link_to_what_a_partial_checkout_lacks_still_converts(tmp_path, capsys):
    # Mutopia's piece folders link a Makefile from UsefulScripts/, which a partial checkout may not have
    mutopia = tmp_path / "mutopia"
    shutil.copytree(COLLECTIONS / "mutopia", mutopia)
    piece = next((mutopia / "ftp" / "BachJS").rglob("*.ly")).parent
    (piece / "Makefile").symlink_to("../../../../UsefulScripts/Makefile.single_ly")
    out = tmp_path / "data"
    assert trainer_main(["prepare", "--out", str(out), "--workers", "1", "--source", f"mutopia={mutopia}"]) == 0
    summary = json.loads(capsys.readouterr().out)["sources"]["mutopia"]
    assert summary["failed"] == 1 and summary["files"] == 2      # only the broken score fails, as without the link
