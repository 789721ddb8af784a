import functools
import sys
from pathlib import Path

from snakemake.utils import validate

import glaciermap
from glaciermap.ingest.catalog import InputCatalog, Missing
from glaciermap.ingest.names import backscatter_layers, classify_sar_files, select_pairs
from glaciermap.registry import (
    CNN_ARCHS,
    FEATURESET_INPUTS,
    FEATURESETS,
    blocks_per_member,
    processing_tiles,
)

# The package is code too: its version is a param of every step, so releasing a new
# glaciermap version reruns what it computes (Snakemake's code trigger sees scripts only).
VERSION = glaciermap.__version__


wildcard_constraints:
    region="[a-z][a-z0-9-]*",
    year=r"\d{4}",
    year1=r"\d{4}",
    year2=r"\d{4}",
    dataset="[a-z][a-z0-9-]*",
    arch="rf|" + "|".join(CNN_ARCHS),
    cnn="|".join(CNN_ARCHS),
    featureset="|".join(FEATURESETS),
    tile=r"r\d+c\d+",


_REPORTED = set()


def _report(msg):
    """Print a missing-input line once per workflow run."""
    if msg not in _REPORTED:
        _REPORTED.add(msg)
        print(f"glaciermap: missing input: {msg}", file=sys.stderr)


def _present(found, region, year=None):
    """Input files, or the missing folder (Snakemake then names it) plus a one-line hint;
    the first time, also every other input the configured regions still lack."""
    if isinstance(found, Missing):
        msg = found.message(region, year)
        if config.get("download"):
            msg += "; download: true: run `snakemake --cores 4 acquire` first"
        _report(msg)
        _missing_overview()
        return [found.path]
    return found


def _roles():
    """Why each configured real region/year is needed: region_year -> reasons."""
    roles = {}
    for ry in config["targets"]:
        roles.setdefault(ry, []).append("target")
    for name, d in config["datasets"].items():
        for ry in d["members"]:
            roles.setdefault(ry, []).append(f"member of dataset {name}")
    for r, y1, y2 in CATALOG.change_pairs():
        for y in (y1, y2):
            roles.setdefault(f"{r}_{y}", []).append(f"change {r}_{y1}_{y2}")
    return {
        ry: why for ry, why in roles.items() if not CATALOG.is_demo(split_ry(ry)[0])
    }


def _missing_overview():
    """Print, once, every input the configured real region/years lack: a new user sees
    every folder to fill in one go, not one per dry run."""
    if "overview" in _REPORTED:
        return
    _REPORTED.add("overview")
    lines = []
    for ry, why in _roles().items():
        region, year = split_ry(ry)
        member = any(w.startswith("member") for w in why)
        featuresets = {default_model(region, year)[2]}
        if member:  # every model trained on the dataset reads all of its layers
            featuresets |= {config["model"]["featureset"]}
            featuresets |= {
                o["featureset"]
                for o in config["model"]["overrides"].values()
                if "featureset" in o
            }
        needed = set().union(*(FEATURESET_INPUTS[f] for f in featuresets))
        items = []
        if isinstance(CATALOG.optical(region, year), Missing):
            items.append(f"optical: {CATALOG.where(region, year, 'optical')}")
        dem = CATALOG.dem(region)
        if "dem" in needed and isinstance(dem, Missing):
            items.append(f"dem: {dem.path}/ ({dem.help})")
        sar = sorted(
            needed & {"backscatter", "coherence"} - CATALOG.input_kinds(region, year)
        )
        if sar:
            items.append(f"{' + '.join(sar)}: {CATALOG.where(region, year, sar[0])}")
        if member and CATALOG.inventory(region, year) is None:
            path = CATALOG.inventory_path(region, year)
            items.append(f"inventory: {path} (RGI/GLIMS outlines: the training truth)")
        if items:
            lines.append(f"{ry} ({', '.join(why)}):")
            lines += [f"  {item}" for item in items]
    if lines:
        print(
            "glaciermap: inputs still missing for the configured regions:\n  "
            + "\n  ".join(lines),
            file=sys.stderr,
        )


def split_ry(region_year):
    region, year = region_year.rsplit("_", 1)
    return region, int(year)


