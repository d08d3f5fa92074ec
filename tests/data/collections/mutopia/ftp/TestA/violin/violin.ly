% written for the tests: a violin piece, not keyboard music, which the importer does not list
\header {
  title = "Open strings"
  composer = "Muse Bridge tests"
  mutopiainstrument = "Violin"
  license = "Public Domain"
}
\version "2.24.0"
\score { \relative c' { g4 d' a' e' } \midi { } }
