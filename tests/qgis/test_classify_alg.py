"""claire:classify in real QGIS: registration, output grid, classes, colour table, styling, CLI parity."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from osgeo import gdal


def test_plugin_registers_provider_and_algorithm(claire_plugin):
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("claire")
    assert provider is not None
    assert registry.algorithmById("claire:classify") is not None
    alg = registry.algorithmById("claire:classify")
    names = {p.name() for p in alg.parameterDefinitions()}
    assert {"OPTICAL", "SAR", "CHECKPOINT", "OUTPUT"} <= names
    assert all(p.help() for p in alg.parameterDefinitions()), "every parameter has help text"


def _run(inputs: dict, output: str, checkpoint: str, **extra):
    import processing

    params = {"OPTICAL": inputs["optical"], "SAR": inputs["sar"], "CHECKPOINT": checkpoint, "OUTPUT": output}
    params.update(extra)
    return processing.run("claire:classify", params)


def test_output_on_optical_grid_with_classes_and_colour_table(claire_plugin, raster_pair, tiny_checkpoint, tiny_classes, tmp_path):
    out = str(tmp_path / "landcover.tif")
    results = _run(raster_pair, out, tiny_checkpoint)
    assert results["OUTPUT"] == out
    with rasterio.open(raster_pair["optical"]) as opt, rasterio.open(out) as dst:
        assert (dst.crs, dst.transform, dst.shape) == (opt.crs, opt.transform, opt.shape)
        assert dst.dtypes[0] == "uint8" and dst.nodata == 0
        values = set(np.unique(dst.read(1)).tolist())
    assert values <= {c["value"] for c in tiny_classes}
    band = gdal.Info(out, format="json")["bands"][0]  # what gdalinfo shows
    names, table = band["categories"], band["colorTable"]["entries"]
    for cls in tiny_classes:
        assert names[cls["value"]] == cls["name"]
        r, g, b, _ = table[cls["value"]]
        assert "#{:02x}{:02x}{:02x}".format(r, g, b) == cls["color"]
    assert band["metadata"][""]["class_1"] == "water", "names also embedded in the TIFF itself"
    assert os.path.exists(os.path.splitext(out)[0] + ".qml"), "QML style sidecar"
    assert "water" in results["CLASS_TABLE"]


def test_reference_gives_metrics(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    results = _run(raster_pair, str(tmp_path / "lc.tif"), tiny_checkpoint, REFERENCE=raster_pair["labels"])
    assert 0.0 <= results["OA"] <= 1.0
    assert 0.0 <= results["MIOU"] <= 1.0
    assert "IoU" in results["CLASS_TABLE"]


def test_loaded_output_is_styled_with_checkpoint_classes(claire_plugin, raster_pair, tiny_checkpoint, tiny_classes, tmp_path):
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer

    out = str(tmp_path / "styled.tif")
    _run(raster_pair, out, tiny_checkpoint)
    layer = QgsRasterLayer(out, "lc", "gdal")  # loads the QML sidecar as its default style
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    got = [(c.value, c.label, c.color.name()) for c in renderer.classes()]
    assert got == [(c["value"], c["name"], c["color"]) for c in tiny_classes]

    from claire.claire_plugin.processing.common import LandCoverPostProcessor

    fresh = QgsRasterLayer(out, "lc2", "gdal")
    LandCoverPostProcessor(None, 0).postProcessLayer(fresh, None, None)
    assert [c.label for c in fresh.renderer().classes()] == [c["name"] for c in tiny_classes]


def test_the_style_outlives_the_algorithm_copy_a_batch_or_model_runs(claire_plugin, raster_pair, tiny_checkpoint,
                                                                      tmp_path):
    """The batch dialog, runAndLoadResults and models run a copy of the algorithm and delete it before loading the
    results: the post-processor that styles the map must outlive it (it did not: the map loaded with numbers for
    names, and QGIS held a dangling pointer)."""
    import gc

    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingOutputLayerDefinition,
        QgsProject,
    )

    from claire.claire_plugin.processing.common import LandCoverPostProcessor

    alg = QgsApplication.processingRegistry().createAlgorithmById("claire:classify")
    out = str(tmp_path / "batch.tif")
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    context.setProject(QgsProject.instance())
    params = alg.preprocessParameters({"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"],
                                       "CHECKPOINT": tiny_checkpoint,
                                       "OUTPUT": QgsProcessingOutputLayerDefinition(out, QgsProject.instance())})
    _, ok = alg.run(params, context, feedback)  # runs a copy, deleted when it returns
    assert ok
    del alg
    gc.collect()
    assert isinstance(context.layerToLoadOnCompletionDetails(out).postProcessor(), LandCoverPostProcessor)
    stem = os.path.splitext(os.path.basename(raster_pair["optical"]))[0]  # a batch's rows were loaded alike
    assert context.layerToLoadOnCompletionDetails(out).name == f"Land cover (CLAIRE) \u2013 {stem}"
    # the confidence raster loaded from the toolbox gets the dock's colour ramp (a grey stretch before)
    from claire.claire_plugin.processing.common import RampPostProcessor

    conf = str(tmp_path / "conf.tif")
    alg = QgsApplication.processingRegistry().createAlgorithmById("claire:classify")
    params = alg.preprocessParameters({"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"],
                                       "CHECKPOINT": tiny_checkpoint, "OUTPUT": str(tmp_path / "c2.tif"),
                                       "CONFIDENCE": QgsProcessingOutputLayerDefinition(conf, QgsProject.instance())})
    _, ok = alg.run(params, context, feedback)
    assert ok and isinstance(context.layerToLoadOnCompletionDetails(conf).postProcessor(), RampPostProcessor)
    assert context.layerToLoadOnCompletionDetails(conf).name.endswith(f" \u2013 {stem}")
    # a model's output keeps the name the model gives it: two maps of one model both loaded as "Land cover (CLAIRE)"
    named = str(tmp_path / "named.tif")
    definition = QgsProcessingOutputLayerDefinition(named, QgsProject.instance())
    definition.destinationName = "forest map"
    alg = QgsApplication.processingRegistry().createAlgorithmById("claire:classify")
    params = alg.preprocessParameters({"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"],
                                       "CHECKPOINT": tiny_checkpoint, "OUTPUT": definition})
    _, ok = alg.run(params, context, feedback)
    assert ok and context.layerToLoadOnCompletionDetails(named).name == "forest map"


def test_gdal_names_given_as_text_are_read(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    """CLAIRE's own messages ask for /vsizip/archive/member or GPKG:file:table; QGIS 3.22 cannot load those from
    text, so the parameter refused them as missing files."""
    import zipfile

    import rasterio

    archive = str(tmp_path / "optical.zip")
    with zipfile.ZipFile(archive, "w") as z:
        z.write(raster_pair["optical"], "o.tif")
    out = str(tmp_path / "zipped.tif")
    _run({"optical": f"/vsizip/{archive}/o.tif", "sar": raster_pair["sar"]}, out, tiny_checkpoint)
    _run(raster_pair, str(tmp_path / "plain.tif"), tiny_checkpoint)
    with rasterio.open(out) as a, rasterio.open(str(tmp_path / "plain.tif")) as b:
        assert (a.read() == b.read()).all()


def test_cli_gives_the_same_output_as_the_algorithm(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    alg_out, cli_out = str(tmp_path / "alg.tif"), str(tmp_path / "cli.tif")
    _run(raster_pair, alg_out, tiny_checkpoint)
    claire_bin = os.path.join(os.path.dirname(sys.executable), "claire")
    proc = subprocess.run([claire_bin, "classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"],
                           "--checkpoint", tiny_checkpoint, "--output", cli_out], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(alg_out) as a, rasterio.open(cli_out) as c:
        assert (a.transform, a.crs, a.shape) == (c.transform, c.crs, c.shape)
        np.testing.assert_array_equal(a.read(1), c.read(1))


def test_bad_band_list_is_a_clear_processing_error(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="band numbers"):
        _run(raster_pair, str(tmp_path / "x.tif"), tiny_checkpoint, OPTICAL_BANDS="two,three")
    assert not os.path.exists(tmp_path / "x.tif")


@pytest.mark.parametrize("text", ["2,3,4", "2;3;4", "2 3 4"])
def test_band_lists_read_as_on_the_command_line_and_in_the_dock(claire_plugin, raster_pair, tiny_checkpoint,
                                                                 tmp_path, text):
    from qgis.core import QgsApplication, QgsProcessingContext

    alg = QgsApplication.processingRegistry().algorithmById("claire:classify")
    params = alg.build_params({"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"],
                               "CHECKPOINT": tiny_checkpoint, "OUTPUT": str(tmp_path / "o.tif"),
                               "OPTICAL_BANDS": text, "TILE_SIZE": 0, "OVERLAP": -1}, QgsProcessingContext())
    assert params.optical_bands == [2, 3, 4]
    assert (params.tile_size, params.context) == (None, None), "0 / -1: the defaults"


def test_band_zero_is_refused_naming_the_parameter(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=r"\(SAR_BANDS\) '0,1' has band number 0 below 1"):
        _run(raster_pair, str(tmp_path / "x.tif"), tiny_checkpoint, SAR_BANDS="0,1")
    assert not os.path.exists(tmp_path / "x.tif")


def test_optical_offset_parameter_reaches_the_engine(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext

    context = QgsProcessingContext()
    for alg_id in ("claire:classify", "claire:classify_folder"):
        alg = QgsApplication.processingRegistry().algorithmById(alg_id)
        assert alg.parameterDefinition("OPTICAL_OFFSET").flags() & alg.parameterDefinition("OPTICAL_OFFSET").FlagOptional
    alg = QgsApplication.processingRegistry().algorithmById("claire:classify")
    base = {"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"], "CHECKPOINT": tiny_checkpoint,
            "OUTPUT": str(tmp_path / "o.tif")}
    assert alg.build_params(dict(base, OPTICAL_OFFSET=-1000), context).optical_offset == -1000.0
    assert alg.build_params(base, context).optical_offset is None
    assert alg.build_params(dict(base, OPTICAL_OFFSET=None), context).optical_offset is None
    # as qgis_process hands text: a German decimal comma is read; what is not a number was silently 0
    assert alg.build_params(dict(base, OPTICAL_OFFSET="-1000,0"), context).optical_offset == -1000.0
    from qgis.core import QgsProcessingException

    for text, words in (("abc", "OPTICAL_OFFSET 'abc' is not a number"), ("-1.000", "minus one or minus one thousand")):
        with pytest.raises(QgsProcessingException, match=words):
            alg.build_params(dict(base, OPTICAL_OFFSET=text), context)


def test_log_names_parameters_not_command_line_flags(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    import processing

    from claire.tests.qgis.feedback_log import FeedbackLog as Log

    log = Log()
    processing.run("claire:classify", {"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"],
                                       "CHECKPOINT": tiny_checkpoint, "OPTICAL_OFFSET": 0,
                                       "OUTPUT": str(tmp_path / "lc.tif")}, feedback=log)
    text = "\n".join(log.lines)
    assert "added before scaling (OPTICAL_OFFSET)" in text and "--optical-offset" not in text, text
    # after the class table, the scene's counts and what not to trust, as on the command line
    table = next(i for i, line in enumerate(log.lines) if line.startswith("class "))
    assert log.lines[table + 1].startswith("valid pixels ") and "unlike the training data" in log.lines[table + 1]
    assert f"model: {tiny_checkpoint}, " in text and "bundled" not in text
    # a model step fed an empty checkpoint (another step wrote none) classified with the bundled one without a word
    log = Log()
    processing.run("claire:classify", {"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"], "CHECKPOINT": None,
                                       "EXTENT": None, "OUTPUT": str(tmp_path / "lc2.tif")}, feedback=log)
    assert any(line.startswith("model: ") and "(the bundled checkpoint: none was given)" in line for line in log.lines)


def test_a_run_refused_after_planning_logs_what_was_planned(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    """QA (ninth round): the command line printed the plan (memory, tile, bands) before a refusal, Processing
    only the error."""
    import processing
    from qgis.core import QgsProcessingException

    from claire.tests.qgis.feedback_log import FeedbackLog as Log

    log = Log()
    with pytest.raises(QgsProcessingException, match="needs about"):
        processing.run("claire:classify", {"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"],
                                           "CHECKPOINT": tiny_checkpoint, "TILE_SIZE": 8192, "BATCH_SIZE": 64,
                                           "CONTEXT": 0, "OUTPUT": str(tmp_path / "lc.tif")}, feedback=log)
    planned = [line for line in log.lines if line.startswith("planned: ")]
    assert planned and planned[0].startswith("planned: device: cpu"), log.lines
    assert not any("--" in line for line in planned), planned  # parameters, not command-line flags
    assert not os.path.exists(tmp_path / "lc.tif")


def test_cloud_output_and_sar_fill_switch(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    cloud = str(tmp_path / "cloud.tif")
    results = _run(raster_pair, str(tmp_path / "lc.tif"), tiny_checkpoint, CLOUD=cloud, FILL_FROM_SAR=False)
    assert results["CLOUD"] == cloud and results["UNFAMILIAR"] is None
    with rasterio.open(cloud) as ds:
        assert ds.nodata == 255 and ds.read(1).max() <= 100
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("claire:classify")
    assert alg.parameterDefinition("FILL_FROM_SAR").defaultValue() is True


def test_snow_check_is_an_advanced_switch_on_by_default(claire_plugin, raster_pair, tiny_checkpoint, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById("claire:classify")
    definition = alg.parameterDefinition("SNOW_CHECK")
    assert definition.defaultValue() is True
    assert definition.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    assert "NDSI" in alg.shortHelpString()
    base = {"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"], "CHECKPOINT": tiny_checkpoint,
            "OUTPUT": str(tmp_path / "o.tif")}
    context = QgsProcessingContext()
    assert alg.build_params(base, context).snow_check is True
    assert alg.build_params(dict(base, SNOW_CHECK=False), context).snow_check is False


def test_runtime_is_an_advanced_parameter_that_reaches_the_engine(claire_plugin, raster_pair, tiny_checkpoint,
                                                                  tmp_path):
    """Issue 22 item 1 (part): RUNTIME (auto, eager, compiled, aot) as on the command line and in the dock."""
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingParameterDefinition

    from claire.claire_plugin.core.params import RUNTIMES

    context = QgsProcessingContext()
    alg = QgsApplication.processingRegistry().algorithmById("claire:classify")
    definition = alg.parameterDefinition("RUNTIME")
    assert definition.options() == list(RUNTIMES) and definition.defaultValue() == 0
    assert definition.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    assert "checked against eager" in alg.shortHelpString()
    base = {"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"], "CHECKPOINT": tiny_checkpoint,
            "OUTPUT": str(tmp_path / "o.tif")}
    assert alg.build_params(base, context).runtime == "auto"
    assert alg.build_params(dict(base, RUNTIME=RUNTIMES.index("eager")), context).runtime == "eager"


def test_an_extent_in_any_crs_classifies_only_the_pixels_it_touches(claire_plugin, raster_pair, tiny_checkpoint,
                                                                    tmp_path):
    """EXTENT in the optical CRS (rows 10..29, columns 20..49) and the same rectangle in EPSG:4326 (QGIS
    transforms it; its bounding box touches a few more pixels): the full run's pixels at the same place."""
    from rasterio.warp import transform_bounds

    full = _run(raster_pair, str(tmp_path / "full.tif"), tiny_checkpoint)
    with rasterio.open(full["OUTPUT"]) as ds:
        whole, transform = ds.read(1), ds.transform
    lon0, lat0, lon1, lat1 = transform_bounds("EPSG:32631", "EPSG:4326", 500200, 4599700, 500500, 4599900)
    for n, extent in enumerate(["500200,500500,4599700,4599900 [EPSG:32631]",
                                f"{lon0!r},{lon1!r},{lat0!r},{lat1!r} [EPSG:4326]"]):
        out = _run(raster_pair, str(tmp_path / f"preview{n}.tif"), tiny_checkpoint, EXTENT=extent)["OUTPUT"]
        with rasterio.open(out) as ds:
            got, t = ds.read(1), ds.transform
        c0, r0 = (round(v) for v in ~transform * (t.c, t.f))
        assert got.shape == (20, 30) if n == 0 else (20 <= got.shape[0] <= 24 and 30 <= got.shape[1] <= 34)
        assert r0 <= 10 and c0 <= 20 and r0 + got.shape[0] >= 30 and c0 + got.shape[1] >= 50
        assert np.array_equal(got, whole[r0:r0 + got.shape[0], c0:c0 + got.shape[1]])