def fail(msg):
    """Stop the DAG build with one line (Snakemake would print a traceback)."""
    print(f"glaciermap: error: {msg}", file=sys.stderr)
    raise SystemExit(1)


def _check_config():
    """Schema errors as one line (which key, what is wrong) instead of Snakemake's dump of
    the whole configuration; then Snakemake's validate fills in the defaults."""
    import jsonschema
    import yaml

    schema_path = Path(workflow.basedir) / "schemas/config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(config),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    if errors:
        e = errors[0]
        where = ": ".join(map(str, e.absolute_path)) or "top level"
        msg = e.message if len(e.message) < 240 else e.message[:240] + " ..."
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        fail(f"config {where}: {msg}{more}; see {schema_path.name} for the keys")
    validate(config, "../schemas/config.schema.yaml")


_check_config()


def _warn(msg):
    print(f"glaciermap: warning: {msg}", file=sys.stderr)


# Footprints of shared SAR files, read from their headers once (see README 'Real data').
CATALOG = InputCatalog(
    config, footprint_cache=".snakemake/glaciermap/footprints.json", warn=_warn
)
CHANGE_PAIRS = [f"{r}_{y1}_{y2}" for r, y1, y2 in CATALOG.change_pairs()]


def configured_featuresets():
    """Every feature set a configured model uses: ``model:``, its overrides, ``benchmark:``."""
    m, b = config["model"], config["benchmark"]
    out = {m["featureset"], *(b["featuresets"] if b["archs"] else [])}
    return out | {o["featureset"] for o in m["overrides"].values() if "featureset" in o}


USED_KINDS = frozenset().union(
    *(FEATURESET_INPUTS[f] for f in configured_featuresets())
)


def stack_kinds(region, year):
    """The layers a region/year's feature stack holds: the inputs it has that a configured
    model uses. SAR files beside an optical-only configuration are not processed, and every
    member of a dataset gets the same layers where it has the same inputs."""
    return CATALOG.input_kinds(region, year) & USED_KINDS


def missing_kinds(region, year, featureset):
    """Input kinds a feature set needs that a region/year lacks."""
    return sorted(FEATURESET_INPUTS[featureset] - CATALOG.input_kinds(region, year))


def require_featureset(region, year, featureset, why):
    """One line at DAG time when a region/year lacks an input its feature set needs. A
    region/year without any imagery yet only lists what is missing (one line per input), so
    a new user sees every folder to fill, and Snakemake then names the missing files."""
    unused = sorted(FEATURESET_INPUTS[featureset] - USED_KINDS)
    if unused:  # e.g. a file asked for on the command line
        fail(
            f"{region}_{year}: feature set {featureset!r} ({why}) needs {unused[0]}, which no "
            "configured model uses, so the feature stacks leave it out; add the feature set "
            "to benchmark: featuresets (or model: featureset)"
        )
    lacking = missing_kinds(region, year, featureset)
    if not lacking:
        return
    if isinstance(CATALOG.optical(region, year), Missing):
        for kind in lacking:
            _report(
                f"{region}_{year}: feature set {featureset!r} needs {kind}; put it in "
                f"{CATALOG.where(region, year, kind)}"
            )
        return
    kind = lacking[0]
    fail(
        f"{region}_{year}: feature set {featureset!r} ({why}) needs {kind}, which "
        f"{region}_{year} does not have; put it in {CATALOG.where(region, year, kind)}, "
        f"or choose a feature set without it (model: overrides: {region}_{year}: "
        "featureset: ...)"
    )


def check_datasets():
    """Each dataset's grids must give val and test blocks: checked before any job runs."""
    for name, d in config["datasets"].items():
        blocks = 0
        for m in d["members"]:
            region, year = split_ry(m)
            if year not in CATALOG.years(region):
                fail(
                    f"datasets: {name}: member {m}: {year} is not among the years of "
                    f"region {region} ({CATALOG.years(region)})"
                )
            blocks = max(
                blocks,
                blocks_per_member(
                    CATALOG.grid(region).shape, d["tile_size"], d["block_tiles"]
                ),
            )
        if blocks < 3 and (d["val_fraction"] > 0 or d["test_fraction"] > 0):
            fail(
                f"datasets: {name}: tile_size {d['tile_size']} px x block_tiles "
                f"{d['block_tiles']} gives {blocks} split block(s) per member, too few for "
                "train, val and test (3 needed); lower datasets: "
                f"{name}: tile_size or block_tiles"
            )
        check_member_layers(name, d["members"])


