import sys

from snakemake.utils import validate

import glaciermap
from glaciermap.inputs import InputCatalog, Missing

validate(config, "../schemas/config.schema.yaml")

CATALOG = InputCatalog(config)
CHANGE_PAIRS = [f"{r}_{y1}_{y2}" for r, y1, y2 in CATALOG.change_pairs()]
# The package is code too: its version is a param of every step, so releasing a new
# glaciermap version reruns what it computes (Snakemake's code trigger sees scripts only).
VERSION = glaciermap.__version__
CNN_ARCHS = ["unet", "segnet", "deeplabv3plus"]  # glaciermap.models.CNN_ARCHS
FEATURESETS = ["rgbn", "optical", "optical_dem", "optical_dem_sar"]


wildcard_constraints:
    region="[a-z][a-z0-9-]*",
    year=r"\d{4}",
    year1=r"\d{4}",
    year2=r"\d{4}",
    dataset="[a-z][a-z0-9-]*",
    arch="rf|" + "|".join(CNN_ARCHS),
    cnn="|".join(CNN_ARCHS),
    featureset="|".join(FEATURESETS),


_REPORTED = set()


def _present(found, region, year=None):
    """Input files, or the missing folder (Snakemake then names it) plus a one-line hint."""
    if isinstance(found, Missing):
        msg = found.message(region, year)
        if msg not in _REPORTED:
            _REPORTED.add(msg)
            print(f"glaciermap: missing input: {msg}", file=sys.stderr)
        return [found.path]
    return found


def split_ry(region_year):
    region, year = region_year.rsplit("_", 1)
    return region, int(year)


def all_targets():
    out = []
    for ry in config.get("targets", []):
        out.append(f"outlines/{ry}.gpkg")
        region, year = split_ry(ry)
        if CATALOG.inventory(region, year) is not None:
            out.append(f"results/eval/{ry}/outlines.json")
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


def backscatter_files(wildcards):
    return CATALOG.backscatter(wildcards.region, int(wildcards.year))


def coherence_files(wildcards):
    """Delivered coherence files plus those estimated here from SLC pairs."""
    r, y = wildcards.region, int(wildcards.year)
    estimated = [
        f"results/sar/{r}_{y}/slc/{a}_{b}_corr.tif" for a, b in CATALOG.slc_pairs(r, y)
    ]
    return CATALOG.coherence(r, y) + estimated


def slc_pair(wildcards):
    slc = CATALOG.slc(wildcards.region, int(wildcards.year))
    return {"reference": slc[wildcards.d1], "secondary": slc[wildcards.d2]}


def inventory_file(wildcards):
    return CATALOG.require_inventory(wildcards.region, int(wildcards.year))


def feature_inputs(wildcards):
    r, y = wildcards.region, int(wildcards.year)
    ins = {
        "grid": f"results/grid/{r}.json",
        "optical": f"results/optical/{r}_{y}.tif",
        "dem": f"results/terrain/{r}/dem.tif",
        "slope": f"results/terrain/{r}/slope.tif",
    }
    if CATALOG.backscatter(r, y):
        ins["backscatter"] = f"results/sar/{r}_{y}/backscatter.tif"
    if CATALOG.has_coherence(r, y):
        ins["coherence"] = f"results/sar/{r}_{y}/coherence.tif"
    return ins


def dataset_cfg(name):
    return config["datasets"][name]


def dataset_members(wildcards, kind):
    return [
        f"results/{kind}/{m}.tif" for m in dataset_cfg(wildcards.dataset)["members"]
    ]


def dataset_features(wildcards):
    return dataset_members(wildcards, "features")


def dataset_labels(wildcards):
    return dataset_members(wildcards, "labels")


def default_model(region, year):
    m = config.get("model", {})
    over = m.get("overrides", {}).get(f"{region}_{year}", {})
    return (
        m.get("dataset", "demo"),
        over.get("arch", m.get("arch", "unet")),
        over.get("featureset", m.get("featureset", "optical_dem_sar")),
    )


def model_files(wildcards):
    dataset = config.get("model", {}).get("dataset", "demo")
    d = f"results/models/{dataset}/{wildcards.arch}_{wildcards.featureset}"
    main = "model.joblib" if wildcards.arch == "rf" else "weights.pt"
    return [f"{d}/{main}", f"{d}/norm.json", f"{d}/config.json"]


def default_probability(wildcards):
    _, arch, fs = default_model(wildcards.region, wildcards.year)
    return f"results/probability/{wildcards.region}_{wildcards.year}/{arch}_{fs}.tif"


def optional_inventory(wildcards):
    inv = CATALOG.inventory(wildcards.region, int(wildcards.year))
    return [inv] if inv else []


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
        "optical": f"results/optical/{r}_{y}.tif",
        "outlines": f"outlines/{r}_{y}.gpkg",
        "probability": default_probability(wildcards),
        "slope": f"results/terrain/{r}/slope.tif",
        "dem": f"results/terrain/{r}/dem.tif",
    }
    if CATALOG.has_coherence(r, y):
        ins["coherence"] = f"results/sar/{r}_{y}/coherence.tif"
    if CATALOG.backscatter(r, y):
        ins["backscatter"] = f"results/sar/{r}_{y}/backscatter.tif"
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
        "features": [f"results/features/{m}.tif" for m in members],
    }


def benchmark_pairs(wildcards):
    b = config.get("benchmark", {})
    return [
        [a, f] for a in b.get("archs", ["rf", "unet"]) for f in b.get("featuresets", [])
    ]


def benchmark_results(wildcards):
    return [
        f"results/eval/{wildcards.dataset}/test/{a}_{f}.json"
        for a, f in benchmark_pairs(wildcards)
    ]


def report_targets():
    """Figures and tables that `snakemake --report` shows."""
    out = [
        f"results/quicklooks/{ry}/false_colour.png" for ry in config.get("targets", [])
    ]
    out += [f"results/quicklooks/changes/{pair}.png" for pair in CHANGE_PAIRS]
    m = config.get("model", {})
    dataset = m.get("dataset", "demo")
    out.append(
        f"results/models/{dataset}/{m.get('arch', 'unet')}_"
        f"{m.get('featureset', 'optical_dem_sar')}/history.png"
    )
    if config.get("benchmark", {}).get("featuresets"):
        out.append(f"tables/{dataset}_benchmark.md")
    return out
