"""Small built-in data sets the package generates (no download).

- `keras_recipes.datasets.dates`: human-written dates -> ISO dates, a
  parallel task for sequence-to-sequence models.
"""

from keras_recipes.datasets import dates  # noqa: F401