def test_an_extent_outside_the_raster_is_named_as_the_parameter(claire_plugin, raster_pair, tiny_checkpoint,
                                                                 tmp_path):
    """QA (round 18, left then): "the extent 600000,... lies outside the optical raster" named no parameter."""
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as info:
        _run(raster_pair, str(tmp_path / "far.tif"), tiny_checkpoint, EXTENT="600000,600100,4599700,4599900 [EPSG:32631]")
    assert str(info.value).startswith("the extent (EXTENT) 600000,") and "lies outside the optical raster" in str(
        info.value) and "--extent" not in str(info.value)
    assert not (tmp_path / "far.tif").exists()


def test_missing_packages_are_named_by_the_parameter_check_not_a_traceback(claire_plugin, raster_pair, tmp_path,
                                                                          monkeypatch):
    """Without rasterio, claire:classify's parameter check raised ModuleNotFoundError: qgis_process aborted (rc 134)
    and the desktop showed a Python error. It now says what is missing, all of it, and how to install it."""
    from qgis.core import QgsApplication, QgsProcessingContext

    from claire.claire_plugin import deps
    from claire.claire_plugin.processing import common

    def no_rasterio(*_args, **_kw):
        raise ModuleNotFoundError("No module named 'rasterio'", name="rasterio")

    monkeypatch.setattr(common, "check_raster_files", no_rasterio)
    monkeypatch.setattr(deps, "missing", lambda packages=None: ["torch", "rasterio"])
    alg = QgsApplication.processingRegistry().algorithmById("claire:classify")
    ok, message = alg.checkParameterValues({"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"],
                                            "OUTPUT": str(tmp_path / "lc.tif")}, QgsProcessingContext())
    assert not ok and message.startswith("CLAIRE needs Python packages that QGIS cannot import: torch, rasterio")


