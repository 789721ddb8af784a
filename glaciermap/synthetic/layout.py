"""The demo worlds' layout: what each world of a configuration is and which files it writes,
known before anything is generated (the workflow declares them as outputs at parse time).
Light on purpose: no world physics, no rendering, no raster warping, so parsing the workflow
imports none of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyproj import Transformer

from glaciermap.core.errors import ConfigError
from glaciermap.core.grid import RegionGrid

WORLD_RES_M = 10.0
"""Spacing of the rendered world (that of Sentinel-2's finest bands)."""

MAX_PHYS_CELLS = 1_500_000
"""Most cells of a world's physics grid (bounds memory whatever the world's size)."""

SEASONAL_SNOW = 0.3
"""Default amount of seasonal snow off the glaciers (see ``world.EpochState``)."""

S2_BANDS = {  # band id -> (common name, resolution m)
    "B02": ("blue", 10),
    "B03": ("green", 10),
    "B04": ("red", 10),
    "B08": ("nir", 10),
    "B11": ("swir1", 20),
    "B12": ("swir2", 20),
}
TM_BANDS = {
    "SR_B1": "blue",
    "SR_B2": "green",
    "SR_B3": "red",
    "SR_B4": "nir",
    "SR_B5": "swir1",
    "SR_B7": "swir2",
}


@dataclass(frozen=True)
class EpochSpec:
    """One epoch of the demo world."""

    year: int
    sensor: str  # "sentinel-2" or "landsat-5"
    # None only in a world over a real DEM: then the median elevation of its glacier cells.
    ela_m: float | None
    optical_dates: tuple[str, ...]
    sar_dates: tuple[str, ...] = ()
    sar_pols: tuple[str, ...] = ("VV", "VH")
    coherence: bool = True
    cloud_fraction: float = 0.1
    inventory: bool = True
    # Seasonal snow off the glaciers, 0..1 (see glaciermap.synthetic.world.EpochState): its
    # snow line lies 350 - 500 * seasonal_snow m above the ELA; config key ``seasonal_snow``.
    seasonal_snow: float = SEASONAL_SNOW
    # Worlds over real outlines: the epoch's glaciers shrunk by this inward buffer (m).
    retreat_m: float = 0.0


@dataclass(frozen=True)
class WorldSpec:
    """A demo region: its grid and the epochs to write."""

    region: str
    grid: RegionGrid
    seed: int
    epochs: tuple[EpochSpec, ...]
    margin_m: float = 1000.0
    relief_m: tuple[float, float] = (3200.0, 6400.0)
    mass_balance_gradient: float = 0.007  # m w.e. per m elevation per year
    debris_below_ela_m: float = 100.0  # tongues this far below the ELA are debris-covered
    # ELA of the glacier state the DEM shows (None: the largest epoch's); see build_world.
    dem_ela_m: float | None = None
    max_phys_cells: int = MAX_PHYS_CELLS  # size of the physics grid (bounds memory)
    block_px: int = 512  # output blocks rendered at a time (bounds memory)
    # A real DEM and real glacier outlines (config ``dem``, ``outlines``; any CRS) instead of
    # the fractal terrain and the balance-flux glaciers: see glaciermap.synthetic.real_terrain.
    dem_path: str | None = None
    outlines_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def utm_zone(self) -> int:
        """UTM zone number of the grid CRS, from its EPSG code (43 if it has none)."""
        epsg = self.grid.rio_crs.to_epsg() or 32643
        return epsg % 100


# Where the workflow generates demo worlds, whatever a config's data_dir says.
DEMO_DIR = "resources/demo"


def world_specs(config: Mapping[str, Any]) -> list[WorldSpec]:
    """Demo worlds described by a workflow configuration (``demo.worlds`` + ``regions``).

    A world with ``dem`` and ``outlines`` (paths relative to the working directory) is
    rendered over that real DEM with those glacier outlines; its epochs may then leave out
    ``ela_m`` (default: the median elevation of the glacier cells)."""
    demo = config.get("demo") or {}
    specs = []
    for i, (region, world) in enumerate(sorted((demo.get("worlds") or {}).items())):
        reg = config["regions"][region]
        grid = RegionGrid.from_bounds(reg["crs"], reg["bounds"], float(reg["resolution_m"]))
        dem, outlines = world.get("dem"), world.get("outlines")
        if (dem is None) != (outlines is None):
            raise ConfigError(
                f"demo world {region!r} has only one of dem: and outlines:; give both (a real "
                "DEM and its glacier outlines) or neither (a fractal world)"
            )
        epochs = []
        for year, ep in sorted(world["epochs"].items(), key=lambda kv: int(kv[0])):
            if ep.get("ela_m") is None and dem is None:
                raise ConfigError(
                    f"demo world {region!r}, epoch {year}: no ela_m; give the epoch's "
                    "equilibrium-line altitude in m (optional only with dem: and outlines:)"
                )
            epochs.append(
                EpochSpec(
                    year=int(year),
                    sensor=str(ep["sensor"]),
                    ela_m=None if ep.get("ela_m") is None else float(ep["ela_m"]),
                    optical_dates=tuple(str(d) for d in ep["optical_dates"]),
                    sar_dates=tuple(str(d) for d in ep.get("sar_dates", ())),
                    sar_pols=tuple(ep.get("sar_pols", ("VV", "VH"))),
                    coherence=bool(ep.get("coherence", True)),
                    cloud_fraction=float(ep.get("cloud_fraction", 0.1)),
                    inventory=bool(ep.get("inventory", True)),
                    seasonal_snow=float(ep.get("seasonal_snow", SEASONAL_SNOW)),
                    retreat_m=float(ep.get("retreat_m", 0.0)),
                )
            )
        specs.append(
            WorldSpec(
                region=region,
                grid=grid,
                seed=int(demo.get("seed", 0)) * 1000 + int(world.get("seed", i)),
                epochs=tuple(epochs),
                margin_m=float(world.get("margin_m", 1000.0)),
                debris_below_ela_m=float(world.get("debris_below_ela_m", 100.0)),
                dem_ela_m=None if world.get("dem_ela_m") is None else float(world["dem_ela_m"]),
                dem_path=None if dem is None else str(dem),
                outlines_path=None if outlines is None else str(outlines),
            )
        )
    return specs


# --------------------------------------------------------------------------- product names


def _compact(date: str) -> str:
    return date.replace("-", "")


def _s2_tile_id(spec: WorldSpec) -> str:
    return f"T{spec.utm_zone:02d}SDV"


def _s2_product(spec: WorldSpec, date: str, idx: int) -> tuple[str, str]:
    sensing = f"{_compact(date)}T0546{idx:02d}"
    sat = "S2B" if idx % 2 else "S2A"
    name = f"{sat}_MSIL2A_{sensing}_N0500_R048_{_s2_tile_id(spec)}_20230301T101010"
    return name, sensing


def _landsat_product(date: str) -> str:
    return f"LT05_L2SP_150035_{_compact(date)}_20200902_02_T1"


def _dem_tile_name(lat: int, lon: int) -> str:
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"Copernicus_DSM_COG_10_{ns}{abs(lat):02d}_00_{ew}{abs(lon):03d}_00_DEM.tif"


def world_grid(spec: WorldSpec) -> RegionGrid:
    """The 10 m grid of the synthetic world: the region plus a margin, snapped to 10 m."""
    left, bottom, right, top = spec.grid.bounds
    m = spec.margin_m
    r = WORLD_RES_M
    bounds = (
        math.floor((left - m) / r) * r,
        math.floor((bottom - m) / r) * r,
        math.ceil((right + m) / r) * r,
        math.ceil((top + m) / r) * r,
    )
    return RegionGrid.from_bounds(spec.grid.crs, bounds, r)


def _geo_bounds(spec: WorldSpec) -> tuple[float, float, float, float]:
    wg = world_grid(spec)
    inner = (  # keep half a kilometre inside the world so warps never run off its edge
        wg.bounds[0] + 500,
        wg.bounds[1] + 500,
        wg.bounds[2] - 500,
        wg.bounds[3] - 500,
    )
    to_geo = Transformer.from_crs(wg.rio_crs, "EPSG:4326", always_xy=True)
    b = to_geo.transform_bounds(*inner, densify_pts=21)
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def _dem_tiles(spec: WorldSpec) -> list[tuple[int, int]]:
    w, s, e, n = _geo_bounds(spec)
    return [
        (lat, lon)
        for lat in range(math.floor(s), math.floor(n) + 1)
        for lon in range(math.floor(w), math.floor(e) + 1)
    ]


def product_paths(spec: WorldSpec, out_dir: Path | str) -> dict[str, list[Path]]:
    """Every file the world writes, keyed ``"{year}/optical"``, ``"{year}/sar"``, ``"dem"``,
    ``"{year}/inventory"``. Computable without generating anything (for workflow outputs)."""
    out = Path(out_dir)
    paths: dict[str, list[Path]] = {}
    for ep in spec.epochs:
        opt_dir = out / spec.region / str(ep.year) / "optical"
        files: list[Path] = []
        for idx, date in enumerate(ep.optical_dates):
            if ep.sensor == "sentinel-2":
                name, sensing = _s2_product(spec, date, idx)
                tile = _s2_tile_id(spec)
                files.append(opt_dir / name / "MTD_MSIL2A.xml")
                for band, (_, res) in S2_BANDS.items():
                    files.append(opt_dir / name / f"{tile}_{sensing}_{band}_{res}m.tif")
                files.append(opt_dir / name / f"{tile}_{sensing}_SCL_20m.tif")
            elif ep.sensor == "landsat-5":
                name = _landsat_product(date)
                for band in [*TM_BANDS, "QA_PIXEL"]:
                    files.append(opt_dir / name / f"{name}_{band}.TIF")
            else:
                raise ValueError(f"demo sensor {ep.sensor!r} unknown: use sentinel-2 or landsat-5")
        paths[f"{ep.year}/optical"] = files
        sar_dir = out / spec.region / str(ep.year) / "sar"
        sar: list[Path] = []
        for date in ep.sar_dates:
            stem = f"S1A_IW_{_compact(date)}T011520_DVP_RTC20_G_gpuned_5A3C"
            sar.extend(sar_dir / f"{stem}_{pol}.tif" for pol in ep.sar_pols)
            sar.append(sar_dir / f"{stem}_ls_map.tif")
        if ep.coherence:
            for d1, d2 in zip(ep.sar_dates, ep.sar_dates[1:], strict=False):
                sar.append(
                    sar_dir / f"S1AA_{_compact(d1)}T011520_{_compact(d2)}T011520_VVP012_INT40_G_"
                    "ueF_7C1D_corr.tif"
                )
        paths[f"{ep.year}/sar"] = sar
        if ep.inventory:
            paths[f"{ep.year}/inventory"] = [out / "inventory" / f"{spec.region}_{ep.year}.gpkg"]
            paths[f"{ep.year}/debris"] = [
                out / "inventory" / f"{spec.region}_{ep.year}_debris.gpkg"
            ]
    paths["dem"] = [out / "dem" / _dem_tile_name(lat, lon) for lat, lon in _dem_tiles(spec)]
    return paths


def all_product_paths(specs: list[WorldSpec], out_dir: Path | str) -> list[Path]:
    """Sorted, de-duplicated list of all files of several worlds (DEM tiles may be shared)."""
    seen: set[Path] = set()
    for spec in specs:
        for files in product_paths(spec, out_dir).values():
            seen.update(files)
    return sorted(seen)
