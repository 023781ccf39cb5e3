"""The algorithms' progress texts as QGIS's dialog shows them (QA round 21: a 400-character warning as a progress
text widened the claire:train dialog to 2513 px, its buttons past the screen, for good)."""
from __future__ import annotations


class _Feedback:
    def __init__(self) -> None:
        self.calls = []

    def setProgress(self, value) -> None:  # noqa: N802
        self.calls.append(("progress", value))

    def setProgressText(self, text) -> None:  # noqa: N802
        self.calls.append(("text", text))

    def pushWarning(self, text) -> None:  # noqa: N802
        self.calls.append(("warning", text))

    def pushInfo(self, text) -> None:  # noqa: N802
        self.calls.append(("info", text))


def test_long_messages_go_to_the_log_whole_and_the_label_short(qgis_app):
    from claire.claire_plugin.processing.common import PROGRESS_TEXT_MAX, progress_bridge

    fb = _Feedback()
    report = progress_bridge(fb)
    warning = "warning: 3 polygon(s) look more like another class than like the other polygons of their own " * 4
    report(0.04, warning)
    report(0.04, warning)  # said once
    report(0.05, "training on 120 pixels, validating on 40")
    long_info = "training on 911623 pixels, validating on 349834: after each epoch on 42 of the 421 held-out " \
                "windows (25079 pixels, every class), at the end on all"
    report(0.05, long_info)
    texts = [v for k, v in fb.calls if k == "text"]
    assert [v for k, v in fb.calls if k == "warning"] == [warning[len("warning: "):]]
    assert [v for k, v in fb.calls if k == "info"] == [long_info]
    assert len(texts) == 3 and all(len(t) <= PROGRESS_TEXT_MAX for t in texts)
    assert texts[0].startswith("warning: 3 polygon(s)") and texts[0].endswith("\u2026")
    assert texts[1] == "training on 120 pixels, validating on 40"
