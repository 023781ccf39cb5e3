"""End to end: `claire classify --reference --report` writes a grounded, paragraph-long report."""
import json

from claire.claire_plugin.cli.main import main
from claire.claire_plugin.core.explain.checker import check_grounding


def test_classify_with_reference_and_report(raster_pair, tiny_checkpoint, tmp_path, capsys):
    report = tmp_path / "report.json"
    code = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"],
                 "--checkpoint", tiny_checkpoint, "--output", str(tmp_path / "classes.tif"),
                 "--reference", raster_pair["labels"], "--report", str(report), "--quiet"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(report.read_text())
    ex = data["explanation"]
    assert ex["generator"] == "template" and "template" in ex["generator_label"]
    assert len(ex["text"].split()) >= 80 and ex["text"].count(".") >= 5
    assert ex["grounded_share"] == 1.0 and ex["flagged_sentences"] == []
    assert check_grounding(ex["text"], data["facts"]).grounded_share == 1.0
    assert data["facts"]["metrics"] is not None and "overall accuracy" in ex["text"]
    md = (tmp_path / "report.md").read_text()
    assert "## Per-class accuracy" in md and "## Classes" in md