def check_member_layers(name, members):
    """Chips of one dataset stack the same layers from every member: a member without an
    input the others have (and a configured model uses) is one line before any job runs.
    Members still without imagery are left to the missing-input overview."""
    if any(isinstance(CATALOG.optical(*split_ry(m)), Missing) for m in members):
        return
    kinds = {m: stack_kinds(*split_ry(m)) for m in members}
    every = frozenset().union(*kinds.values())
    for m in members:
        lacking = sorted(every - kinds[m])
        if lacking:
            region, year = split_ry(m)
            have = next(o for o in members if lacking[0] in kinds[o])
            users = sorted(
                f
                for f in configured_featuresets()
                if lacking[0] in FEATURESET_INPUTS[f]
            )
            fail(
                f"datasets: {name}: member {m} has no {lacking[0]} but {have} has, and "
                f"feature set {users[0]} (model: / benchmark:) uses it: members of a dataset "
                f"need the same layers; put it in {CATALOG.where(region, year, lacking[0])}, "
                f"or remove {m} from the dataset, or configure feature sets without "
                f"{lacking[0]}"
            )


check_datasets()


def check_inference():
    """Sliding windows the CNNs can run, checked before any job runs (the schema cannot
    relate two keys): overlap below the window, the window a multiple of 2^depth."""
    inf, depth = config["inference"], config["training"]["cnn"]["depth"]
    if inf["overlap"] >= inf["window"]:
        fail(
            f"inference: overlap {inf['overlap']} must be below inference: window "
            f"{inf['window']} (windows would not advance); lower the overlap"
        )
    if inf["window"] % 2**depth:
        fail(
            f"inference: window {inf['window']} px is not a multiple of {2 ** depth} "
            f"(2^training: cnn: depth {depth}); use e.g. "
            f"{max(2 ** depth, inf['window'] // 2 ** depth * 2 ** depth)}"
        )


check_inference()


def names_pattern(names):
    """A wildcard constraint matching exactly ``names`` (none: a pattern matching nothing)."""
    import re

    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


# Constraints of single rules: names under `datasets:` (chips cut from feature stacks, by `tiles`)
# and under `reference:` (the reference course's dataset, converted by `reference_tiles`).
DATASET_NAMES = names_pattern(config["datasets"])
REFERENCE_NAMES = names_pattern(config["reference"])


def check_reference():
    """A name under both ``datasets:`` and ``reference:`` would mean two chip stores."""
    both = sorted(set(config["datasets"]) & set(config["reference"]))
    if both:
        fail(
            f"datasets: {both[0]} and reference: {both[0]}: one name, two datasets "
            f"(results/tiles/{both[0]}/ can hold only one); rename one of them"
        )


check_reference()


def benchmark_models(region, year):
    """(arch, featureset) of ``benchmark:`` whose inputs the region/year has."""
    return [
        (a, f) for a, f in benchmark_pairs(None) if not missing_kinds(region, year, f)
    ]


def all_targets():
    out = []
    for ry in config["targets"]:
        out.append(f"outlines/{ry}.gpkg")
        region, year = split_ry(ry)
        require_featureset(region, year, default_model(region, year)[2], "model:")
        models = [f"{a}_{f}" for a, f in benchmark_models(region, year)]
        out += [f"results/outlines/{ry}/{m}.gpkg" for m in models]
        if CATALOG.inventory(region, year) is not None:
            out.append(f"results/eval/{ry}/outlines.json")
            out += [f"results/eval/{ry}/{m}.json" for m in models]
    for pair in CHANGE_PAIRS:
        out.append(f"changes/{pair}.gpkg")
    return out + report_targets()


def grid_spec(wildcards):
    r = CATALOG.region(wildcards.region)
    return {"crs": r["crs"], "bounds": r["bounds"], "resolution_m": r["resolution_m"]}


