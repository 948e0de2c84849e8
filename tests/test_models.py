"""Model factory: the paper's topology and parameter count, backbones, preprocessing, save/load, errors."""
import pathlib

import keras
import numpy as np
import pytest

from fashion_hier.models import (BACKBONES, Preprocess, backbone_model, build_head_model, build_model,
                                 copy_head_weights)

C, S, A = 3, 5, 4
IMAGE_SHAPE = (32, 32, 3)
LOCAL_RESNET50 = pathlib.Path("~/.cache/fashion_hier/weights/"
                              "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").expanduser()
APPLICATION_MODULES = {
    "resnet50": keras.applications.resnet50,
    "resnet50_multiscale": keras.applications.resnet50,
    "resnet50_multiscale_conv3": keras.applications.resnet50,
    "resnet50v2": keras.applications.resnet_v2,
    "efficientnetb0": keras.applications.efficientnet,
    "mobilenetv2": keras.applications.mobilenet_v2,
    "small_cnn": keras.applications.mobilenet_v2,  # same [-1, 1] scaling
}


def _td(level, step):
    return f"topdown_{level}_{step}"


def _bu(level, step):
    return f"bottomup_{level}_{step}"


# Which layers feed which, written out from the equations (not from the implementation):
#   cat_td = Drop(D(D(c)));  sub_td = Drop(D(D(s) + D(cat_td)));  att_td = Drop(D(D(a) + D(cat_td)))
#   att_bu = Drop(D(D(a)));  sub_bu = Drop(D(D(s)));  cat_bu = Drop(D(D(c) + D(sub_bu) + D(att_bu)))
#   outputs read td + bu.
TOP_DOWN_EDGES = {
    _td("category", 1): ["category_branch"],
    _td("category", 2): [_td("category", 1)],
    _td("category", "dropout"): [_td("category", 2)],
    _td("subcategory", 1): ["subcategory_branch"],
    "topdown_subcategory_from_category": [_td("category", "dropout")],
    _td("subcategory", "sum"): [_td("subcategory", 1), "topdown_subcategory_from_category"],
    _td("subcategory", 2): [_td("subcategory", "sum")],
    _td("subcategory", "dropout"): [_td("subcategory", 2)],
    _td("attributes", 1): ["attributes_branch"],
    "topdown_attributes_from_category": [_td("category", "dropout")],
    _td("attributes", "sum"): [_td("attributes", 1), "topdown_attributes_from_category"],
    _td("attributes", 2): [_td("attributes", "sum")],
    _td("attributes", "dropout"): [_td("attributes", 2)],
}
BOTTOM_UP_EDGES = {
    _bu("attributes", 1): ["attributes_branch"],
    _bu("attributes", 2): [_bu("attributes", 1)],
    _bu("attributes", "dropout"): [_bu("attributes", 2)],
    _bu("subcategory", 1): ["subcategory_branch"],
    _bu("subcategory", 2): [_bu("subcategory", 1)],
    _bu("subcategory", "dropout"): [_bu("subcategory", 2)],
    _bu("category", 1): ["category_branch"],
    "bottomup_category_from_subcategory": [_bu("subcategory", "dropout")],
    "bottomup_category_from_attributes": [_bu("attributes", "dropout")],
    _bu("category", "sum"): [_bu("category", 1), "bottomup_category_from_subcategory",
                             "bottomup_category_from_attributes"],
    _bu("category", 2): [_bu("category", "sum")],
    _bu("category", "dropout"): [_bu("category", 2)],
}
LEVELS = ("category", "subcategory", "attributes")
BRANCH_EDGES = {f"{level}_branch": ["features"] for level in LEVELS}
OUTPUT_EDGES = {
    **{f"{level}_sum": [_td(level, "dropout"), _bu(level, "dropout")] for level in LEVELS},
    **{level: [f"{level}_sum"] for level in LEVELS},
}


def _inbound_layer_names(structure) -> list[str]:
    """Names of the layers whose tensors appear in a serialised inbound node (any nesting)."""
    if isinstance(structure, dict):
        if structure.get("class_name") == "__keras_tensor__":
            return [structure["config"]["keras_history"][0]]
        return [name for value in structure.values() for name in _inbound_layer_names(value)]
    if isinstance(structure, (list, tuple)):
        return [name for value in structure for name in _inbound_layer_names(value)]
    return []


