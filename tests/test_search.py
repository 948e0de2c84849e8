"""Similarity search: neighbours equal a numpy brute-force cosine search; run checks, extend, commands."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("faiss", reason="the search extra is not installed: pip install 'fashion-hier[search]'")
keras = pytest.importorskip("keras")

from fashion_hier.data import load_images  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402
from fashion_hier.search import IndexMismatchError, build_index, load_index  # noqa: E402
from fashion_hier.commands.index import main as index_main  # noqa: E402
from fashion_hier.commands.similar import main as similar_main  # noqa: E402
from tiny_run import train_tiny_run  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("search_run"))


@pytest.fixture(scope="module")
def catalogue(run_dir):
    return sorted(pd.read_csv(run_dir / "splits" / "train.csv")["image_path"].astype(str))[:24]


def _pooled_oracle(run_dir, paths) -> np.ndarray:
    """Unit pooled features computed by calling the preprocess and backbone layers directly."""
    predictor = Predictor.load(run_dir)
    model = predictor.model.network  # the task wraps the build_model network
    images = load_images(paths, predictor.image_size)
    features = np.asarray(model.get_layer("backbone")(model.get_layer("preprocess")(images)), np.float64)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def test_neighbours_equal_a_brute_force_cosine_search(run_dir, catalogue):
    index, unreadable = build_index(run_dir, catalogue)
    vectors = _pooled_oracle(run_dir, catalogue)

    found = index.search(catalogue[:3], k=5)

    similarity = vectors[:3] @ vectors.T
    for row, query in enumerate(catalogue[:3]):
        got = found[found["query"] == query]
        expected_ids = np.argsort(-similarity[row], kind="stable")[:5]
        np.testing.assert_allclose(got["distance"], 1 - similarity[row, expected_ids], atol=1e-5)
        assert got["position"].iloc[0] == row and got["image_path"].iloc[0] == query  # an image is its own nearest
        assert got["id"].iloc[0] == Path(query).stem  # the catalogue id, not the index row
        assert got["rank"].tolist() == [1, 2, 3, 4, 5]
    assert unreadable == [] and not index.approximate and len(index) == len(catalogue)


def test_unreadable_images_are_skipped_and_reported(run_dir, catalogue, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really")
    index, unreadable = build_index(run_dir, [*catalogue[:4], str(broken)])
    assert len(index) == 4 and [path for path, _ in unreadable] == [str(broken)]
    assert "not a decodable image" in unreadable[0][1]


def test_saved_index_reloads_extends_and_refuses_another_model(run_dir, catalogue, tmp_path):
    build_index(run_dir, catalogue[:10], tmp_path / "index")
    index = load_index(tmp_path / "index", run=run_dir)
    assert index.extend([*catalogue[5:], *catalogue[10:]]) == []  # duplicates skipped
    index.save(tmp_path / "index")

    extended = load_index(tmp_path / "index", run=run_dir)
    full, _ = build_index(run_dir, catalogue)
    assert extended.image_paths == full.image_paths
    pd.testing.assert_frame_equal(extended.search(catalogue[-2:], k=4), full.search(catalogue[-2:], k=4),
                                  atol=1e-5)

    other = tmp_path / "other_run"
    shutil.copytree(run_dir, other)
    model = keras.saving.load_model(other / "model.keras", compile=False)
    model.get_layer("subcategory").set_weights([w + 0.1 for w in model.get_layer("subcategory").get_weights()])
    model.save(other / "model.keras")
    with pytest.raises(IndexMismatchError, match="was built by the model"):
        load_index(tmp_path / "index", run=other)


def test_approximate_index_above_the_threshold_finds_the_exact_neighbours(run_dir, catalogue):
    exact, _ = build_index(run_dir, catalogue)
    approximate, _ = build_index(run_dir, catalogue, threshold=0, embedding="head")
    head_exact, _ = build_index(run_dir, catalogue, embedding="head")
    assert approximate.approximate and approximate.record["kind"] == "ivf"
    assert approximate.record["dimension"] == 8  # the head's units in the tiny run
    assert approximate.record["search"]["nprobe"] == approximate.record["search"]["nlist"]  # 24 vectors: all lists
    got, want = approximate.search(catalogue[:4], k=5), head_exact.search(catalogue[:4], k=5)
    # every list probed: the same neighbours; distances re-ranked on 8-bit copies of the vectors
    np.testing.assert_allclose(got["distance"], want["distance"], atol=5e-3)
    assert exact.record["dimension"] != approximate.record["dimension"]


def test_commands_index_then_similar_with_csv_and_plots(run_dir, catalogue, tmp_path, capsys):
    listing = tmp_path / "catalogue.csv"
    pd.DataFrame({"image_path": catalogue[:12]}).to_csv(listing, index=False)
    assert index_main(["--run", str(run_dir), "--images", str(listing), "--out", str(tmp_path / "index")]) == 0
    pd.DataFrame({"image_path": catalogue[12:]}).to_csv(listing, index=False)
    assert index_main(["--run", str(run_dir), "--images", str(listing), "--out", str(tmp_path / "index"),
                       "--extend"]) == 0
    assert "added 12 images" in capsys.readouterr().out

    out, plots = tmp_path / "neighbours.csv", tmp_path / "plots"
    assert similar_main(["--index", str(tmp_path / "index"), *catalogue[:2], "-k", "3", "--out", str(out),
                         "--plot", str(plots)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["query", "rank", "id", "image_path", "distance", "position"] and len(table) == 6
    assert len(list(plots.glob("*.png"))) == 2

    assert similar_main(["--index", str(plots), catalogue[0]]) == 2  # a folder, but not an index
    assert "not a similarity index" in capsys.readouterr().err


def test_ivf_index_keeps_the_exact_neighbours_and_its_settings_through_save_and_load(tmp_path):
    """PCA + inverted lists + 8-bit refine on clustered unit vectors: recall@10 against exact search >= 0.95,
    and the probe count and refine factor (search-time settings) survive the index file."""
    import faiss

    from fashion_hier.search.index import apply_search_settings, new_faiss_index, train_index

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(200, 256))
    vectors = centres[rng.integers(0, 200, 20_000)] + 0.6 * rng.normal(size=(20_000, 256))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    queries = vectors[rng.choice(len(vectors), 50, replace=False)] + 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index, kind, settings = new_faiss_index(256, len(vectors), threshold=1_000)
    assert kind == "ivf" and settings == {"nlist": 512, "nprobe": 16, "k_factor": 16, "pca": 128}
    train_index(index, vectors)
    index.add(vectors)
    exact = faiss.IndexFlatIP(256)
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    faiss.write_index(index, str(tmp_path / "ivf.faiss"))
    loaded = faiss.read_index(str(tmp_path / "ivf.faiss"))
    apply_search_settings(loaded, settings)
    distances, found = loaded.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    assert recall >= 0.95
    assert faiss.extract_index_ivf(loaded).nprobe == 16
    # squared L2 between unit vectors / 2 = 1 - cosine, as SimilarityIndex reports it
    cosine = np.einsum("qd,qkd->qk", queries, vectors[found])
    np.testing.assert_allclose(distances / 2, 1 - cosine, atol=5e-3)
