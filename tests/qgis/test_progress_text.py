"""The algorithms' progress texts as QGIS's dialog shows them (QA round 21: a 400-character warning as a progress
text widened the claire:train dialog to 2513 px, its buttons past the screen, for good; the first fix wrote every
long message twice in the dialog's log, which also logs the label)."""
from __future__ import annotations


def _dialog_log(messages):
    """(the dialog's log text, its progress label, its width) after `messages` reached a real algorithm dialog's
    feedback through progress_bridge."""
    from qgis.gui import QgsProcessingAlgorithmDialogBase
    from qgis.PyQt.QtWidgets import QApplication, QLabel, QTextEdit

    from claire.claire_plugin.processing.common import progress_bridge

    class Dialog(QgsProcessingAlgorithmDialogBase):  # the base is abstract in the bindings
        pass

    dialog = Dialog()
    dialog.resize(688, 523)
    dialog.show()
    report = progress_bridge(dialog.createFeedback())
    for fraction, message in messages:
        report(fraction, message)
    QApplication.processEvents()
    log = "\n".join(t.toPlainText() for t in dialog.findChildren(QTextEdit))
    label = next(lab.text() for lab in dialog.findChildren(QLabel) if lab.objectName() == "lblProgress")
    width = dialog.width()
    dialog.close()
    return log, label, width


def test_each_message_once_in_the_log_and_the_label_short(qgis_app):
    from claire.claire_plugin.processing.common import PROGRESS_TEXT_MAX, split_progress_text

    warning = "3 polygon(s) look more like another class than like the other polygons of their own class " * 4
    long_info = ("training on 911623 pixels, validating on 349834: after each epoch on 42 of the 421 held-out "
                 "windows (25079 pixels, every class), at the end on all")
    log, label, width = _dialog_log([(0.04, "warning: " + warning.strip()), (0.04, "warning: " + warning.strip()),
                                     (0.05, long_info)])
    assert log.count("3 polygon(s) look more like another class") == 4  # the warning once (it repeats the phrase 4x)
    assert log.count("training on 911623 pixels") == 1 and log.count("after each epoch on 42") == 1
    assert label == "training on 911623 pixels, validating on 349834" and len(label) <= PROGRESS_TEXT_MAX
    assert width < 1000
    head, rest = split_progress_text("word " * 40)
    assert len(head) <= PROGRESS_TEXT_MAX and head.endswith("\u2026") and rest.startswith("\u2026")
    assert (head[:-1] + " " + rest[1:]).split() == ("word " * 40).split()
    assert split_progress_text("short") == ("short", "")
