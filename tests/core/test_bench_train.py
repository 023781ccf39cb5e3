"""The polygon-training benchmark's scene and polygon builders (tools/bench_train.py)."""
import numpy as np
import rasterio

from claire.claire_plugin.tools.bench_train import mosaic_scene, square_polygons


def test_mosaic_scene_is_one_grid_of_real_blocks_with_all_classes(tmp_path):
    paths = mosaic_scene(str(tmp_path), 500, seed=3)
    with rasterio.open(paths["optical"]) as o, rasterio.open(paths["sar"]) as s, rasterio.open(paths["lulc"]) as lab:
        assert o.shape == s.shape == lab.shape == (500, 500)
        assert o.transform == s.transform == lab.transform and o.crs == lab.crs
        assert o.count == 12 and s.count == 2
        lulc, opt = lab.read(1), o.read()
    # real reflectance (not zeros) wherever there is a label; seeded: the same seed gives the same scene
    assert set(np.unique(lulc)) <= {1, 2, 3, 4, 5, 6, 7, 9}
    assert len(np.unique(lulc)) >= 3
    assert (opt[:, lulc > 0] > 0).mean() > 0.99
    (tmp_path / "again").mkdir()
    again = mosaic_scene(str(tmp_path / "again"), 500, seed=3)
    with rasterio.open(again["lulc"]) as lab2:
        assert np.array_equal(lab2.read(1), lulc)


def test_square_polygons_stay_inside_one_class_and_apart():
    lulc = np.ones((60, 60), np.uint8)
    lulc[:, 30:] = 4
    squares = square_polygons(lulc, n=4, size=5, seed=0)
    assert {v for _, _, v in squares} == {1, 4}
    for r, c, v in squares:
        assert (lulc[r:r + 5, c:c + 5] == v).all()
    for i, (r1, c1, _) in enumerate(squares):
        for r2, c2, _ in squares[i + 1:]:
            assert max(abs(r1 - r2), abs(c1 - c2)) >= 5


def test_whole_map_score_leaves_out_the_training_squares_and_their_buffer():
    from claire.claire_plugin.tools.bench_train import outside_training

    lulc = np.ones((30, 30), np.uint8)
    keep = outside_training(lulc, [(10, 12, 1)], size=4, buffer_px=3.0)
    assert not keep[7:17, 9:19].any()  # the square (rows 10-13, cols 12-15) grown by 3 px
    assert keep.sum() == 900 - 10 * 10 and keep[6, 12] and keep[17, 12] and keep[12, 8] and keep[12, 19]


def test_summary_averages_over_seeds_per_site_and_n():
    from claire.claire_plugin.tools.bench_train import summary

    def run(seed, ft, rf, weight, ci):
        arms = {a: {c: {"macro_f1": v, "oa": v} for c in ("clear", "clouds_60pct")}
                for a, v in (("untuned", 0.5), ("finetuned", ft), ("rf_optical_sar", rf))}
        return {"site": "s", "n": 5, "seed": seed, "arms": arms, "forest_weight": weight,
                "finetuned_minus_rf_ci95": {"clear": ci, "clouds_60pct": None},
                "whole_map": {"untuned": {"macro_f1": 0.4, "oa": 0.4}, "finetuned": {"macro_f1": ft, "oa": ft}}}

    rows = [run(0, 0.8, 0.6, 0.25, [0.05, 0.3]), run(1, 0.6, 0.5, 0.0, [-0.1, 0.2]),
            {"site": "s", "n": 5, "seed": 2, "error": "x"}]
    line = summary(rows).splitlines()[-1]
    assert line.startswith("| s | 5 | 2 | ")
    assert "0.700 (0.60-0.80)" in line and "+15.0 / +15.0 points | 0.25, 0 | 1 / 0 of 2 |" in line
    rows[1]["finetuned_minus_rf_ci95"]["clear"] = [-0.3, -0.01]
    assert summary(rows).splitlines()[-1].endswith("| 1 / 1 of 2 |")


def test_bench_train_passes_the_learning_rate_and_length_to_every_run(monkeypatch, tmp_path):
    import argparse
    import types

    from claire.claire_plugin.cli import bench_train

    seen = []
    tool = types.SimpleNamespace(run_one=lambda site, n, seed, folder, extra, size, base: seen.append(list(extra)),
                                 table=lambda rows: "", summary=lambda rows: "", mosaic_scene=None, train_on=None)
    monkeypatch.setattr("claire.claire_plugin.cli.dev_tools.dev_tool", lambda name, command: tool)
    base = dict(sites="a", n="5", seeds="0,1", size=6, epochs=12, steps_per_epoch=20, batch_size=8, threads=2,
                minutes=None, scene_size=None, folder=str(tmp_path), json=None, checkpoint=None, unseen=False)
    bench_train.run(argparse.Namespace(**base, lr=1e-3))
    bench_train.run(argparse.Namespace(**base, lr=None))
    assert len(seen) == 4
    assert all(e[:4] == ["--epochs", "12", "--steps-per-epoch", "20"] for e in seen)
    assert seen[0][-2:] == ["--lr", "0.001"] and seen[1][-2:] == ["--lr", "0.001"]
    assert "--lr" not in seen[2] and "--lr" not in seen[3]


