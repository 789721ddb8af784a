"""Outline tracing: the polygons of GDAL's polygonization, valid, the same in any stripes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage
from shapely.geometry import shape

from glaciermap.products.outlines_stream import CompleteComponents, StreamLabeler
from glaciermap.products.trace import RING_COST, RingTracer, trace_labels, trace_pieces

T = Affine(10.0, 0.0, 400_000.0, 0.0, -10.0, 4_000_000.0)


def _gdal(labels: np.ndarray, n: int) -> list[shapely.Geometry]:
    parts: dict[int, list[shapely.Geometry]] = {}
    for geom, value in rasterio.features.shapes(labels, mask=labels > 0, transform=T):
        parts.setdefault(int(value), []).append(shape(geom))
    return [shapely.make_valid(shapely.union_all(parts[k])) for k in range(1, n + 1)]


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    masks = [rng.random(tuple(rng.integers(1, 25, 2))) < rng.uniform(0.2, 0.8) for _ in range(150)]
    checker = np.indices((9, 9)).sum(axis=0) % 2 == 0  # saddles everywhere, 41 pixels alone
    ring = np.zeros((7, 7), bool)  # one component through a saddle: shell and hole touch
    ring[1, 1:4] = ring[1:4, 1] = ring[3, 1:4] = ring[1:4, 3] = True
    ring[4, 4] = ring[4:6, 4] = ring[5, 2:5] = True
    ring[3:6, 2] = True
    return [*masks, checker, ring, np.ones((3, 4), bool), np.zeros((4, 3), bool)]


@pytest.mark.parametrize("mask", _masks())
def test_polygons_are_gdals_valid_and_the_pixel_area(mask: np.ndarray) -> None:
    labels, n = ndimage.label(mask)
    labels = labels.astype(np.int32)
    polys = trace_labels(labels, T)
    assert len(polys) == n
    for k, (ours, ref) in enumerate(zip(polys, _gdal(labels, n), strict=True), start=1):
        assert ours.geom_type == "Polygon" and ours.is_valid, shapely.is_valid_reason(ours)
        assert ours.area == pytest.approx(np.count_nonzero(labels == k) * 100.0, abs=1e-6)
        assert ours.symmetric_difference(ref).area == pytest.approx(0.0, abs=1e-6)


def test_saddle_of_one_component_splits_into_shell_and_touching_hole() -> None:
    mask = _masks()[-3]
    labels, n = ndimage.label(mask)
    assert n == 1  # the two pixels at the saddle (3, 3)-(4, 4) are joined elsewhere
    (poly,) = trace_labels(labels.astype(np.int32), T)
    # the pixel (2, 2) is a hole; (4, 3) is one that meets the outside at the saddle point
    assert len(poly.interiors) == 2 and poly.is_valid
    touching = [shapely.LinearRing(r).intersection(poly.exterior) for r in poly.interiors]
    assert sorted(g.geom_type for g in touching if not g.is_empty) == ["Point"]
    assert poly.area == pytest.approx(mask.sum() * 100.0)


def test_stripes_give_the_whole_array_polygons_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        labels, n = ndimage.label(mask)
        whole = trace_labels(labels.astype(np.int32), T)
        for rows in (1, 2, 5, 16):
            labeler, tracer = StreamLabeler((h, w), bbox=False), RingTracer((h, w))
            for r0 in range(0, h, rows):
                lab, _ = labeler.add(r0, mask[r0 : r0 + rows])
                tracer.add(r0, lab, labeler.bases[r0])
            _, comp = labeler.finish()
            comps, polys = tracer.finish(comp, T)
            assert np.array_equal(comps, np.arange(n))
            assert shapely.equals_exact(polys, whole, 0.0).all()


def _taken_in_stripes(
    mask: np.ndarray, rows: int, min_px: float
) -> tuple[list[int], list[shapely.Geometry], list[float], list[int]]:
    """Components traced and taken out as soon as they are complete and numbered, after
    every stripe: their numbers, polygons, mean values (of the row index) and the vertices
    held after each stripe."""
    h, w = mask.shape
    labeler, tracer = StreamLabeler((h, w), bbox=False), RingTracer((h, w))
    parts = CompleteComponents(min_px)
    got: tuple[list[int], list[shapely.Geometry], list[float], list[int]] = ([], [], [], [])
    for r0 in range(0, h, rows):
        lab, k = labeler.add(r0, mask[r0 : r0 + rows])
        tracer.add(r0, lab, labeler.bases[r0])
        value = np.broadcast_to(np.arange(r0, r0 + len(lab))[:, None], lab.shape)
        sums = np.bincount(lab.ravel(), weights=value.ravel(), minlength=k + 1)[1:]
        pairs = labeler.last_pairs if labeler.last_pairs_at == r0 else np.zeros((2, 0), np.int64)
        last = None if r0 + rows >= h else lab[-1][lab[-1] > 0] + labeler.bases[r0] - 1
        parts.add(labeler.bases[r0], labeler.last_stats[:, 0], sums, pairs, last)
        for comps, polys in tracer.take_chunks(parts.status, T, (0, 0), 50):
            got[0].extend(comps.tolist())
            got[1].extend(polys)
            got[2].extend(parts.mean[comps].tolist())
        got[3].append(tracer.pending)
    assert tracer.pending == 0
    return got


def test_complete_components_taken_stripe_by_stripe_are_the_whole_arrays() -> None:
    # random masks are full of saddles between two components, one complete before the other
    rng = np.random.default_rng(5)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        labels, n = ndimage.label(mask)
        sizes = np.bincount(labels.ravel())[1:]
        means = ndimage.mean(np.indices((h, w))[0], labels, np.arange(1, n + 1))
        for min_px in (0, 3):
            kept = np.flatnonzero(sizes >= min_px)
            whole = trace_labels(labels.astype(np.int32), T)[kept]
            for rows in (1, 2, 5, 16):
                comps, polys, mean, _ = _taken_in_stripes(mask, rows, min_px)
                assert comps == list(range(len(kept)))
                assert shapely.equals_exact(np.asarray(polys, object), whole, 0.0).all()
                np.testing.assert_allclose(mean, means[kept], rtol=1e-12)


def test_outlines_held_are_those_of_components_still_growing() -> None:
    # a tall raster of small patches: what is held after a stripe does not grow with height
    rng = np.random.default_rng(2)
    mask = ndimage.binary_opening(rng.random((2000, 60)) < 0.5)
    _, polys, _, held = _taken_in_stripes(mask, 20, 0)
    total = int(sum(shapely.get_num_coordinates(np.asarray(polys, object))))
    assert total > 20_000
    assert max(held) < 0.02 * total
    # with one patch open from the first to the last row, the rest waits for its number
    mask[:, 0] = True
    _, _, _, held = _taken_in_stripes(mask, 20, 0)
    assert held[len(held) // 2] > 0.3 * total


@pytest.mark.parametrize("max_vertices", [1, 40, 150, 1 << 20])
def test_chunks_hold_whole_components_in_order_as_one_finish(max_vertices: int) -> None:
    rng = np.random.default_rng(max_vertices)
    mask = ndimage.binary_opening(rng.random((60, 50)) < 0.45)
    mask[20:40, 10:40] = True  # one larger component, with holes
    mask[25:27, 15:17] = mask[30:33, 30:31] = False
    labels, n = ndimage.label(mask)
    whole = trace_labels(labels.astype(np.int32), T)
    tracer = RingTracer(mask.shape)
    tracer.add(0, labels.astype(np.int32), 1)
    component_of = np.arange(-1, n, dtype=np.int64)
    component_of[3] = -1  # one left out
    chunks = list(tracer.finish_chunks(component_of, T, (0, 0), max_vertices))
    comps = np.concatenate([c for c, _ in chunks])
    assert comps.tolist() == [c for c in range(n) if c != 2]
    polys = np.concatenate([p for _, p in chunks])
    assert shapely.equals_exact(polys, whole[comps], 0.0).all()

    def vertices(p: np.ndarray) -> np.ndarray:  # the tracer's: closing points not counted
        rings = shapely.get_num_interior_rings(p) + 1
        return shapely.get_num_coordinates(p) - rings + RING_COST * rings

    per_chunk = [vertices(p) for _, p in chunks]
    total = sum(int(v.sum()) for v in per_chunk)
    if max_vertices == 1 << 20:
        assert len(chunks) == 1
    else:  # about max_vertices each: every chunk but its last component is below it
        assert 2 < len(chunks) <= total // max_vertices + 1
        assert all(int(v[:-1].sum()) < max_vertices for v in per_chunk)


def test_left_out_components_are_dropped_and_stripes_must_come_in_order() -> None:
    mask = np.zeros((6, 6), bool)
    mask[0:2, 0:2] = mask[3:6, 3:6] = True
    labels, _ = ndimage.label(mask)
    tracer = RingTracer(mask.shape)
    tracer.add(0, labels.astype(np.int32), 1)
    comps, polys = tracer.finish(np.array([-1, -1, 0]), T)  # id 1 left out, id 2 -> 0
    assert comps.tolist() == [0] and polys[0].area == pytest.approx(900.0)
    with pytest.raises(ValueError, match="expected row 0"):
        RingTracer((4, 4)).add(2, np.zeros((2, 4), np.int32), 1)


def test_pieces_touching_and_in_parts_and_windows_on_the_grid() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, (30, 40)).astype(np.int32)  # 3 labels, touching, in parts
    labels = np.asarray(ndimage.median_filter(labels, 3), np.int32)
    polys = trace_pieces(labels, T, (0, 0), 3)
    for k, (ours, ref) in enumerate(zip(polys, _gdal(labels, 3), strict=True), start=1):
        assert ours.is_valid and ours.geom_type in ("Polygon", "MultiPolygon")
        assert ours.area == pytest.approx(np.count_nonzero(labels == k) * 100.0)
        assert ours.symmetric_difference(ref).area == pytest.approx(0.0, abs=1e-6)
    assert any(p.geom_type == "MultiPolygon" for p in polys)
    # a window at its grid origin gives the whole grid's coordinates, bit for bit
    padded = np.zeros((37, 45), np.int32)
    padded[5:35, 3:43] = labels
    grid = trace_pieces(padded, T, (0, 0), 3)
    window = trace_pieces(labels, T, (5, 3), 3)
    assert shapely.equals_exact(grid, window, 0.0).all()
    assert trace_pieces(labels, T, (0, 0), 5)[3:].tolist() == [None, None]  # no pixels


def test_shells_counter_clockwise_holes_clockwise_on_the_map_as_gdal() -> None:
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    mask[3, 3] = False
    (poly,) = trace_labels(ndimage.label(mask)[0].astype(np.int32), T)
    assert poly.exterior.is_ccw and not poly.interiors[0].is_ccw
    (ref,) = _gdal(ndimage.label(mask)[0].astype(np.int32), 1)
    assert ref.exterior.is_ccw == poly.exterior.is_ccw


def test_touching_labels_are_refused_and_empty_stripes_skipped() -> None:
    with pytest.raises(ValueError, match="touch"):
        trace_labels(np.array([[1, 1, 2, 2]], np.int32), T)
    tracer = RingTracer((2, 3))
    tracer.add(0, np.zeros((0, 3), np.int32), 1)
    tracer.add(0, np.array([[0, 1, 0], [0, 1, 1]], np.int32), 1)
    comps, polys = tracer.finish(np.array([-1, 0]), T)
    assert comps.tolist() == [0] and polys[0].area == pytest.approx(300.0)
