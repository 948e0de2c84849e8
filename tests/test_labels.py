"""Label space: sorted classes, the tree and its conflict rule, encode/decode, JSON round trip."""
import json

import numpy as np
import pandas as pd
import pytest

from fashion_hier.labels import LabelColumns, LabelSpace


@pytest.fixture
def styles() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subCategory": ["Topwear", "Shoes", "Topwear", "Sandal", "Shoes", "Sandal", "Bags"],
            "articleType": ["Tshirts", "Sandals", "Shirts", "Sandals", "Heels", "Sandals", "Handbags"],
            "season": ["Summer", "Fall", None, "Summer", "Winter", np.nan, ""],
            "usage": ["Casual", "Casual", "Formal", np.nan, "Party", "Casual", "Casual"],
        }
    )


def test_classes_are_sorted_and_missing_attributes_never_become_nan(styles):
    space = LabelSpace.from_frame(styles)
    assert space.categories == ["Bags", "Sandal", "Shoes", "Topwear"]
    assert space.subcategories == ["Handbags", "Heels", "Sandals", "Shirts", "Tshirts"]
    assert space.attributes == ["Casual", "Fall", "Formal", "Party", "Summer", "Winter"]
    assert (space.num_categories, space.num_subcategories, space.num_attributes) == (4, 5, 6)


def test_class_order_does_not_depend_on_row_order(styles):
    shuffled = styles.sample(frac=1.0, random_state=3)
    assert LabelSpace.from_frame(shuffled) == LabelSpace.from_frame(styles)


def test_conflicting_subcategory_goes_to_category_with_most_rows(styles):
    space = LabelSpace.from_frame(styles)
    # "Sandals": 2 rows under Sandal, 1 under Shoes
    assert space.conflicts == {"Sandals": {"Sandal": 2, "Shoes": 1}}
    assert space.parents["Sandals"] == "Sandal"
    assert space.parents == {"Handbags": "Bags", "Heels": "Shoes", "Sandals": "Sandal", "Shirts": "Topwear", "Tshirts": "Topwear"}


def test_conflict_tie_goes_to_alphabetically_first_category():
    frame = pd.DataFrame({"subCategory": ["Zeta", "Alpha"], "articleType": ["Thing", "Thing"], "season": ["S", "S"], "usage": ["U", "U"]})
    space = LabelSpace.from_frame(frame)
    assert space.parents == {"Thing": "Alpha"}
    assert space.conflicts == {"Thing": {"Alpha": 1, "Zeta": 1}}


def test_parent_index_points_each_subcategory_at_its_category(styles):
    space = LabelSpace.from_frame(styles)
    expected = [space.categories.index(space.parents[s]) for s in space.subcategories]
    np.testing.assert_array_equal(space.parent_index, expected)
    np.testing.assert_array_equal(space.parent_index, [0, 2, 1, 3, 3])


