"""Score collections as MIDI for `prepare`: a folder of MIDI files, the Mutopia Project (LilyPond) and
OpenScore Lieder (MusicXML), each from a fetched checkout.

A source lists its works with their licence; only Public Domain, CC0 and CC-BY works are converted (the
others are refused with their licence named). Conversions are cached under the dataset's `converted/`
folder, so a second `prepare` converts only what is new, and a file that fails to convert is skipped with
its reason, never the run. LilyPond is a system program (`lilypond`, `convert-ly`); MusicXML is read by
music21 (the `[data]` extra).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


KEYBOARDS = {"piano", "harpsichord", "clavichord", "clavier", "organ", "fortepiano", "pianoforte", "virginal",
             "virginals", "spinet", "keyboard", "cembalo", "piano duet", "piano four hands", "piano 4 hands"}
CONVERT_TIMEOUT_S = 120
MIDI_SUFFIXES = {".mid", ".midi"}


class SourceError(ValueError):
    """A source that cannot be read at all (a missing checkout or converter), named with what to do."""


@dataclass(frozen=True)
class Work:
    """One score of a collection: where it is in the checkout, who wrote it and under which licence."""

    path: str            # the score's path in the checkout
    title: str
    composer: str
    licence: str         # as the collection states it
    instrument: str = ""


@dataclass(frozen=True)
class Converted:
    """What converting one work gave: its MIDI files (relative to the source's MIDI folder), or why none."""

    work: Work
    midi: tuple[str, ...] = ()
    problem: str = ""


def licence_kind(text: str) -> str | None:
    """'Public Domain', 'CC0' or 'CC BY <version>' for a licence that allows training and shipping with an
    attribution list; None for any other (ShareAlike, NonCommercial, none stated)."""
    t = text.strip().lower().replace("-", " ")
    if t in ("public domain", "publicdomain"):
        return "Public Domain"
    if "cc0" in t or "zero" in t and "creative commons" in t:
        return "CC0"
    if ("creative commons attribution" in t or t.startswith("cc by")) and not any(
            w in t for w in ("sharealike", "share alike", " sa", "noncommercial", "non commercial", " nc", "noderiv")):
        version = re.search(r"\d\.\d", t)
        return f"CC BY {version.group(0)}" if version else "CC BY"
    return None


def checkout_commit(root: Path) -> str | None:
    """The commit a fetched checkout is at (None where it is not a git checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class Source:
    """A collection: its works, and how one becomes MIDI files."""

    name = ""
    url = ""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"{self.name}: {root} is not a folder (fetch a checkout of {self.url} first)")

    def works(self) -> list[Work]:
        raise NotImplementedError

    def allows(self, work: Work) -> bool:
        """Whether the work's licence lets us train on it and ship the model (with attributions)."""
        return licence_kind(work.licence) is not None

    def convert(self, work: Work, out_dir: Path) -> Converted:
        """MIDI files of `work` in out_dir (made now, or by an earlier run)."""
        raise NotImplementedError


class MidiFolder(Source):
    """A folder of MIDI files, used as they are (POP909: MIT, see its LICENSE)."""

    name = "midi"

    def __init__(self, root: Path, name: str = "midi", licence: str = "as its folder states"):
        super().__init__(root)
        self.name, self.licence = name, licence
        self.midi_dir = self.root

    def allows(self, work: Work) -> bool:
        return True      # a folder you give is yours to train on; its licence is recorded in the manifest

    def works(self) -> list[Work]:
        return [Work(str(p.relative_to(self.root)), p.stem, "", self.licence) for p in find_midi_files(self.root)]

    def convert(self, work: Work, out_dir: Path) -> Converted:
        return Converted(work, (work.path,))


class Mutopia(Source):
    """The Mutopia Project's LilyPond sources: the solo keyboard pieces, each piece's top-level .ly files
    (those no other file of the piece includes) run through convert-ly and lilypond."""

    name = "mutopia"
    url = "https://github.com/MutopiaProject/MutopiaProject"
    HEADER = re.compile(r'^\s*(mutopiatitle|title|mutopiacomposer|composer|license|copyright|mutopiainstrument|instrument)\s*=\s*"([^"]*)"',
                        re.MULTILINE)
    INCLUDE = re.compile(r'\\include\s+"([^"]+)"')

    def works(self) -> list[Work]:
        pieces: dict[Path, list[Path]] = {}
        for ly in sorted((self.root / "ftp").rglob("*.ly")):
            folder = ly.parent.parent if ly.parent.name.endswith("-lys") else ly.parent
            pieces.setdefault(folder, []).append(ly)
        works = []
        for files in pieces.values():
            fields, included = {}, set()
            texts = {ly: ly.read_text(errors="replace") for ly in files}
            for ly, text in texts.items():
                for key, value in self.HEADER.findall(text):
                    fields.setdefault(key, value)
                included |= {(ly.parent / inc).resolve() for inc in self.INCLUDE.findall(text)}
            instrument = fields.get("mutopiainstrument", fields.get("instrument", ""))
            if not is_keyboard(instrument):
                continue
            title = fields.get("mutopiatitle", fields.get("title", ""))
            composer = fields.get("mutopiacomposer", fields.get("composer", ""))
            for ly in files:
                if ly.resolve() not in included and re.search(r"\\score|\\book", texts[ly]):
                    works.append(Work(str(ly.relative_to(self.root)), title, composer,
                                      fields.get("license", fields.get("copyright", "")), instrument))
        return works

    def convert(self, work: Work, out_dir: Path) -> Converted:
        target = out_dir / Path(work.path).with_suffix("")
        made = sorted(target.parent.glob(f"{target.name}*.mid"))
        if made:
            return Converted(work, tuple(str(p.relative_to(out_dir)) for p in made))
        for program in ("lilypond", "convert-ly"):
            if shutil.which(program) is None:
                raise SourceError(f"mutopia: {program} not found: install LilyPond (apt-get install lilypond)")
        source = self.root / work.path
        with tempfile.TemporaryDirectory() as tmp:
            build = Path(tmp) / "piece"
            # convert-ly rewrites in place; the includes sit beside; links (a folder's Makefile) stay links
            shutil.copytree(source.parent, build, symlinks=True)
            main = build / source.name
            for ly in build.rglob("*.ly"):
                _run(["convert-ly", "-e", "-n", str(ly)], build)
                _accept_newer_patch(ly)
            (Path(tmp) / "out").mkdir()
            result = _run(["lilypond", "-dno-print-pages", "-dmidi-extension=mid", "--loglevel=ERROR",
                           "-o", str(Path(tmp) / "out" / target.name), str(main)], build)
            midi = sorted((Path(tmp) / "out").glob("*.mid"))
            if not midi:
                reason = (result.stderr.strip().splitlines() or ["no \\midi block"])[-1][:200]
                return Converted(work, problem=f"lilypond made no MIDI: {reason}")
            target.parent.mkdir(parents=True, exist_ok=True)
            for m in midi:
                shutil.copy(m, target.parent / m.name)
        return Converted(work, tuple(str((target.parent / m.name).relative_to(out_dir)) for m in midi))


class Lieder(Source):
    """OpenScore Lieder: songs for voice and piano in compressed MusicXML (CC0), every part read as piano."""

    name = "lieder"
    url = "https://github.com/OpenScore/Lieder"

    def works(self) -> list[Work]:
        licence = "CC0" if "CC0" in _head(self.root / "LICENSE.txt") else "not stated"
        works = []
        for score in sorted((self.root / "scores").rglob("*.mxl")):
            composer, _, title = score.relative_to(self.root / "scores").parts[:3]
            works.append(Work(str(score.relative_to(self.root)), title.replace("_", " "),
                              composer.replace("_", " ").replace(",", ", "), licence, "Voice, Piano"))
        return works

    def convert(self, work: Work, out_dir: Path) -> Converted:
        target = out_dir / Path(work.path).with_suffix(".mid")
        if target.is_file():
            return Converted(work, (str(target.relative_to(out_dir)),))
        try:
            import music21
        except ImportError as e:
            raise SourceError("lieder: music21 is needed to read MusicXML: pip install -e '.[data]'") from e
        import warnings
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = music21.converter.parse(self.root / work.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                score.write("midi", fp=str(target))
        except Exception as e:  # music21 raises many kinds on a broken score; the work is skipped, never the run
            target.unlink(missing_ok=True)
            return Converted(work, problem=f"music21 could not convert it ({type(e).__name__}: {str(e)[:160]})")
        return Converted(work, (str(target.relative_to(out_dir)),))


SOURCES = {"mutopia": Mutopia, "lieder": Lieder}


def open_source(name: str, root: Path) -> Source:
    """The source `name` over `root`: a known collection, or else a plain MIDI folder of that name."""
    if name in SOURCES:
        return SOURCES[name](root)
    licence = _head(Path(root) / "LICENSE").splitlines()[0].strip() if (Path(root) / "LICENSE").is_file() else ""
    return MidiFolder(root, name, licence or "see the folder")


def find_midi_files(root: Path) -> list[Path]:
    """Every .mid/.midi file below `root`, in a stable order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def is_keyboard(instrument: str) -> bool:
    """Whether every instrument named is a keyboard ("Harpsichord, Piano" is; "Voice and Piano" is not)."""
    names = [n.strip().lower() for n in re.split(r",|/|&|\band\b|\bor\b", instrument) if n.strip()]
    return bool(names) and all(n in KEYBOARDS for n in names)


def _head(path: Path) -> str:
    return path.read_text(errors="replace")[:2000] if path.is_file() else ""


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 1, "", f"timed out after {CONVERT_TIMEOUT_S} s")


def _accept_newer_patch(ly: Path) -> None:
    """A file asking for a newer patch release of the installed LilyPond's minor version (2.24.3 under
    2.24.1) is read by it as it is: lilypond refuses it otherwise."""
    installed = _lilypond_version()
    text = ly.read_text(errors="replace")
    m = re.search(r'\\version\s+"(\d+)\.(\d+)\.(\d+)"', text)
    if m and installed and (int(m[1]), int(m[2])) == installed[:2] and int(m[3]) > installed[2]:
        ly.write_text(text[:m.start()] + '\\version "%d.%d.%d"' % installed + text[m.end():])


_VERSION: list[tuple[int, int, int] | None] = []


def _lilypond_version() -> tuple[int, int, int] | None:
    if not _VERSION:
        out = _run(["lilypond", "--version"], Path.cwd()).stdout
        m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
        _VERSION.append(tuple(map(int, m.groups())) if m else None)
    return _VERSION[0]