def test_raster_outputs_offer_only_geotiff(claire_plugin):
    """The file dialog listed .gpkg, .img, .mbtiles, ... for the land-cover output, which the run then refused."""
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("claire")
    assert provider.supportedOutputRasterLayerExtensions() == ["tif"]
    out = QgsApplication.processingRegistry().algorithmById("claire:classify").parameterDefinition("OUTPUT")
    assert out.defaultFileExtension() == "tif" and "*.tif" in out.createFileFilter() and ".gpkg" not in \
        out.createFileFilter()


def test_no_parameter_says_optional_itself(claire_plugin):
    """QGIS marks optional parameters itself ([optional] in the dialogs; ' (optional)' in qgis_process 3.40's help,
    which read "Macroclass field (optional) (optional)")."""
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("claire")
    said = [f"{alg.id()}:{p.name()}" for alg in provider.algorithms() for p in alg.parameterDefinitions()
            if "optional" in p.description().lower()]
    assert said == []


def test_the_help_says_which_packages_are_missing_before_a_run(claire_plugin, monkeypatch):
    """Headless (qgis_process list / help) nothing said packages were missing until a run failed."""
    from qgis.core import QgsApplication

    from claire.claire_plugin import deps

    alg = QgsApplication.processingRegistry().algorithmById("claire:train")
    assert "⚠" not in alg.shortHelpString()
    monkeypatch.setattr(deps, "missing", lambda packages=None: ["torch", "safetensors"])
    assert alg.shortHelpString().startswith("<p><b>⚠ CLAIRE needs Python packages that QGIS cannot import: torch, "
                                            "safetensors")