def test_encode_gives_indices_one_hot_and_multi_hot(styles):
    space = LabelSpace.from_frame(styles)
    encoded = space.encode(styles)
    np.testing.assert_array_equal(encoded["category"], [3, 2, 3, 1, 2, 1, 0])
    np.testing.assert_array_equal(encoded["subcategory"], [4, 2, 3, 2, 1, 2, 0])
    assert encoded["category"].dtype == np.int32 and encoded["subcategory"].dtype == np.int32
    # attributes ["Casual", "Fall", "Formal", "Party", "Summer", "Winter"]
    expected = np.array(
        [[1, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0],
         [0, 0, 0, 1, 0, 1], [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(encoded["attributes"], expected)
    assert encoded["attributes"].dtype == np.float32
    one_hot = space.encode(styles, one_hot=True)
    assert one_hot["category"].shape == (7, 4) and one_hot["category"].dtype == np.float32
    np.testing.assert_array_equal(one_hot["category"].argmax(1), encoded["category"])
    np.testing.assert_array_equal(one_hot["subcategory"].sum(1), np.ones(7))


def test_decode_inverts_encode(styles):
    space = LabelSpace.from_frame(styles)
    encoded = space.encode(styles)
    assert space.decode_category(encoded["category"]) == styles["subCategory"].tolist()
    assert space.decode_subcategory(encoded["subcategory"]) == styles["articleType"].tolist()
    assert space.decode_category(space.encode(styles, one_hot=True)["category"]) == styles["subCategory"].tolist()
    assert space.decode_attributes(encoded["attributes"])[:3] == [["Casual", "Summer"], ["Casual", "Fall"], ["Formal"]]


def test_decode_attributes_uses_per_label_thresholds(styles):
    space = LabelSpace.from_frame(styles)
    scores = np.full((1, 6), 0.6)
    assert space.decode_attributes(scores) == [space.attributes]
    assert space.decode_attributes(scores, threshold=0.7) == [[]]
    per_label = np.array([0.5, 0.9, 0.5, 0.9, 0.6, 0.61])
    assert space.decode_attributes(scores, threshold=per_label) == [["Casual", "Formal", "Summer"]]
    with pytest.raises(ValueError, match=r"threshold must be"):
        space.decode_attributes(scores, threshold=np.ones(2))
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        space.decode_attributes(np.ones((1, 5)))


def test_decode_rejects_out_of_range_indices(styles):
    with pytest.raises(ValueError, match=r"category indices must lie in \[0, 3\]"):
        LabelSpace.from_frame(styles).decode_category([0, 4])


def test_unknown_labels_raise_listing_them(styles):
    space = LabelSpace.from_frame(styles)
    new = pd.DataFrame({"subCategory": ["Topwear", "Jewellery"], "articleType": ["Kurtas", "Rings"],
                        "season": ["Summer", "Monsoon"], "usage": [None, "Casual"]})
    assert space.unknown_labels(new) == {
        "category": {"Jewellery": 1}, "subcategory": {"Kurtas": 1, "Rings": 1}, "attributes": {"Monsoon": 1}}
    with pytest.raises(ValueError, match=r"Jewellery.*Kurtas.*Rings.*Monsoon.*unknown='drop'"):
        space.encode(new)


def test_unknown_labels_dropped_with_a_warning_when_asked(styles):
    space = LabelSpace.from_frame(styles)
    new = pd.DataFrame({"subCategory": ["Topwear", "Jewellery", "Shoes"], "articleType": ["Shirts", "Rings", "Heels"],
                        "season": ["Monsoon", "Summer", "Fall"], "usage": ["Casual", None, None]})
    np.testing.assert_array_equal(space.known_rows(new), [True, False, True])
    with pytest.warns(UserWarning, match=r"dropped 1 of 3 rows.*ignored 1 unknown attribute"):
        encoded = space.encode(new, unknown="drop")
    np.testing.assert_array_equal(encoded["subcategory"], [3, 1])
    np.testing.assert_array_equal(encoded["attributes"], [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]])


def test_missing_category_counts_as_unknown(styles):
    space = LabelSpace.from_frame(styles)
    new = styles.head(2).assign(subCategory=[None, "Shoes"])
    assert space.unknown_labels(new)["category"] == {"<missing>": 1}
    np.testing.assert_array_equal(space.known_rows(new), [False, True])


def test_delimited_attribute_column_with_custom_separator():
    frame = pd.DataFrame({"cat": ["A", "B", "A"], "sub": ["a1", "b1", "a2"],
                          "tags": ["red; striped", None, "blue;;red"]})
    space = LabelSpace.from_frame(frame, category="cat", subcategory="sub", attributes="tags", attribute_separator=";")
    assert space.columns == LabelColumns("cat", "sub", ("tags",), ";")
    assert space.attributes == ["blue", "red", "striped"]
    np.testing.assert_array_equal(space.encode(frame)["attributes"], [[0, 1, 1], [0, 0, 0], [1, 1, 0]])


def test_numeric_attribute_column_with_gaps_names_integers():
    frame = pd.DataFrame({"subCategory": ["A", "A"], "articleType": ["a", "a"], "year": [2011.0, np.nan]})
    space = LabelSpace.from_frame(frame, attributes=["year"])
    assert space.attributes == ["2011"]


def test_save_load_round_trips_exactly_as_readable_json(styles, tmp_path):
    space = LabelSpace.from_frame(styles, attributes=["season", "usage"], attribute_separator="|")
    path = space.save(tmp_path / "labels.json")
    loaded = LabelSpace.load(path)
    assert loaded == space
    assert loaded.to_dict() == space.to_dict()
    assert loaded.columns == space.columns and loaded.conflicts == space.conflicts
    np.testing.assert_array_equal(loaded.parent_index, space.parent_index)
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["subcategories"] == ["Handbags", "Heels", "Sandals", "Shirts", "Tshirts"]
    assert on_disk["parents"]["Sandals"] == "Sandal"
    assert "\n  " in path.read_text(encoding="utf-8")  # indented for people


def test_equality_notices_any_difference(styles):
    space = LabelSpace.from_frame(styles)
    other = LabelSpace(space.categories, space.subcategories, space.attributes[:-1], space.parents,
                       columns=space.columns, conflicts=space.conflicts)
    assert other != space


def test_load_rejects_a_file_that_is_not_a_label_space(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"categories": []}))
    with pytest.raises(ValueError, match=r"labels.json: cannot read a LabelSpace"):
        LabelSpace.load(path)


def test_rows_without_category_are_refused_when_building(styles):
    broken = styles.assign(articleType=styles["articleType"].where(styles.index != 2))
    with pytest.raises(ValueError, match=r"1 rows have no 'subCategory' or 'articleType' label"):
        LabelSpace.from_frame(broken)


def test_missing_column_is_named(styles):
    with pytest.raises(KeyError, match=r"\['colour'\] not in the frame"):
        LabelSpace.from_frame(styles, attributes=["colour"])


def test_constructor_refuses_subcategory_without_parent():
    with pytest.raises(ValueError, match=r"without a parent category: \['b'\]"):
        LabelSpace(["A"], ["a", "b"], [], {"a": "A"})
