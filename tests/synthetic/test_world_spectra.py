"""Spectral statistics of the synthetic world's rendered classes against real late-summer
glacier-site values (issue 14: "A synthetic world as hard as the real one").

One world of the demo's size and geography (20 x 20 km + 1 km margin, the seed and ELAs of the
``demo`` region) is rendered at 10 m, block by block, for Sentinel-2 (2021, ELA 5000 m) and
Landsat 5 TM (2005, ELA 4800 m); every second sample of every second row is kept. Targets and
tolerances (reflectance; bands blue green red nir swir1 swir2 = B2 B3 B4 B8 B11 B12 or TM1-5, 7):

* snow: visible medians 0.65-0.95, SWIR1 median 0.01-0.12 (real ~0.02, 5-95 % ~0.01-0.12),
  NDSI median >= 0.88 and mostly (> 60 %) within 0.9-1.0 but spread (5th percentile < 0.85),
  visible 95th percentile below 1.0 (gentle glacier surfaces);
* firn: visible 0.45-0.75, SWIR1 <= 0.04;
* bare ice: visible medians 0.25-0.45 and nearly flat (blue and red within 15 % of green),
  5-95 % spread of the visible wider than 0.2, NIR 0.15-0.32, SWIR1 <= 0.035;
* rock: blue 0.08-0.16, green 0.10-0.19, red 0.11-0.20, NIR 0.12-0.22, SWIR1 0.16-0.28,
  SWIR2/SWIR1 median 0.85-1.05, NDSI median -0.35..-0.10 with a tail towards 0 (95th
  percentile > -0.10);
* debris-covered ice: rock-like (NDSI median -0.35..-0.05, every band within 25 % of rock);
* lakes (turbid): green > blue, green > red, NIR < 0.06, SWIR1 < 0.03; 0.2-1.5 % of the world;
* snow in cast shadow keeps 58/49/40/33 % (+-0.1) of its sunlit blue/green/red/NIR;
* glacier surface slope median < 25 degrees;
* NDSI: snow and ice overlap (no threshold separates them better than 90 %), glacier surfaces
  and rock/debris/vegetation/water overlap a little (a threshold gets 85-99.5 % right).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from glaciermap.core.grid import RegionGrid
from glaciermap.synthetic import world as W

BLOCK = 512
C = W.CLASS_CODES
SHADED_TARGET = (0.58, 0.49, 0.40, 0.33)  # blue, green, red, nir
SENSORS = {"sentinel-2": 2021, "landsat-5": 2005}
SUN = {"sentinel-2": (47.5, 140.0), "landsat-5": (47.0, 128.0)}  # as demo.generate_world


@pytest.fixture(scope="module")
def world() -> W.World:
    grid = RegionGrid.from_bounds("EPSG:32643", (449000, 4012000, 471000, 4034000), 10)
    return W.build_world(grid, 42_002, {2005: 4800.0, 2021: 5000.0})


def _render(world: W.World, sensor: str) -> dict[str, Any]:
    year = SENSORS[sensor]
    sc = W.scene(world, 7, *SUN[sensor], cloud_fraction=0.0, sensor=sensor)
    left, bottom, right, top = world.grid.bounds
    pad = 2 * world.grid.resolution  # the physics grid's margin
    xs = np.arange(left + pad + 5, right - pad, 10.0)
    ys = np.arange(top - pad - 5, bottom + pad, -10.0)
    refl, cls, shade, glacier, slope = [], [], [], [], []
    for r0 in range(0, ys.size, BLOCK):
        for c0 in range(0, xs.size, BLOCK):
            x, y = xs[c0 : c0 + BLOCK], ys[r0 : r0 + BLOCK]
            ob = W.render_optical(world, year, sc, x, y)
            s = world.surface(year, x, y)
            keep = (slice(None, None, 2), slice(None, None, 2))
            refl.append(ob.refl[:, keep[0], keep[1]].reshape(6, -1))
            cls.append(ob.classes[keep].ravel())
            shade.append((world.physics_at(sc.cast, x, y) > 0.5)[keep].ravel())
            glacier.append(s.glacier[keep].ravel())
            slope.append(s.slope[keep].ravel())
    return {
        "refl": np.concatenate(refl, axis=1),
        "classes": np.concatenate(cls),
        "shade": np.concatenate(shade),
        "glacier": np.concatenate(glacier),
        "slope": np.concatenate(slope),
    }


@pytest.fixture(scope="module", params=list(SENSORS))
def rendered(request: pytest.FixtureRequest, world: W.World) -> dict[str, Any]:
    out = _render(world, request.param)
    out["sensor"] = request.param
    return out


def _ndsi(r: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray((r[1] - r[4]) / np.maximum(r[1] + r[4], 1e-6))


def _class(rd: dict[str, Any], name: str) -> NDArray[np.float32]:
    return np.asarray(rd["refl"][:, rd["classes"] == C[name]])


def _best_threshold_accuracy(pos: NDArray[Any], neg: NDArray[Any]) -> float:
    """The best balanced accuracy (mean of the shares of ``pos`` and of ``neg`` classified
    right) of a single threshold, ``pos`` above it."""
    values = np.concatenate([pos, neg])
    truth = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    order = np.argsort(values, kind="stable")
    t = truth[order]
    # Threshold after position k: negatives right below it, positives right above it.
    neg_below = np.concatenate([[0], np.cumsum(~t)])
    pos_above = pos.size - np.concatenate([[0], np.cumsum(t)])
    return float((0.5 * (neg_below / neg.size + pos_above / pos.size)).max())


def _report(rd: dict[str, Any]) -> None:
    print(f"\n{rd['sensor']}: class share, median blue green red nir swir1 swir2, NDSI p5/50/95")
    for name, code in C.items():
        r = _class(rd, name)
        if r.shape[1]:
            med = " ".join(f"{v:.3f}" for v in np.median(r, axis=1))
            nd = " ".join(f"{v:+.2f}" for v in np.percentile(_ndsi(r), [5, 50, 95]))
            print(f"  {name:10s} {(rd['classes'] == code).mean():.4f}  {med}  {nd}")


def test_class_medians_match_targets(rendered: dict[str, Any]) -> None:
    _report(rendered)
    snow, firn, ice = (_class(rendered, n) for n in ("snow", "firn", "ice"))
    rock, debris, water = (_class(rendered, n) for n in ("rock", "debris", "water"))
    med = {n: np.median(a, axis=1) for n, a in [("snow", snow), ("firn", firn), ("ice", ice)]}
    med |= {n: np.median(a, axis=1) for n, a in [("rock", rock), ("debris", debris)]}
    med["water"] = np.median(water, axis=1)
    # Snow: bright in the visible, dark in the SWIR, NDSI mostly 0.9-1.0 with a spread.
    assert ((med["snow"][:3] > 0.65) & (med["snow"][:3] < 0.95)).all(), med["snow"]
    assert 0.5 < med["snow"][3] < 0.8
    assert 0.01 <= med["snow"][4] <= 0.12 and med["snow"][5] <= 0.1
    nd_snow = _ndsi(snow)
    assert np.median(nd_snow) >= 0.88
    assert ((nd_snow >= 0.9) & (nd_snow <= 1.0)).mean() > 0.6
    assert np.percentile(nd_snow, 5) < 0.85
    swir5, swir95 = np.percentile(snow[4], [5, 95])
    assert swir5 < 0.015 and 0.05 < swir95 < 0.2
    # Firn: darker than snow, SWIR ~0.02.
    assert ((med["firn"][:3] > 0.45) & (med["firn"][:3] < 0.75)).all()
    assert med["firn"][4] <= 0.04
    # Bare ice: ~0.35 and flat in the visible, a wide spread from dirty to clean ice.
    assert ((med["ice"][:3] > 0.25) & (med["ice"][:3] < 0.45)).all(), med["ice"]
    assert abs(med["ice"][0] - med["ice"][1]) < 0.15 * med["ice"][1]
    assert abs(med["ice"][2] - med["ice"][1]) < 0.15 * med["ice"][1]
    vis5, vis95 = np.percentile(ice[:3].mean(axis=0), [5, 95])
    assert vis95 - vis5 > 0.2, (vis5, vis95)
    assert 0.15 < med["ice"][3] < 0.32 and med["ice"][4] <= 0.035
    # Rock: flat, slowly rising to the SWIR; NDSI ~ -0.23 with a tail towards 0.
    lo = np.array([0.08, 0.10, 0.11, 0.12, 0.16])
    hi = np.array([0.16, 0.19, 0.20, 0.22, 0.28])
    assert ((med["rock"][:5] > lo) & (med["rock"][:5] < hi)).all(), med["rock"]
    assert 0.85 <= np.median(rock[5] / np.maximum(rock[4], 1e-6)) <= 1.05
    nd_rock = _ndsi(rock)
    assert -0.35 <= np.median(nd_rock) <= -0.1
    assert np.percentile(nd_rock, 95) > -0.1
    # Debris-covered ice stays optically rock-like.
    assert -0.35 <= np.median(_ndsi(debris)) <= -0.05
    assert (np.abs(med["debris"] - med["rock"]) < 0.25 * med["rock"]).all()
    # Turbid lakes: a green peak, dark in the NIR and SWIR.
    w = med["water"]
    assert w[1] > w[0] and w[1] > w[2] and w[3] < 0.06 and w[4] < 0.03, w
    assert 0.1 < w[1] < 0.22
    if (rendered["classes"] == C["vegetation"]).sum() > 100:
        v = np.median(_class(rendered, "vegetation"), axis=1)
        assert v[3] > 2 * v[2]  # NDVI > 0.33


def test_shaded_snow_keeps_blue_rich_sky_light(rendered: dict[str, Any]) -> None:
    snow = (rendered["classes"] == C["snow"]) & rendered["glacier"]
    shaded, sunlit = snow & rendered["shade"], snow & ~rendered["shade"]
    assert shaded.sum() > 500
    ratio = np.median(rendered["refl"][:, shaded], axis=1) / np.median(
        rendered["refl"][:, sunlit], axis=1
    )
    print(f"\n{rendered['sensor']}: shaded/sunlit snow", np.round(ratio, 2))
    np.testing.assert_allclose(ratio[:4], SHADED_TARGET, atol=0.1)
    assert (np.diff(ratio[:4]) < 0).all()  # the sky is blue


def test_glacier_surfaces_are_gentle(rendered: dict[str, Any]) -> None:
    slope = rendered["slope"][rendered["glacier"]]
    print(f"\nglacier slope median {np.median(slope):.1f}, 90th {np.percentile(slope, 90):.1f}")
    assert np.median(slope) < 25.0
    snow_vis = _class(rendered, "snow")[:3]
    assert np.percentile(snow_vis, 95) < 1.0  # snow above 1.0 is rare
    assert (rendered["classes"][rendered["glacier"]] == C["debris"]).mean() > 0.02


def test_ndsi_classes_overlap_like_real_ones(rendered: dict[str, Any]) -> None:
    nd = _ndsi(rendered["refl"])
    cls = rendered["classes"]
    snow, ice = nd[cls == C["snow"]], nd[cls == C["ice"]]
    # Snow and ice overlap: no NDSI threshold separates them well.
    acc_snow_ice = _best_threshold_accuracy(snow, ice)
    print(f"\n{rendered['sensor']}: snow vs ice, best NDSI threshold {acc_snow_ice:.3f}")
    assert acc_snow_ice < 0.8
    assert (ice > np.percentile(snow, 25)).mean() > 0.2
    # Snow/firn/ice vs the rest: mostly separable, but not perfectly (shaded or wet rock,
    # turbid lakes, dirty ice, mixed pixels).
    surf = np.isin(cls, [C["snow"], C["firn"], C["ice"]])
    acc = _best_threshold_accuracy(nd[surf], nd[~surf])
    print(f"\n{rendered['sensor']}: best single-NDSI-threshold accuracy {acc:.4f}")
    assert 0.85 < acc < 0.995
    rock = nd[cls == C["rock"]]
    assert (rock > 0.4).mean() < 0.05 and (np.concatenate([snow, ice]) < 0.4).mean() < 0.1


def test_lakes_are_turbid_and_common(world: W.World) -> None:
    share = {y: float((ep.lake > 0.5).mean()) for y, ep in world.epochs.items()}
    print("\nlake share of the world", share)
    assert 0.002 < share[2021] < 0.015 and 0 < share[2005] < share[2021]


def test_class_map_and_seasonal_snow(world: W.World) -> None:
    left, _, _, top = world.grid.bounds
    x = left + 3000 + 10.0 * np.arange(400) + 5
    y = top - 3000 - 10.0 * np.arange(300) - 5
    cm = W.class_map(world, 2021, x, y)
    assert cm.dtype == np.uint8 and cm.shape == (300, 400)
    sc = W.scene(world, 3, 47.5, 140.0, cloud_fraction=0.0)
    assert np.array_equal(cm, W.render_optical(world, 2021, sc, x, y).classes)
    assert np.array_equal(cm > C["rock"], cm != C["rock"])  # codes as CLASS_CODES
    # More seasonal snow off the glaciers with a larger amount.
    gx = left + 2000 + 20.0 * np.arange(900)
    gy = top - 2000 - 20.0 * np.arange(900)
    off = []
    for amount in (0.0, 0.5, 1.0):
        w = dataclasses.replace(
            world,
            epochs={
                **world.epochs,
                2021: dataclasses.replace(world.epochs[2021], seasonal_snow=amount),
            },
        )
        s = w.surface(2021, gx, gy)
        off.append(float(((s.classes == C["snow"]) & ~s.glacier).mean()))
    assert off[0] < off[1] < off[2] and off[2] > 0.05, off


def test_rendering_does_not_depend_on_the_block(world: W.World) -> None:
    sc = W.scene(world, 3, 47.5, 140.0, cloud_fraction=0.1, sensor="sentinel-2")
    left, _, _, top = world.grid.bounds
    x = left + 6000 + 10.0 * np.arange(300) + 5
    y = top - 9000 - 10.0 * np.arange(200) - 5
    whole = W.render_optical(world, 2021, sc, x, y)
    parts = [
        W.render_optical(world, 2021, sc, x[a:b], y[c:d])
        for a, b, c, d in [(0, 117, 0, 200), (117, 300, 0, 83), (117, 300, 83, 200)]
    ]
    np.testing.assert_allclose(parts[0].refl, whole.refl[:, :, :117], atol=1e-5)
    np.testing.assert_allclose(parts[1].refl, whole.refl[:, :83, 117:], atol=1e-5)
    np.testing.assert_allclose(parts[2].refl, whole.refl[:, 83:, 117:], atol=1e-5)
    assert np.array_equal(parts[2].classes, whole.classes[83:, 117:])