def test_copying_a_run_as_python_leaves_no_statistics_beside_its_input_files(claire_plugin, raster_pair, tmp_path):
    """The toolbox's History and "Copy as Python Command" (and a model's log of its steps) write each parameter
    as Python; QGIS did so for a raster by loading the file as a layer, and GDAL saved its statistics beside it
    (optical.tif.aux.xml) when the layer went."""
    import shutil

    from qgis.core import QgsApplication, QgsProcessingContext, QgsProject

    folder = tmp_path / "in"
    folder.mkdir()
    for key in ("optical", "sar"):
        shutil.copy(raster_pair[key], folder / os.path.basename(raster_pair[key]))
    optical, sar = str(folder / "optical.tif"), str(folder / "sar.tif")
    alg = QgsApplication.processingRegistry().algorithmById("claire:classify")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    command = alg.asPythonCommand({"OPTICAL": optical, "SAR": sar, "OUTPUT": str(tmp_path / "lc.tif")}, context)
    del context
    import gc

    gc.collect()
    assert f"'OPTICAL':'{optical}'" in command.replace(" ", "") and "'SAR':" in command
    assert sorted(os.listdir(folder)) == ["optical.tif", "sar.tif"]


def test_the_toolbox_search_and_the_modeller_find_and_draw_every_algorithm(claire_plugin):
    """The toolbox's search found nothing for 'random forest', 'Sentinel', 'deep learning' or 'error matrix' (no
    algorithm had tags), and the modeller drew the generic gear for every CLAIRE step (no SVG icon path)."""
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("claire")
    algs = {a.id(): a for a in provider.algorithms()}
    for alg in algs.values():
        tags = [t.lower() for t in alg.tags()]
        assert {"land cover", "sar", "sentinel-2"} <= set(tags), alg.id()
        assert os.path.isfile(alg.svgIconPath()) and alg.svgIconPath().endswith(".svg"), alg.id()

    def found(word):
        word = word.lower()
        return {i for i, a in algs.items() if word in a.displayName().lower() or any(word in t.lower() for t in a.tags())}

    assert {"claire:train", "claire:suggest"} <= found("random forest")
    assert found("error matrix") == {"claire:map_accuracy"} and "claire:sample_points" in found("stratified")
    assert {"claire:classify", "claire:train"} <= found("deep learning")
    assert "claire:grow_polygons" in found("magic wand") and "claire:evaluate" in found("accuracy")


