% written for the tests: a Public Domain piano piece LilyPond cannot read (the importer skips and counts it)
\header {
  title = "Broken"
  composer = "Muse Bridge tests"
  mutopiainstrument = "Piano"
  license = "Public Domain"
}
\version "2.24.0"
\score { \relative c' { c4 d e f | g a b \notacommand { } \midi { } }