def optical_scenes(wildcards):
    return _present(
        CATALOG.optical(wildcards.region, int(wildcards.year)),
        wildcards.region,
        wildcards.year,
    )


def dem_tiles(wildcards):
    return _present(CATALOG.dem(wildcards.region), wildcards.region)


def dem_tiles_under_tile(wildcards):
    """The DEM files that reach one processing tile (by their Copernicus names)."""
    r = wildcards.region
    return _present(CATALOG.dem_under(r, _tile(wildcards)), r)


def backscatter_files(wildcards):
    return CATALOG.backscatter(wildcards.region, int(wildcards.year))


def _tile(wildcards):
    """The job's processing tile ``(row_off, col_off, height, width)``."""
    return tuple(tile_window(wildcards))


def backscatter_tile_files(wildcards):
    """The backscatter dates over one processing tile (by their footprints): a new date
    reruns the tiles it reaches, not the region."""
    r, y = wildcards.region, int(wildcards.year)
    return CATALOG.sar_under(r, y, "backscatter", _tile(wildcards))


def backscatter_layer_names(wildcards):
    """The region's backscatter layers (co-pol, and cross-pol where any file has it), so
    every tile writes the same bands whatever dates reach it; None without co-pol files
    (the tile job then names the files)."""
    return _backscatter_layer_names(wildcards.region, int(wildcards.year))


@functools.cache
def _backscatter_layer_names(region, year):
    """Per region/year once, not once per tile job."""
    files = CATALOG.backscatter(region, year)
    return [name for name, _ in backscatter_layers(classify_sar_files(files))] or None


def _estimated_coherence(region, year):
    """Coherence files the workflow estimates from the region/year's SLC pairs."""
    return [
        f"results/sar/{region}_{year}/slc/{a}_{b}_corr.tif"
        for a, b in CATALOG.slc_pairs(region, year)
    ]


def coherence_files(wildcards):
    """Delivered coherence files plus those estimated here from SLC pairs."""
    r, y = wildcards.region, int(wildcards.year)
    return CATALOG.coherence(r, y) + _estimated_coherence(r, y)


@functools.cache
def _check_coherence_selection(region, year):
    """The region's coherence pairs (delivered and estimated) must leave some after the
    selection (baseline, months): one line before any job, checked once per region/year.
    """
    every = CATALOG.coherence(region, year) + _estimated_coherence(region, year)
    sar = config["sar"]
    pairs = [f for f in classify_sar_files(every) if f.kind == "coherence"]
    if pairs and not select_pairs(pairs, sar["max_baseline_days"], sar["months"]):
        fail(
            f"{region}_{year}: none of the {len(pairs)} coherence pairs has a baseline <= "
            f"{sar['max_baseline_days']} days in months {sar['months']}; widen "
            "sar: max_baseline_days or sar: months"
        )


def coherence_tile_files(wildcards):
    """The delivered coherence pairs over one processing tile (by their footprints) and the
    pairs estimated here (all: they do not exist yet). The region's selection is checked
    first (:func:`_check_coherence_selection`): a tile may then have none (NaN there).
    """
    r, y = wildcards.region, int(wildcards.year)
    _check_coherence_selection(r, y)
    return CATALOG.sar_under(
        r, y, "coherence", _tile(wildcards)
    ) + _estimated_coherence(r, y)


def slc_pair(wildcards):
    slc = CATALOG.slc(wildcards.region, int(wildcards.year))
    return {"reference": slc[wildcards.d1], "secondary": slc[wildcards.d2]}


def inventory_file(wildcards):
    return CATALOG.require_inventory(wildcards.region, int(wildcards.year))


def debris_file(wildcards):
    found = CATALOG.debris(wildcards.region, int(wildcards.year))
    if found is None:
        fail(f"{wildcards.region}_{wildcards.year}: no debris-cover polygons")
    return found


def optional_debris_labels(wildcards):
    """The debris labels of a region/year with debris-cover polygons (else none)."""
    r, y = wildcards.region, int(wildcards.year)
    return [f"results/labels/debris/{r}_{y}.tif"] if CATALOG.debris(r, y) else []