def test_a_later_run_of_another_model_does_not_keep_the_earlier_style_file(claire_plugin, raster_pair, tiny_checkpoint,
                                                                          tiny_classes, tmp_path):
    """claire:classify's NAME.qml beside the map: a run of the same model keeps it, a run of another model (the
    CLI, the dock) to the same name removes it, since QGIS would draw the new map with the old class names."""
    from claire.claire_plugin.core import engine
    from claire.claire_plugin.core.io.qml import palette_of, style_path
    from claire.claire_plugin.core.params import ClassifyParams

    out = str(tmp_path / "lc.tif")
    _run(raster_pair, out, tiny_checkpoint)
    assert sorted(palette_of(style_path(out))) == sorted((c["value"], c["name"]) for c in tiny_classes)
    same = engine.classify(ClassifyParams(raster_pair["optical"], raster_pair["sar"], out, checkpoint=tiny_checkpoint,
                                          device="cpu", runtime="eager"))
    assert os.path.exists(style_path(out)) and not any(m.startswith("replaced") for m in same.messages)
    other = engine.classify(ClassifyParams(raster_pair["optical"], raster_pair["sar"], out, device="cpu",
                                           runtime="eager"))  # the bundled checkpoint's eight classes
    assert len(palette_of(style_path(out))) == 8 and (1, "water") in palette_of(style_path(out))
    assert any(m.startswith(f"replaced {style_path(out)}") for m in other.messages)


