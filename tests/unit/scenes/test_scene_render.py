"""The renderer and the pixel codec: deterministic images, painter's-order occlusion, visible
boxes, the disparity map, and materials + depth recovered exactly from the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from esplora.scenes.codec import decode, encode, instances
from esplora.scenes.layout import random_scene
from esplora.scenes.model import LEVELS, Scene, SceneError, SceneObject
from esplora.scenes.render import background_maps, render
from esplora.scenes.sprites import BACKGROUND, SPRITES, materials


def _obj(
    label: str, box: tuple[int, int, int, int], level: int, kind: str | None = None
) -> SceneObject:
    sprite = SPRITES[label]
    return SceneObject(
        label, box, level, next(iter(sprite.colours)), kind or next(iter(sprite.kinds))
    )


def test_every_material_has_its_own_channel_differences() -> None:
    found = materials()
    pairs = {(m.rgb[0] - m.rgb[1], m.rgb[1] - m.rgb[2]) for m in found}
    assert len(pairs) == len(found)
    assert {m.label for m in found} == {None, *SPRITES}
    assert [m.part for m in found[: len(BACKGROUND)]] == list(BACKGROUND)


def test_codec_round_trips_every_material_at_every_level() -> None:
    n = len(materials())
    material = np.repeat(np.arange(n)[:, None], LEVELS, axis=1)
    level = np.repeat(np.arange(LEVELS)[None, :], n, axis=0)
    decoded = decode(encode(material, level))
    assert np.array_equal(decoded.material, material)
    assert np.array_equal(decoded.level, level)


def test_pixels_no_material_explains_decode_as_unknown() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 7], [3, 3, 200]]], dtype=np.uint8)
    decoded = decode(rgb)
    assert (decoded.material == -1).all() and (decoded.label == -1).all()


@pytest.mark.parametrize("label", sorted(SPRITES))
def test_an_unoccluded_sprite_fills_its_layout_box(label: str) -> None:
    for kind in SPRITES[label].kinds:
        for w, h in ((9, 7), (40, 31), (120, 96)):
            obj = _obj(label, (20, 30, 20 + w, 30 + h), 40, kind)
            shown = render(Scene(200, 160, (obj,)))
            assert shown.boxes[0] == obj.box
            (found,) = instances(decode(np.asarray(shown.image)))
            assert (found.label, found.level, found.box) == (label, 40, obj.box)
            assert found.pixels == shown.pixels[0] == shown.full_pixels[0]


def test_rendering_is_deterministic() -> None:
    scene = random_scene(np.random.default_rng(11), 5)
    again = random_scene(np.random.default_rng(11), 5)
    assert scene == again
    a, b = render(scene), render(again)
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.disparity, b.disparity)


def test_nearer_objects_cover_farther_ones_and_visible_boxes_shrink() -> None:
    far = _obj("building", (40, 20, 120, 120), 20)
    near = _obj("bus", (30, 90, 130, 125), 50)  # hides the building's lower quarter
    alone = {o: render(Scene(200, 160, (o,))).object_map == 0 for o in (far, near)}
    assert (alone[far] & alone[near]).any()
    for order in ((far, near), (near, far)):  # painter's order follows depth, not list order
        shown = render(Scene(200, 160, order))
        i_far, i_near = order.index(far), order.index(near)
        assert np.array_equal(shown.object_map == i_near, alone[near])
        assert np.array_equal(shown.object_map == i_far, alone[far] & ~alone[near])
        assert (shown.disparity[alone[near]] == near.depth).all()
        rows, cols = np.nonzero(alone[far] & ~alone[near])
        seen = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
        assert shown.boxes[i_near] == near.box and shown.boxes[i_far] == seen != far.box
        assert shown.pixels[i_far] < shown.full_pixels[i_far]
    cat, bus = _obj("cat", (50, 80, 62, 90), 10), _obj("bus", (20, 40, 140, 120), 60)
    hidden = render(Scene(200, 160, (cat, bus)))
    assert hidden.boxes[0] is None and hidden.pixels[0] == 0


def test_disparity_runs_from_the_sky_to_the_nearest_road_row() -> None:
    scene = Scene(120, 90, ())
    shown = render(scene)
    assert shown.disparity[0].max() == 0.0 and (shown.disparity[-1] == 1.0).all()
    _, levels = background_maps(scene)
    assert np.array_equal(shown.disparity, levels / (LEVELS - 1))
    decoded = decode(np.asarray(shown.image))
    assert np.array_equal(decoded.level, levels)  # the background's depth is in its pixels too
    assert np.diff(shown.disparity[:, 0]).min() >= 0  # nothing gets farther going down


def test_objects_and_levels_are_validated() -> None:
    with pytest.raises(SceneError):
        SceneObject("car", (10, 10, 10, 20), 3, "red", "sedan")
    with pytest.raises(SceneError):
        SceneObject("car", (10, 10, 20, 20), LEVELS, "red", "sedan")
    with pytest.raises(SceneError):
        Scene(8, 8, ())