def _edges(model: keras.Model) -> dict[str, list[str]]:
    """layer name -> names of the layers it reads, from the functional graph's config."""
    return {layer["name"]: _inbound_layer_names(layer["inbound_nodes"])
            for layer in model.get_config()["layers"] if layer["inbound_nodes"]}


def _dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


@pytest.fixture(scope="module")
def paper_head():
    return build_head_model(C, S, A, feature_dim=2048)


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(C, S, A, weights=None, input_shape=IMAGE_SHAPE, units=16)


def _images(n=4, seed=0, size=None):
    shape = IMAGE_SHAPE if size is None else (size, size, 3)
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def test_paper_head_parameter_count_matches_formula(paper_head):
    feature_dim, units = 2048, 1024
    branches = 3 * (feature_dim * units + units)
    block = 16 * (units * units + units)
    outputs = (units + 1) * (C + S + A)
    assert paper_head.count_params() == branches + block + outputs == 23_100_428


def test_paper_head_wiring_matches_the_papers_equations(paper_head):
    expected = {**BRANCH_EDGES, **TOP_DOWN_EDGES, **BOTTOM_UP_EDGES, **OUTPUT_EDGES}
    assert _edges(paper_head) == expected


def test_paper_head_has_16_block_dense_layers_plus_branches_and_outputs(paper_head):
    dense = _dense_layers(paper_head)
    assert len(dense) == 3 + 16 + 3
    hidden = [layer for layer in dense if layer.name not in LEVELS]
    assert {(layer.units, layer.activation.__name__) for layer in hidden} == {(1024, "relu")}
    dropouts = [layer for layer in paper_head.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 6 and {layer.rate for layer in dropouts} == {0.3}


def test_every_dense_layer_including_outputs_has_l2(paper_head):
    for layer in _dense_layers(paper_head):
        assert isinstance(layer.kernel_regularizer, keras.regularizers.L2), layer.name
        assert layer.kernel_regularizer.l2 == pytest.approx(5e-4), layer.name


def test_output_units_and_activations(paper_head):
    outputs = {layer.name: layer for layer in _dense_layers(paper_head) if layer.name in LEVELS}
    assert {name: (layer.units, layer.activation.__name__) for name, layer in outputs.items()} == {
        "category": (C, "softmax"), "subcategory": (S, "softmax"), "attributes": (A, "sigmoid")}


def test_without_top_down_outputs_read_bottom_up_only():
    model = build_head_model(C, S, A, feature_dim=8, units=4, top_down=False)
    expected = {**BRANCH_EDGES, **BOTTOM_UP_EDGES, **{level: [_bu(level, "dropout")] for level in LEVELS}}
    assert _edges(model) == expected
    assert len(_dense_layers(model)) == 3 + 8 + 3


def test_without_bottom_up_outputs_read_top_down_only():
    model = build_head_model(C, S, A, feature_dim=8, units=4, bottom_up=False)
    expected = {**BRANCH_EDGES, **TOP_DOWN_EDGES, **{level: [_td(level, "dropout")] for level in LEVELS}}
    assert _edges(model) == expected
    assert len(_dense_layers(model)) == 3 + 8 + 3


def test_switching_off_both_passes_is_refused():
    with pytest.raises(ValueError, match="head='independent'"):
        build_head_model(C, S, A, feature_dim=8, units=4, top_down=False, bottom_up=False)


def test_independent_head_is_one_branch_per_level_to_its_output():
    model = build_head_model(C, S, A, feature_dim=8, units=4, head="independent")
    expected = {**BRANCH_EDGES,
                **{f"{level}_branch_dropout": [f"{level}_branch"] for level in LEVELS},
                **{level: [f"{level}_branch_dropout"] for level in LEVELS}}
    assert _edges(model) == expected
    assert model.count_params() == 3 * (8 * 4 + 4) + (4 + 1) * (C + S + A)


def test_full_model_wiring_image_preprocess_backbone_head(tiny_model):
    edges = _edges(tiny_model)
    assert edges["preprocess"] == ["image"]
    assert edges["backbone"] == ["preprocess"]
    assert all(edges[f"{level}_branch"] == ["backbone"] for level in LEVELS)
    assert tiny_model.get_layer("preprocess").mode == "caffe"
    assert backbone_model(tiny_model).output.shape == (None, 2048)
    assert tiny_model.input.shape == (None, *IMAGE_SHAPE)


def test_full_model_head_has_same_layers_as_head_model(tiny_model):
    head = build_head_model(C, S, A, feature_dim=2048, units=16)
    full_head = {layer.name for layer in tiny_model.layers} - {"image", "preprocess", "backbone"}
    assert full_head == {layer.name for layer in head.layers} - {"features"}


def test_forward_pass_shapes_and_output_ranges(tiny_model):
    outputs = tiny_model.predict(_images(), verbose=0)
    assert {name: value.shape for name, value in outputs.items()} == {
        "category": (4, C), "subcategory": (4, S), "attributes": (4, A)}
    np.testing.assert_allclose(outputs["category"].sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(outputs["subcategory"].sum(axis=1), 1, rtol=1e-5)
    assert ((outputs["attributes"] > 0) & (outputs["attributes"] < 1)).all()


def test_frozen_backbone_leaves_only_head_weights_trainable():
    model = build_model(C, S, A, backbone="mobilenetv2", weights=None, input_shape=IMAGE_SHAPE,
                        units=8, trainable_backbone=False)
    assert backbone_model(model).trainable is False
    head = build_head_model(C, S, A, feature_dim=1280, units=8)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == head.count_params()


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_with_its_feature_size_and_preprocessing(name):
    model = build_model(C, S, A, backbone=name, weights=None, input_shape=IMAGE_SHAPE, units=8)
    assert backbone_model(model).output.shape == (None, BACKBONES[name].feature_dim)
    images = _images(2)
    expected = APPLICATION_MODULES[name].preprocess_input(images.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.get_layer("preprocess")(images)),
                               expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("name, stages", [
    ("resnet50_multiscale", ("conv5_block3_out", "conv4_block6_out")),
    ("resnet50_multiscale_conv3", ("conv5_block3_out", "conv4_block6_out", "conv3_block4_out"))])
@pytest.mark.slow
def test_multiscale_resnet50_concatenates_its_stages_average_pooled(tmp_path, name, stages):
    """Oracle: keras.applications.ResNet50 with the same weights, its stage outputs averaged by numpy."""
    keras.utils.set_random_seed(3)
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    weights = tmp_path / "resnet50.weights.h5"
    keras.Model(reference.input, keras.layers.GlobalAveragePooling2D()(reference.output)).save_weights(weights)
    model = build_model(C, S, A, backbone=name, weights=weights, input_shape=(64, 64, 3), units=8)
    images = keras.applications.resnet50.preprocess_input(_images(2, size=64))
    maps = keras.Model(reference.input, [reference.get_layer(stage).output for stage in stages]).predict(images, verbose=0)
    expected = np.concatenate([np.asarray(m).mean(axis=(1, 2)) for m in maps], axis=1)
    got = backbone_model(model).predict(images, verbose=0)
    assert got.shape == (2, BACKBONES[name].feature_dim)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode, module", [("caffe", keras.applications.resnet50),
                                          ("tf", keras.applications.resnet_v2),
                                          ("torch", keras.applications.densenet),
                                          ("none", keras.applications.efficientnet)])
