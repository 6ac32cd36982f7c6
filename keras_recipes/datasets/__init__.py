"""Small built-in data sets the package generates or finds on disk (no download).

- `keras_recipes.datasets.dates`: human-written dates -> ISO dates, a
  parallel task for sequence-to-sequence models (`load_dates`).
- `keras_recipes.datasets.music`: rule-composed melodies in a key, MIDI
  files written and read (`generate_melodies`, `write_midi`, `read_midi`).
- `keras_recipes.datasets.ner`: a generated named-entity corpus with
  CoNLL-2003's four types in BIO tags, and a CoNLL reader
  (`generate_ner_corpus`, `read_conll`).
- `keras_recipes.datasets.pairs`: sentence pairs for translation in the
  Anki/Tatoeba tab-separated format (`read_pairs`).
- `keras_recipes.datasets.sequences`: the adding problem (long-range
  memory) and two series to forecast (`adding_problem`, `noisy_sine`,
  `seasonal_series`, `make_windows`).
- `keras_recipes.datasets.text`: the polarity sentences gensim ships and
  readers for the aclImdb folder layout and GLUE's SST-2 TSV files
  (`load_polarity`, `load_imdb`, `load_sst2`).
"""

from keras_recipes.datasets import dates, music, ner, pairs, sequences, text  # noqa: F401