def feature_inputs(wildcards):
    """Optical always; DEM and SAR layers where the region/year has them and a configured
    model uses them (:func:`stack_kinds`)."""
    r, y = wildcards.region, int(wildcards.year)
    kinds = stack_kinds(r, y)
    ins = {
        "grid": f"results/grid/{r}.json",
        "optical": f"results/optical/{r}_{y}.vrt",
    }
    if "dem" in kinds:
        ins["dem"] = f"results/terrain/{r}/dem.vrt"
        ins["slope"] = f"results/terrain/{r}/slope.vrt"
    if "backscatter" in kinds:
        ins["backscatter"] = f"results/sar/{r}_{y}/backscatter.vrt"
    if "coherence" in kinds:
        ins["coherence"] = f"results/sar/{r}_{y}/coherence.vrt"
    return ins


def region_tiles(region):
    """Processing tiles of a region (id -> (row_off, col_off, height, width)), known from
    its grid when the DAG is built: ``processing: tile_km`` rounded to whole 256 px blocks.
    """
    grid = CATALOG.grid(region)
    return processing_tiles(
        grid.shape, grid.resolution, config["processing"]["tile_km"]
    )


def tile_window(wildcards):
    tiles = region_tiles(wildcards.region)
    if wildcards.tile not in tiles:
        fail(
            f"{wildcards.region} has no processing tile {wildcards.tile} (it has {list(tiles)})"
        )
    return list(tiles[wildcards.tile])


def tile_windows(wildcards):
    return [list(w) for w in region_tiles(wildcards.region).values()]


def tile_files(template):
    """Input function of a gather: one file per processing tile of the region, ``template``
    filled with the job's wildcards and each tile id (``{tile}``), in tile order."""

    def files(wildcards):
        known = dict(wildcards.items())
        return [
            template.format(**known, tile=t) for t in region_tiles(wildcards.region)
        ]

    return files


def dataset_cfg(name):
    return config["datasets"][name]


def dataset_members(wildcards, kind):
    return [
        f"results/{kind}/{m}.tif" for m in dataset_cfg(wildcards.dataset)["members"]
    ]


def dataset_features(wildcards):
    return [
        f"results/features/{m}.vrt" for m in dataset_cfg(wildcards.dataset)["members"]
    ]


def dataset_labels(wildcards):
    return dataset_members(wildcards, "labels")


def default_model(region, year):
    m = config["model"]
    over = m["overrides"].get(f"{region}_{year}", {})
    return (
        m["dataset"],
        over.get("arch", m["arch"]),
        over.get("featureset", m["featureset"]),
    )


def model_files(wildcards):
    require_featureset(
        wildcards.region,
        int(wildcards.year),
        wildcards.featureset,
        f"model {wildcards.arch}",
    )
    dataset = config["model"]["dataset"]
    d = f"results/models/{dataset}/{wildcards.arch}_{wildcards.featureset}"
    main = "model.skops" if wildcards.arch == "rf" else "weights.pt"
    return [f"{d}/{main}", f"{d}/norm.json", f"{d}/config.json"]


def default_probability(wildcards):
    _, arch, fs = default_model(wildcards.region, wildcards.year)
    require_featureset(wildcards.region, int(wildcards.year), fs, "model:")
    return f"results/probability/{wildcards.region}_{wildcards.year}/{arch}_{fs}.tif"


def model_probability(wildcards):
    r, y = wildcards.region, int(wildcards.year)
    require_featureset(r, y, wildcards.featureset, f"model {wildcards.arch}")
    return f"results/probability/{r}_{y}/{wildcards.arch}_{wildcards.featureset}.tif"


def optional_inventory(wildcards):
    inv = CATALOG.inventory(wildcards.region, int(wildcards.year))
    return [inv] if inv else []


def optional_dem(wildcards):
    """The region's DEM (outlines split along drainage basins without an inventory)."""
    r = wildcards.region
    return [f"results/terrain/{r}/dem.vrt"] if CATALOG.has_dem(r) else []


def outline_labels(wildcards):
    return f"results/labels/{wildcards.region}_{wildcards.year}.tif"