def test_preprocess_layer_equals_keras_preprocess_input(mode, module):
    images = _images(3, seed=1)
    expected = module.preprocess_input(images.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(Preprocess(mode)(images)), expected,
                               rtol=1e-6, atol=1e-4)


def test_preprocess_caffe_by_hand_on_one_pixel():
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], dtype="float32")   # R, G, B
    out = keras.ops.convert_to_numpy(Preprocess("caffe")(pixel))
    np.testing.assert_allclose(out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


def test_preprocess_config_round_trip_and_bad_mode():
    layer = Preprocess("tf", name="preprocess")
    assert Preprocess.from_config(layer.get_config()).mode == "tf"
    with pytest.raises(ValueError, match="'bgr' is not one of"):
        Preprocess("bgr")


def test_save_and_load_give_identical_predictions(tiny_model, tmp_path):
    path = tmp_path / "model.keras"
    tiny_model.save(path)
    loaded = keras.saving.load_model(path)
    images = _images()
    before, after = tiny_model.predict(images, verbose=0), loaded.predict(images, verbose=0)
    for level in LEVELS:
        np.testing.assert_array_equal(before[level], after[level])
    assert isinstance(loaded.get_layer("preprocess"), Preprocess)


def test_head_weights_copied_by_name_give_same_outputs_on_backbone_features(tiny_model):
    head = build_head_model(C, S, A, feature_dim=2048, units=16)
    target = build_model(C, S, A, weights=None, input_shape=IMAGE_SHAPE, units=16)
    target.get_layer("backbone").set_weights(tiny_model.get_layer("backbone").get_weights())
    assert copy_head_weights(head, target) == 3 + 16 + 3
    images = _images()
    features = backbone_model(target).predict(target.get_layer("preprocess")(images), verbose=0)
    from_head, from_full = head.predict(features, verbose=0), target.predict(images, verbose=0)
    for level in LEVELS:
        np.testing.assert_allclose(from_full[level], from_head[level], rtol=1e-5, atol=1e-6)


def test_copy_head_weights_refuses_other_head_or_class_count():
    source = build_head_model(C, S, A, feature_dim=8, units=4)
    with pytest.raises(ValueError, match="'topdown_category_1'.*missing"):
        copy_head_weights(source, build_head_model(C, S, A, feature_dim=8, units=4, head="independent"))
    with pytest.raises(ValueError, match="layer 'category': weight shapes"):
        copy_head_weights(source, build_head_model(C + 1, S, A, feature_dim=8, units=4))


def test_backbone_model_of_a_head_model_is_a_clear_error():
    with pytest.raises(ValueError, match="no layer 'backbone'"):
        backbone_model(build_head_model(C, S, A, feature_dim=8, units=4))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_categories": 0}, "num_categories must be a positive integer, got 0"),
    ({"num_subcategories": 2.5}, "num_subcategories must be a positive integer"),
    ({"num_attributes": True}, "num_attributes must be a positive integer"),
    ({"head": "transformer"}, "unknown head 'transformer'; known heads: independent, linear, message_passing"),
    ({"units": -1}, "units must be a positive integer"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ({"l2": -1e-4}, "l2 must be a number >= 0"),
    ({"feature_dim": 0}, "feature_dim must be a positive integer"),
    ({"head": "independent", "top_down": False}, "head='independent' has no passes"),
])
def test_bad_head_arguments_are_clear_errors(kwargs, message):
    arguments = {"num_categories": C, "num_subcategories": S, "num_attributes": A, "feature_dim": 8,
                 "units": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_head_model(**arguments)


@pytest.mark.parametrize("input_shape", [(32, 32), (32, 32, 1), (32, 32, 4), (0, 32, 3), (32.0, 32, 3)])
def test_bad_input_shape_is_a_clear_error(input_shape):
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, 3\)"):
        build_model(C, S, A, weights=None, input_shape=input_shape)


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'; known backbones: efficientnetb0, "
                                         "mobilenetv2, resnet50, resnet50_multiscale, resnet50_multiscale_conv3, resnet50v2, small_cnn"):
        build_model(C, S, A, backbone="vgg16", weights=None, input_shape=IMAGE_SHAPE)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere.h5"
    with pytest.raises(FileNotFoundError, match=f"weights file not found: {missing}"):
        build_model(C, S, A, weights=missing, input_shape=IMAGE_SHAPE)


