"""The perceptual hash: stable, robust to resizing and recompression, and the near-dup index."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esplora.sources.images import decode_image
from esplora.sources.phash import PhashIndex, _dct_matrix, hamming, phash, phash_array
from support import datasets


def test_the_dct_matrix_is_orthonormal_and_a_dct() -> None:
    d = _dct_matrix(32)
    assert np.allclose(d @ d.T, np.eye(32))
    x = np.random.default_rng(0).random(32)
    n = np.arange(32)
    direct = [np.sum(x * np.cos(np.pi * (2 * n + 1) * k / 64)) for k in range(32)]
    scale = np.array([np.sqrt(1 / 32)] + [np.sqrt(2 / 32)] * 31)
    assert np.allclose(d @ x, scale * np.array(direct))


def test_phash_is_stable() -> None:
    image = datasets.photo(1, (256, 256))
    assert phash(image) == phash(image.copy()) == phash(image.convert("RGBA"))
    assert len(phash(image)) == 16


def test_the_hash_of_a_known_array() -> None:
    # Bright left half: the horizontal frequencies carry the signal, deterministically.
    gray = np.zeros((32, 32))
    gray[:, :16] = 255
    assert phash_array(gray) == phash_array(gray.copy())
    with pytest.raises(ValueError, match="32x32"):
        phash_array(np.zeros((8, 8)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_resized_or_recompressed_copy_is_within_four_bits(seed: int) -> None:
    image = datasets.photo(seed, (256, 256))
    original = decode_image(datasets.encode(image, "PNG"), name="a").phash
    resized = decode_image(datasets.encode(image.resize((128, 128)), "JPEG"), name="b").phash
    lossy = decode_image(datasets.encode(image, "JPEG", quality=40), name="c").phash
    assert hamming(original, resized) <= 4 and hamming(original, lossy) <= 4


def test_different_images_are_far_apart() -> None:
    hashes = [decode_image(datasets.jpeg(seed), name=str(seed)).phash for seed in range(40)]
    assert min(hamming(a, b) for a, b in itertools.combinations(hashes, 2)) > 8


def test_hamming() -> None:
    assert hamming("0" * 16, "f" * 16) == 64
    assert hamming("00000000000000ff", "000000000000000f") == 4


def test_the_index_finds_the_earliest_close_image() -> None:
    index = PhashIndex()
    assert index.nearest("0" * 16, 4) is None
    index.add(7, "00000000000000ff")
    index.add(3, "00000000000000f0")
    index.add(9, "ffffffffffffffff")
    assert index.nearest("00000000000000ff", 4) == 3  # both 7 and 3 are within 4 bits
    assert index.nearest("00000000000000ff", 0) == 7
    assert index.nearest("0f0f0f0f0f0f0f0f", 4) is None
    assert len(index) == 3


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    st.integers(0, 2**64 - 1),
    st.integers(0, 64),
)
def test_the_index_agrees_with_scalar_hamming(values: list[int], query: int, distance: int) -> None:
    index = PhashIndex()
    for i, value in enumerate(values):
        index.add(i, f"{value:016x}")  # also grows past the initial capacity in other tests
    close = [i for i, v in enumerate(values) if hamming(f"{v:016x}", f"{query:016x}") <= distance]
    assert index.nearest(f"{query:016x}", distance) == (min(close) if close else None)


def test_the_index_grows() -> None:
    index = PhashIndex()
    for i in range(3000):
        index.add(i, f"{i:016x}")
    assert len(index) == 3000 and index.nearest(f"{2999:016x}", 0) == 2999
