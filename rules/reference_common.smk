# Input functions of the reference course's dataset (rules/reference.smk).


def reference_cfg(name):
    return config["reference"][name]


def reference_files(wildcards):
    """The three files of a reference dataset; a missing one is reported in one line."""
    from glaciermap.ingest.reference import SPLIT_FILES

    name = wildcards.dataset
    folder = Path(reference_cfg(name)["path"])
    files = {split: str(folder / f) for split, f in SPLIT_FILES.items()}
    for f in files.values():
        if not Path(f).is_file():
            _report(
                f"reference: {name}: no {Path(f).name} in {folder}/ ; put the reference "
                "course's train.hdf5, val.hdf5 and test.hdf5 there (or set reference: "
                f"{name}: path to their folder)"
            )
    return files


def require_reference_featureset(name, featureset, why):
    """One line at DAG time when a reference dataset's channels lack a feature set's layer."""
    from glaciermap.ingest.reference import reference_layers
    from glaciermap.ml.features import FEATURE_SETS

    d = reference_cfg(name)
    f = config["features"]
    layers, _ = reference_layers(d["channels"], f["derived"], f["texture_px"], name)
    lacking = [n for n in FEATURE_SETS[featureset] if n not in layers]
    if lacking:
        fail(
            f"reference: {name}: feature set {featureset!r} ({why}) needs {lacking}, which its "
            f"channels {d['channels']} do not give; name the channels (reference: {name}: "
            "channels) or choose feature sets without them (benchmark: featuresets)"
        )


def reference_benchmark_results(wildcards):
    """The benchmark models' metrics on the reference dataset's own test split."""
    out = []
    for a, f in benchmark_pairs(wildcards):
        require_reference_featureset(wildcards.dataset, f, f"benchmark ({a})")
        out.append(f"results/eval/{wildcards.dataset}/test/{a}_{f}.json")
    return out


def reference_eval_inputs(wildcards):
    """The chip store and the trained model a reference split is scored with."""
    require_reference_featureset(
        wildcards.dataset, wildcards.featureset, f"model {wildcards.arch}"
    )
    d = f"results/models/{wildcards.dataset}/{wildcards.arch}_{wildcards.featureset}"
    main = "model.skops" if wildcards.arch == "rf" else "weights.pt"
    tiles = f"results/tiles/{wildcards.dataset}"
    return {
        "model": f"{d}/{main}",
        "norm": f"{d}/norm.json",
        "config": f"{d}/config.json",
        "features": f"{tiles}/features.npy",
        "labels": f"{tiles}/labels.npy",
        "index": f"{tiles}/index.csv",
        "meta": f"{tiles}/meta.json",
    }