def test_unreadable_weights_file_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match="could not load backbone weights .*broken.h5 into 'mobilenetv2'"):
        build_model(C, S, A, backbone="mobilenetv2", weights=broken, input_shape=IMAGE_SHAPE, units=4)


@pytest.mark.slow
@pytest.mark.skipif(not LOCAL_RESNET50.is_file(), reason=f"{LOCAL_RESNET50} not present "
                    "(shared/tools/get_resnet50_imagenet.sh writes it)")
def test_local_resnet50_weights_file_loads_into_the_backbone():
    model = build_model(C, S, A, weights=str(LOCAL_RESNET50), input_shape=(64, 64, 3), units=8)
    reference = keras.applications.ResNet50(include_top=False, pooling="avg", weights=None,
                                            input_shape=(64, 64, 3))
    loaded = backbone_model(model).get_layer("conv1_conv").get_weights()[0]
    assert not np.allclose(loaded, reference.get_layer("conv1_conv").get_weights()[0])
    pretrained = keras.applications.ResNet50(include_top=False, pooling="avg", weights=str(LOCAL_RESNET50),
                                             input_shape=(64, 64, 3))
    np.testing.assert_array_equal(loaded, pretrained.get_layer("conv1_conv").get_weights()[0])


def _write_legacy_h5(path: pathlib.Path, model: keras.Model) -> None:
    """The Keras 2 ``.h5`` weights layout (one group per layer, ``weight_names`` in order), written with h5py."""
    import h5py

    with h5py.File(path, "w") as weights_file:
        weights_file.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        weights_file.attrs["backend"], weights_file.attrs["keras_version"] = b"tensorflow", b"2.15.0"
        for layer in model.layers:
            group = weights_file.create_group(layer.name)
            names = [f"{layer.name}/weight_{index}:0" for index in range(len(layer.weights))]
            group.attrs["weight_names"] = [name.encode() for name in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)