def test_messages_name_the_enum_option_qgis_process_takes(claire_plugin):
    """"SAR_UNITS linear-power" was refused by qgis_process ("not one of its options; give one of 0 .. 3")."""
    from qgis.core import QgsApplication

    from claire.claire_plugin.processing.common import TRAIN_FLAG_TO_PARAMETER, qgis_message

    text = "declare it with --sar-units linear-power or --sar-units amplitude (--sar-units)"
    said = qgis_message(text)
    assert said == "declare it with SAR_UNITS 2 (linear-power) or SAR_UNITS 3 (amplitude) (SAR_UNITS)"
    assert qgis_message(text, TRAIN_FLAG_TO_PARAMETER) == said
    options = QgsApplication.processingRegistry().algorithmById("claire:classify").parameterDefinition(
        "SAR_UNITS").options()
    assert options[2] == "linear-power" and options[3] == "amplitude" and options[1] == "dB"


def test_a_map_from_the_command_line_opens_in_qgis_with_its_classes(claire_plugin, raster_pair, tiny_checkpoint,
                                                                   tiny_classes, tmp_path):
    """Added by hand (Layer > Add Raster Layer), a `claire classify` map showed 257 legend entries (the colour
    table's 256, black), and no class names with GDAL_PAM_ENABLED=NO: the run writes the map's style beside it."""
    from qgis.core import QgsRasterLayer

    from claire.claire_plugin.cli.main import main

    out = str(tmp_path / "lc.tif")
    assert main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--checkpoint",
                 tiny_checkpoint, "--output", out, "--quiet"]) == 0
    os.remove(out + ".aux.xml") if os.path.exists(out + ".aux.xml") else None  # as QGIS sees it with PAM off
    layer = QgsRasterLayer(out, "by hand", "gdal")
    assert layer.isValid() and layer.renderer().type() == "paletted"
    got = [(int(c.value), c.label) for c in layer.renderer().classes()]
    assert got == sorted((int(c["value"]), c["name"]) for c in tiny_classes)


