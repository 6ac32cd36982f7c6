"""Built-in corpora, text-file loading and the language-model windows pipeline."""

import numpy as np
import pytest

from keras_recipes.data import (
    builtin_corpus_path,
    encode_documents,
    language_model_datasets,
    load_builtin_corpus,
    load_text_files,
    windows_dataset,
)


class CharTokenizer:
    """A tokenizer whose ids are easy to predict: bytes shifted past 4 specials."""

    bos_id, eos_id = 2, 3

    def encode(self, texts, add_bos=False, add_eos=False):
        return [
            [self.bos_id] * add_bos + [b + 4 for b in t.encode()] + [self.eos_id] * add_eos
            for t in texts
        ]


def test_builtin_corpus_is_gensims_lee_background():
    documents = load_builtin_corpus()
    assert len(documents) == 300  # one article per line
    assert documents[0].startswith("Hundreds of people have been forced to vacate their homes")
    assert builtin_corpus_path("lee").name == "lee.cor"
    lee = load_builtin_corpus("lee")
    assert len(lee) == 50 and any("\u00a3" in doc for doc in lee)  # latin-1 pound sign
    with pytest.raises(ValueError, match="Unknown built-in corpus 'wiki'"):
        load_builtin_corpus("wiki")


def test_text_files_split_into_lines_paragraphs_or_files(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("It was a bright\ncold day.\n\nThe clocks were\nstriking thirteen.\n")
    assert load_text_files([book]) == [
        "It was a bright",
        "cold day.",
        "The clocks were",
        "striking thirteen.",
    ]
    assert load_text_files([book], unit="paragraph") == [
        "It was a bright cold day.",
        "The clocks were striking thirteen.",
    ]
    assert len(load_text_files([book], unit="file")) == 1


def test_folders_are_read_for_txt_files(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.txt").write_text("second\n")
    (tmp_path / "one.txt").write_text("first\n")
    (tmp_path / "skip.md").write_text("not read\n")
    assert load_text_files([tmp_path]) == ["second", "first"]  # sorted paths: b/two < one


def test_text_file_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_text_files([tmp_path / "nope.txt"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(ValueError, match="hold no text"):
        load_text_files([empty])
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="not utf-8 text"):
        load_text_files([latin])
    assert load_text_files([latin], encoding="latin-1") == ["café"]
    with pytest.raises(ValueError, match="No corpus files"):
        load_text_files([])


def test_encode_documents_wraps_each_in_bos_eos():
    stream = encode_documents(["ab", "c"], CharTokenizer())
    assert stream.dtype == np.int32
    assert stream.tolist() == [2, 101, 102, 3, 2, 103, 3]


def test_windows_targets_are_inputs_shifted_by_one():
    ds = windows_dataset(np.arange(20), seq_len=4, batch_size=2)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    inputs = np.concatenate([x for x, _ in batches])
    targets = np.concatenate([y for _, y in batches])
    # starts 0, 4, 8, 12 (a fifth window at 16 would need token 20)
    np.testing.assert_array_equal(inputs, np.arange(16).reshape(4, 4))
    np.testing.assert_array_equal(targets, np.arange(1, 17).reshape(4, 4))
    assert inputs.dtype == np.int32


def test_stride_overlaps_windows_and_drop_remainder_keeps_full_batches():
    ds = windows_dataset(np.arange(20), seq_len=4, batch_size=3, stride=2, drop_remainder=True)
    shapes = [tuple(x.shape) for x, _ in ds]
    assert shapes == [(3, 4)] * 2  # 8 windows (starts 0..14 step 2) -> 2 full batches
    first = next(iter(ds))[0].numpy()
    np.testing.assert_array_equal(first[:, 0], [0, 2, 4])


def test_shuffle_reorders_windows_every_epoch_but_keeps_them_whole():
    ds = windows_dataset(np.arange(401), seq_len=4, batch_size=100, shuffle=True, seed=1)
    epoch1 = next(iter(ds))[0].numpy()
    epoch2 = next(iter(ds))[0].numpy()
    assert not np.array_equal(epoch1, epoch2)
    assert sorted(epoch1[:, 0]) == sorted(epoch2[:, 0]) == list(range(0, 400, 4))
    np.testing.assert_array_equal(epoch1 - epoch1[:, :1], np.tile(np.arange(4), (100, 1)))


def test_windows_reject_bad_arguments():
    with pytest.raises(ValueError, match="cannot fill one window"):
        windows_dataset(np.arange(4), seq_len=4, batch_size=1)
    with pytest.raises(ValueError, match="fewer than one batch"):
        windows_dataset(np.arange(20), seq_len=4, batch_size=8, drop_remainder=True)
    with pytest.raises(ValueError, match="seq_len"):
        windows_dataset(np.arange(20), seq_len=0, batch_size=1)
    with pytest.raises(ValueError, match="1-D integer"):
        windows_dataset(np.zeros((4, 4)), seq_len=2, batch_size=1)


def test_language_model_split_holds_out_the_tail_and_is_reproducible():
    documents = [f"document number {i} says something" for i in range(50)]
    data = language_model_datasets(documents, CharTokenizer(), seq_len=16, batch_size=4)
    total = len(data.train_tokens) + len(data.validation_tokens)
    assert total == sum(len(d) + 2 for d in documents)
    assert abs(len(data.validation_tokens) / total - 0.1) < 0.01
    again = language_model_datasets(documents, CharTokenizer(), seq_len=16, batch_size=4)
    np.testing.assert_array_equal(again.validation_tokens, data.validation_tokens)
    val_inputs = np.concatenate([x.numpy() for x, _ in data.validation])
    assert len(val_inputs) == (len(data.validation_tokens) - 1) // 16
    np.testing.assert_array_equal(val_inputs[0], data.validation_tokens[:16])
    for x, y in data.train.take(2):
        assert tuple(x.shape) == tuple(y.shape) == (4, 16)


def test_language_model_split_too_small_for_a_window_says_so():
    with pytest.raises(ValueError, match="validation part has .* lower seq_len"):
        language_model_datasets(["tiny text"] * 5, CharTokenizer(), seq_len=16, batch_size=1)
    with pytest.raises(ValueError, match="validation_split"):
        language_model_datasets(["text"], CharTokenizer(), 4, 1, validation_split=1.0)
