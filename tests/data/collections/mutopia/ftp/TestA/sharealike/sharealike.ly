% written for the tests: a piano piece whose licence (ShareAlike) the importer must refuse
\header {
  title = "Scale"
  composer = "Muse Bridge tests"
  mutopiainstrument = "Piano"
  license = "Creative Commons Attribution-ShareAlike 4.0"
}
\version "2.24.0"
\score { \relative c' { c4 d e f | g a b c } \midi { } }