def _write_backbone_weights(path: pathlib.Path, name: str) -> keras.Model:
    """A randomly initialised notop backbone saved to ``path``: Keras-3 ``.weights.h5`` or legacy ``.h5``
    (the layout of Keras's downloads and of shared/tools/get_resnet50_imagenet.sh)."""
    source = BACKBONES[name].constructor(include_top=False, pooling="avg", weights=None,
                                         input_shape=IMAGE_SHAPE)
    if path.name.endswith(".weights.h5"):
        source.save_weights(path)
    else:
        _write_legacy_h5(path, source)
    return source


@pytest.mark.parametrize("file_name", ["notop.weights.h5", "notop.h5"])
def test_local_weights_file_is_loaded_into_the_backbone(tmp_path, file_name):
    source = _write_backbone_weights(tmp_path / file_name, "mobilenetv2")
    model = build_model(C, S, A, backbone="mobilenetv2", weights=tmp_path / file_name,
                        input_shape=IMAGE_SHAPE, units=4)
    loaded = backbone_model(model).get_weights()
    assert len(loaded) == len(source.get_weights())
    for expected, actual in zip(source.get_weights(), loaded):
        np.testing.assert_array_equal(actual, expected)


def test_small_cnn_refuses_imagenet_weights_it_does_not_have():
    with pytest.raises(ValueError, match="small_cnn is built without a top, average-pooled and randomly"):
        build_model(C, S, A, backbone="small_cnn", weights="imagenet", input_shape=IMAGE_SHAPE)


# ---- the recipe's heads: linear, input BatchNorm, build_model_from_config ------------------------

def test_linear_head_is_one_output_dense_per_level_on_the_features():
    model = build_head_model(C, S, A, feature_dim=8, head="linear", dropout=0.0)
    assert model.count_params() == (8 + 1) * (C + S + A)
    outputs = model.predict(np.random.default_rng(0).normal(size=(5, 8)).astype("float32"), verbose=0)
    outputs = outputs if isinstance(outputs, dict) else dict(zip(model.output_names, outputs))
    assert [outputs[level].shape for level in LEVELS] == [(5, C), (5, S), (5, A)]
    np.testing.assert_allclose(outputs["subcategory"].sum(axis=1), 1.0, rtol=1e-4)
    assert ((outputs["attributes"] > 0) & (outputs["attributes"] < 1)).all()


def test_linear_head_equals_softmax_of_its_dense_weights():
    model = build_head_model(C, S, A, feature_dim=6, head="linear", dropout=0.2)
    features = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    kernel, bias = model.get_layer("subcategory").get_weights()
    logits = features @ kernel + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    outputs = model(features, training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs["subcategory"]), expected, rtol=1e-4, atol=1e-6)


def test_input_batchnorm_sits_between_features_and_every_head():
    for head in ("linear", "independent", "message_passing"):
        model = build_head_model(C, S, A, feature_dim=8, units=4, head=head, input_norm="batchnorm")
        norm = model.get_layer("input_norm")
        assert isinstance(norm, keras.layers.BatchNormalization)
        plain = build_head_model(C, S, A, feature_dim=8, units=4, head=head)
        assert model.count_params() == plain.count_params() + 4 * 8


def test_unknown_input_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown input_norm 'layernorm'"):
        build_head_model(C, S, A, feature_dim=8, input_norm="layernorm")


def test_build_model_from_config_reads_the_model_section_and_copies_the_head():
    from types import SimpleNamespace

    from fashion_hier.config import TrainConfig
    from fashion_hier.models import build_head_model_from_config, build_model_from_config

    config = TrainConfig.from_dict({"data": {"image_size": [32, 32]},
                                    "model": {"backbone": "small_cnn", "weights": None, "head": "linear",
                                              "input_norm": "batchnorm", "dropout": 0.0}})
    label_space = SimpleNamespace(num_categories=C, num_subcategories=S, num_attributes=A)
    model = build_model_from_config(config, label_space)
    head = build_head_model_from_config(config, label_space, feature_dim=backbone_model(model).output.shape[-1])
    assert model.input.shape[1:] == (32, 32, 3) and model.get_layer("input_norm") is not None
    assert copy_head_weights(head, model) == 4  # input_norm and the three outputs