def test_unseen_fine_tunes_per_site_a_base_that_never_saw_it(monkeypatch, tmp_path):
    """--unseen: each site's runs get the base trained without that site; --checkpoint: every run the given one;
    combining --unseen with a given base or a mosaic is refused."""
    import argparse
    import types

    from claire.claire_plugin.cli import bench_train

    seen, built = [], []

    def base_without(site, folder, threads):
        built.append(site)
        return f"{folder}/base_without_{site}.safetensors"

    tool = types.SimpleNamespace(run_one=lambda site, n, seed, folder, extra, size, base: seen.append((site, base)),
                                 table=lambda rows: "", summary=lambda rows: "", mosaic_scene=None, train_on=None,
                                 base_without=base_without)
    monkeypatch.setattr("claire.claire_plugin.cli.dev_tools.dev_tool", lambda name, command: tool)
    args = dict(sites="a,b", n="5", seeds="0,1", size=6, epochs=1, steps_per_epoch=2, batch_size=8, threads=1,
                minutes=None, scene_size=None, folder=str(tmp_path), json=None, lr=None)
    assert bench_train.run(argparse.Namespace(**args, checkpoint=None, unseen=True)) == 0
    assert built == ["a", "b"]
    assert seen == [(s, f"{tmp_path}/base_without_{s}.safetensors") for s in ("a", "a", "b", "b")]
    given = tmp_path / "mine.safetensors"
    given.write_bytes(b"x")
    seen.clear()
    assert bench_train.run(argparse.Namespace(**args, checkpoint=str(given), unseen=False)) == 0
    assert {b for _, b in seen} == {str(given)} and len(seen) == 4
    assert bench_train.run(argparse.Namespace(**args, checkpoint=str(given), unseen=True)) == 2
    assert bench_train.run(argparse.Namespace(**args, checkpoint=str(tmp_path / "none.safetensors"),
                                              unseen=False)) == 2


def test_the_unseen_bases_follow_the_bundled_checkpoints_recipe():
    """bench_train.BUNDLED_RECIPE is `make checkpoint`'s command less its reproducible mode and storage."""
    import os
    import shlex

    from claire.claire_plugin.tools.bench_train import BUNDLED_RECIPE

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "Makefile")) as fh:
        text = fh.read().split("\ncheckpoint:", 1)[1].split("\n\n", 1)[0]
    words = shlex.split(text.replace("\\\n", " "))
    pairs = [tuple(BUNDLED_RECIPE[i:i + 2]) for i in range(len(BUNDLED_RECIPE)) if BUNDLED_RECIPE[i].startswith("--")]
    for flag, value in pairs:
        assert flag in words, flag
        if not value.startswith("--"):
            assert words[words.index(flag) + 1] == value, flag


def test_base_without_a_site_trains_on_the_other_sites_once(monkeypatch, tmp_path):
    """The base's data folder holds every kind of file of the other sites only; the command is the recipe; an
    existing base is reused."""
    import os
    import subprocess
    import types

    from claire.claire_plugin.tools import bench_train

    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        data = cmd[cmd.index("--data") + 1]
        calls.append({k: sorted(os.listdir(os.path.join(data, k))) for k in bench_train.KINDS})
        open(cmd[cmd.index("--output") + 1], "wb").close()
        return types.SimpleNamespace(returncode=0, stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    out = bench_train.base_without("38D_378R_2_3", str(tmp_path), threads=2)
    assert out == str(tmp_path / "base_without_38D_378R_2_3.safetensors") and os.path.exists(out)
    cmd, listing = calls
    assert all(w in cmd for w in bench_train.BUNDLED_RECIPE) and cmd[cmd.index("--threads") + 1] == "2"
    for kind, names in listing.items():
        assert names and not any(n.startswith("38D_378R_2_3") for n in names), kind
        assert any(n.startswith("282D_485L_3_3") for n in names), kind
    assert bench_train.base_without("38D_378R_2_3", str(tmp_path)) == out and len(calls) == 2


def test_the_run_table_shows_the_scores_from_sar_alone():
    from claire.claire_plugin.tools.bench_train import table

    score = {"macro_f1": 0.5, "oa": 0.6}
    row = {"site": "282D", "n": 10, "seed": 0, "arms": {"finetuned": {"clear": score, "clouds_60pct": score}},
           "leakage_rf_pixel_split_macro_f1": 0.9, "whole_map": {}, "forest_weight": None, "wall_s": 1.0,
           "peak_rss_mb": 100.0, "sar_only": {"finetuned": {"macro_f1": 0.4321, "oa": 0.5}, "rf_sar": {"macro_f1": 0.25,
                                                                                                      "oa": 0.3}}}
    lines = table([row, {**row, "sar_only": {}}]).splitlines()
    assert "SAR alone: finetuned / RF SAR" in lines[0]
    assert "| 0.432 / 0.250 |" in lines[2] and "| - / - |" in lines[3]