def dataset_params(wildcards):
    return dataset_cfg(wildcards.dataset)


def scaled(base):
    """A resource (mem_mb, runtime) that grows with the attempt: retries get more."""

    def resource(wildcards, attempt):
        return base * attempt

    return resource


def quicklook_inputs(wildcards):
    r, y = wildcards.region, int(wildcards.year)
    ins = {
        "optical": f"results/optical/{r}_{y}.vrt",
        "outlines": f"outlines/{r}_{y}.gpkg",
        "probability": default_probability(wildcards),
    }
    if CATALOG.has_dem(r):
        ins["slope"] = f"results/terrain/{r}/slope.vrt"
        ins["dem"] = f"results/terrain/{r}/dem.vrt"
    kinds = stack_kinds(r, y)  # SAR maps only where the models' stack has SAR
    if "coherence" in kinds:
        ins["coherence"] = f"results/sar/{r}_{y}/coherence.vrt"
    if "backscatter" in kinds:
        ins["backscatter"] = f"results/sar/{r}_{y}/backscatter.vrt"
    inv = CATALOG.inventory(r, y)
    if inv:
        ins["inventory"] = inv
    return ins


def dataset_member_names(wildcards):
    return list(dataset_cfg(wildcards.dataset)["members"])


def split_eval_inputs(wildcards):
    members = dataset_member_names(wildcards)
    model = f"{wildcards.arch}_{wildcards.featureset}"
    return {
        "index": f"results/tiles/{wildcards.dataset}/index.csv",
        "probability": [f"results/probability/{m}/{model}.tif" for m in members],
        "labels": [f"results/labels/{m}.tif" for m in members],
        "features": [f"results/features/{m}.vrt" for m in members],
        "debris": [
            f"results/labels/debris/{m}.tif"
            for m in members
            if CATALOG.debris(*split_ry(m))
        ],
    }


def benchmark_pairs(wildcards):
    b = config["benchmark"]
    return [[a, f] for a in b["archs"] for f in b["featuresets"]]


def benchmark_test_on():
    """The held-out region_year the benchmark table is scored on (``benchmark: test_on``),
    or None for the dataset's test chips."""
    ry = config["benchmark"]["test_on"]
    if ry is None:
        return None
    region, year = split_ry(ry)
    if CATALOG.inventory(region, year) is None:
        fail(
            f"benchmark: test_on: {ry} has no inventory to score against; add the region's "
            "inventory or remove test_on"
        )
    for a, f in benchmark_pairs(None):
        require_featureset(region, year, f, f"benchmark: test_on ({a})")
    return ry


def benchmark_results(wildcards):
    if wildcards.dataset in config["reference"]:
        # the reference course's table: always on its own test split (test.hdf5)
        return reference_benchmark_results(wildcards)
    ry = benchmark_test_on()
    if ry is not None:
        members = config["datasets"].get(wildcards.dataset, {}).get("members", [])
        if ry in members:
            fail(
                f"benchmark: test_on: {ry} is a member of datasets: {wildcards.dataset} (it "
                "was trained on); name a region/year outside the dataset"
            )
        return [
            f"results/eval/{ry}/{a}_{f}.json" for a, f in benchmark_pairs(wildcards)
        ]
    return [
        f"results/eval/{wildcards.dataset}/test/{a}_{f}.json"
        for a, f in benchmark_pairs(wildcards)
    ]


def benchmark_scored_on(wildcards):
    """``benchmark: test_on`` as the table states it; None for a reference dataset, which is
    always scored on its own test split."""
    if wildcards.dataset in config["reference"]:
        return None
    return config["benchmark"]["test_on"]


def report_targets():
    """Figures and tables that `snakemake --report` shows."""
    out = [f"results/quicklooks/{ry}/false_colour.png" for ry in config["targets"]]
    out += [f"results/quicklooks/changes/{pair}.png" for pair in CHANGE_PAIRS]
    m = config["model"]
    dataset = m["dataset"]
    out.append(f"results/models/{dataset}/{m['arch']}_{m['featureset']}/history.png")
    if config["benchmark"]["featuresets"]:
        out.append(f"tables/{dataset}_benchmark.md")
    return out