def test_batch_cells_left_empty_and_reports_do_not_break_the_batch_dialog(claire_plugin, raster_pair, tiny_checkpoint,
                                                                          tmp_path):
    """In the batch dialog: an empty optional output cell (QgsProcessingOutputLayerDefinition of "") was taken as a
    path, and QGIS logged "The following layers were not correctly generated. •" after every row; a Report column
    typed the output as HTML, and QGIS's batch dialog then raised a TypeError (addResult without its timestamp)."""
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingOutputFile,
        QgsProcessingOutputHtml,
        QgsProcessingOutputLayerDefinition,
    )

    from claire.claire_plugin.processing.common import blank_output

    registry = QgsApplication.processingRegistry()
    for alg_id in ("claire:classify", "claire:evaluate"):
        report = registry.algorithmById(alg_id).outputDefinition("REPORT")
        assert isinstance(report, QgsProcessingOutputFile) and not isinstance(report, QgsProcessingOutputHtml)
        assert "html" in registry.algorithmById(alg_id).parameterDefinition("REPORT").fileFilter().lower()
    assert blank_output(QgsProcessingOutputLayerDefinition("")) and not blank_output(
        QgsProcessingOutputLayerDefinition(str(tmp_path / "c.tif")))
    import processing

    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    out = str(tmp_path / "lc.tif")
    params = {"OPTICAL": raster_pair["optical"], "SAR": raster_pair["sar"], "CHECKPOINT": tiny_checkpoint,
              "OUTPUT": QgsProcessingOutputLayerDefinition(out), "RELIANCE": QgsProcessingOutputLayerDefinition(""),
              "CLOUD": QgsProcessingOutputLayerDefinition(""), "REPORT": str(tmp_path / "r.json")}
    res = processing.run("claire:classify", params, context=context, feedback=feedback)
    assert res["RELIANCE"] is None and res["CLOUD"] is None and os.path.exists(tmp_path / "r.json")
    assert "" not in context.layersToLoadOnCompletion()


def test_help_lists_the_parameters_as_the_dialog_shows_them(claire_plugin):
    """The help panel titled each entry by its id, in another order than the dialog (QA round 16): now the dialog's
    label with the id beside it, in the dialog's order, for every CLAIRE algorithm."""
    import re

    from qgis.core import QgsApplication

    for alg in QgsApplication.processingRegistry().providerById("claire").algorithms():
        help_text = alg.shortHelpString()
        titles = re.findall(r"<li><b>(.*?)</b>:", help_text)
        shown = [f"{p.description()} ({p.name()})" for p in alg.parameterDefinitions() if p.name() in alg.HELP]
        assert titles[:len(shown)] == [t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                                       for t in shown], alg.id()
        assert len(titles) == len(alg.HELP), alg.id()
