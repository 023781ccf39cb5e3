"""Issue 19 class 9 in the dock (real QGIS widgets): a new user's mistakes shown in the fit check before a
run, each saying what to do; the SAR-units and runtime choices in the advanced options reach the run."""
from __future__ import annotations

import pytest

from claire.tests.fixtures import bad_inputs as C
from claire.tests.fixtures import bad_inputs_19 as C19


def _named(builder):
    """The catalogue case with its optical bands named: the small synthetic scenes have too little vegetation to
    check an unnamed stack's order, which the fit check says (QA round 22); these tests are about other things."""
    import rasterio

    from claire.claire_plugin.core.inputs.bands import S2_L1C, S2_L2A

    def build(tmp, ck):
        args = builder(tmp, ck)
        with rasterio.open(args["optical"], "r+") as ds:
            ds.descriptions = tuple({12: S2_L2A, 13: S2_L1C}[ds.count])
        return args

    return build


@pytest.fixture
def dock_for(qgis_app, workdir):
    """dock_for(builder) -> (dock, args): a dock with the catalogue case's layers chosen."""
    from qgis.core import QgsProject, QgsRasterLayer

    from claire.claire_plugin.gui.dock import ClaireDock
    from claire.claire_plugin.layers.layers import no_input_sidecars

    tmp, ck = workdir
    project, made = QgsProject.instance(), []

    def build(builder):
        args = builder(tmp, ck)
        layers = {}
        for role in ("optical", "sar"):
            if args[role] not in layers:
                with no_input_sidecars():
                    layers[args[role]] = QgsRasterLayer(args[role], role, "gdal")
                assert layers[args[role]].isValid()
        project.addMapLayers(list(layers.values()))
        made.extend(layers.values())
        dock = ClaireDock(None)
        dock.picker.setCheckpoint(ck)
        dock.optical.setLayer(layers[args["optical"]])
        dock.sar.setLayer(layers[args["sar"]])
        return dock, args

    yield build
    for layer in made:
        project.removeMapLayer(layer.id())


def _fit(dock) -> str:
    """The fit line under the checkpoint picker, as shown."""
    return dock.picker.status.text()


def test_a_good_pair_fits(dock_for):
    dock, _ = dock_for(_named(C._pair))
    assert dock._update_fit() == []
    assert "the layers fit its bands" in _fit(dock)
    assert dock.picker.notes() == [] and "ℹ" not in _fit(dock)


def test_a_change_of_layers_is_checked_in_the_background(dock_for, monkeypatch):
    """QA round 16 (QGIS desktop): every change of layer or SAR units froze QGIS for 0.4-1.1 s while the pair's
    samples were read on the main thread. The check now runs in a thread of its own after the last change, the
    status says so meanwhile, and a check of inputs changed since is never shown."""
    import threading

    from claire.claire_plugin.gui import fit_check

    threads = []
    real = fit_check.check_files

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_check, "check_files", recorded)
    dock, _ = dock_for(C19._same_raster_twice)  # its layers chosen through the combos' signals
    assert dock.status.text() == "Checking the chosen layers…" and threads == []
    warnings = dock.wait_for_fit()
    assert threads and threading.main_thread() not in threads
    assert any("given as the optical and as the SAR input" in w for w in warnings), warnings
    assert "Check the warnings above" in dock.status.text()
    dock._schedule_fit()
    stale = dock._fit_gen  # a check of these inputs, never shown ...
    dock._schedule_fit()  # ... whose inputs change while it would come back
    dock._apply_fit(stale, ["a warning of the inputs before"], [])
    assert "a warning of the inputs before" not in " ".join(dock.picker.warnings())


def test_the_background_check_comes_back_through_the_event_loop(dock_for, qgis_app):
    """The result reaches the dock by its queued signal alone (QA round 16 review: the test above applies it
    through wait_for_fit, which would pass without the signal)."""
    import time

    dock, _ = dock_for(C19._same_raster_twice)
    end = time.time() + 60
    while dock.status.text() == "Checking the chosen layers…" and time.time() < end:
        qgis_app.processEvents()
        time.sleep(0.02)
    assert "Check the warnings above" in dock.status.text()
    assert any("given as the optical and as the SAR input" in w for w in dock.picker.warnings())
    assert dock._fit_results == {}  # applied, nothing left over


def test_the_same_layer_as_optical_and_sar_is_refused(dock_for):
    dock, _ = dock_for(C19._same_raster_twice)
    warnings = dock._update_fit()
    assert any("given as the optical and as the SAR input" in w and "choose the Sentinel-1 SAR raster" in w
               for w in warnings), warnings
    assert "layers fit" not in _fit(dock)
    assert "Check the warnings above" in dock.status.text()


def test_sar_not_in_db_is_refused_pointing_to_the_sar_units_choice(dock_for):
    dock, _ = dock_for(C19._sar_float_dn)
    warnings = dock._update_fit()
    assert any("neither dB nor linear backscatter" in w and "'SAR units' in Options (dB, linear-power or "
               "amplitude)" in w for w in warnings), warnings
    assert not any("--sar-units" in w for w in warnings)


def test_the_sar_units_choice_is_used_by_the_check_and_the_run(dock_for):
    dock, _ = dock_for(_named(C19._sar_linear_undeclared))
    assert any("'SAR units' in Options (linear-power or amplitude)" in w for w in dock._update_fit())
    dock.sar_units.setCurrentText("linear-power")  # the combo's signal re-runs the check
    assert dock.wait_for_fit() == []
    dock.runtime.setCurrentText("eager")
    params = dock.build_params()
    assert (params.sar_units, params.runtime) == ("linear-power", "eager")


def test_alphabetical_band_files_without_b8a_are_refused(dock_for):
    dock, _ = dock_for(C19._vrt_alphabetical_no_b8a)
    warnings = dock._update_fit()
    assert any("B8A is not among them" in w and "the optical 'bands' field" in w for w in warnings), warnings


def test_alphabetical_band_files_fit_once_reordered(dock_for):
    """Reordered by the band files' names, said in the fit check as information, not as a warning."""
    dock, _ = dock_for(C19._vrt_alphabetical)
    assert dock._update_fit() == []
    notes = dock.picker.notes()
    assert len(notes) == 1, notes
    assert notes[0].startswith("the optical bands of this VRT are stacked in alphabetical order (B01 B02 ")
    assert "B11 B12 B8A, by the VRT's source file names" in notes[0]
    assert notes[0].endswith("read in the checkpoint's order: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12")
    shown = _fit(dock)
    assert "the layers fit its bands" in shown and "ℹ the optical bands of this VRT" in shown, shown
    assert "Ready: press Classify" in dock.status.text()
    dock.optical_bands.setText("2,3,4,5,6,7,8,12,10,11")  # the user's own order: nothing reordered
    dock.optical_bands.editingFinished.emit()
    assert dock.wait_for_fit() == [] and dock.picker.notes() == []


def test_a_pixel_size_far_from_training_warns(dock_for):
    dock, _ = dock_for(_named(C19._coarse_optical))
    warnings = dock._update_fit()
    assert len(warnings) == 1 and "optical pixels are 60 m" in warnings[0], warnings
    assert "resample the optical to 10 m" in warnings[0] and not warnings[0].startswith("warning:")
