DEMO_FILES = CATALOG.all_demo_files()


if DEMO_FILES:

    rule demo_world:
        """Generate the synthetic demo world (all demo regions) in real product formats."""
        input:
            # worlds over a real DEM and real outlines: a change of either regenerates them
            real_terrain=[
                w[k]
                for w in config["demo"]["worlds"].values()
                for k in ("dem", "outlines")
                if w.get(k)
            ],
        output:
            DEMO_FILES,
        log:
            "logs/demo_world.log",
        benchmark:
            "logs/benchmarks/demo_world.tsv"
        conda:
            "../envs/geo.yaml"
        threads: 1
        resources:
            mem_mb=scaled(6000),
            runtime=scaled(20),
        params:
            demo=config["demo"],
            regions={r: config["regions"][r] for r in config["demo"]["worlds"]},
            version=VERSION,
        script:
            "../workflow_scripts/demo_world.py"
