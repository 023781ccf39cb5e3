"""What every CLAIRE algorithm shares: group, icon, instance creation, help, parameters and error mapping."""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
)
from qgis.PyQt.QtGui import QIcon

from ...models.quoting import quoted
from ..paths import resource


def icon_path(name: str = "claire.svg") -> str:
    """Path of one of the plugin's SVG icons."""
    return resource("icons", name)


ICON = icon_path()


@contextmanager
def engine_errors(qgis_message: bool = True, names: Optional[Dict[str, str]] = None,
                  feedback=None) -> Iterator[None]:
    """Turn the engine's user errors into QgsProcessingException; with `qgis_message`, command-line flags
    in the message are renamed to the algorithm's parameters (e.g. --tile-size -> TILE_SIZE; `names`:
    common.qgis_message's). With `feedback`, what a run had planned before the error (memory, tile, lanes,
    bands) goes to the log first, as the command line prints it."""
    from ..core.errors import USER_ERRORS

    try:
        yield
    except USER_ERRORS as exc:
        if feedback is not None:
            from .common import qgis_message as rename
            for m in getattr(exc, "run_messages", None) or []:
                feedback.pushInfo(f"planned: {rename(m, names)}")
        if qgis_message:
            from .common import qgis_message as rename
            raise QgsProcessingException(rename(str(exc), names)) from None
        raise QgsProcessingException(str(exc)) from None
    except (ImportError, OSError) as exc:  # a package missing, or there but failing to load
        from ..deps import missing_package_hint

        hint = missing_package_hint(exc)
        if not hint:
            raise
        raise QgsProcessingException(hint) from None


#: Why a layer given as a feature source (the Toolbox's "Selected features only", a model's feature input) is
#: refused: CLAIRE reads the layer's file, which holds every feature.
SOURCE_DEFINITION = ("it was given as a feature source (\"Selected features only\", or a model's feature input), "
                     "but CLAIRE reads the layer's file, which holds every feature: give the layer itself, or "
                     "export the selection (right-click > Export > Save Selected Features As) and give that file")

#: The layer post-processors of every run of the session. QGIS keeps only a C++ pointer to each and calls it when
#: it loads the results, after the algorithm object that made it is gone: the batch dialog, runAndLoadResults and
#: models run a copy (create()) and delete it, so a list held by the algorithm left a dangling pointer (the map
#: loaded unstyled, or QGIS crashed). A few hundred bytes each.
POST_PROCESSORS: List[object] = []


#: What every CLAIRE algorithm is about, for the toolbox's search (metadata.txt's tags are the plugin manager's).
COMMON_TAGS = ("land cover", "landcover", "land use", "classification", "CLAIRE", "Sentinel", "Sentinel-2",
               "Sentinel-1", "SAR", "optical", "remote sensing")


def parameter_title(param: QgsProcessingParameterDefinition, short: bool = False) -> str:
    """A parameter as the dialog labels it, with the name qgis_process and scripts use: "Device (DEVICE)"; `short`
    leaves out a hint the label ends with ("Tile size kept (0: default 896)" -> "Tile size kept"), for messages."""
    label = param.description()
    if short:
        label = re.sub(r"\s*\([^()]*\)$", "", label) or label
    return f"{label} ({param.name()})"


#: Parameter names that are also words of the messages' prose ("the SAR raster"): titled only where a message
#: begins with them ("SAR: ...").
_PROSE_NAMES = frozenset({"SAR", "N"})
#: A path, file name or quoted value in a message: left as it is.
_QUOTED_VALUE = re.compile(r"""(?:^|(?<=[\s(]))(?:'[^']*'|"[^"]*")(?=$|[\s),.;:])""")


def titled_message(text: str, params: List[QgsProcessingParameterDefinition]) -> str:
    """`text` with the first mention of each parameter name as the dialog's label plus the name ("FIELD: choose the
    field of LABELS" -> "Class field (FIELD): choose the field of Training polygons or points (LABELS)"), so that
    a user of the dialog finds the box and a user of qgis_process the name; a value after it reads "= value"
    ("use e.g. TILE_SIZE 512" -> "use e.g. Tile size kept (TILE_SIZE) = 512"). Left as they are: names in a path, a
    file name, a quoted value or a code sample (REFERENCE:CLASSIFIED, NAME=value), a name already titled or
    alone in parentheses, and later mentions."""
    by_name = {p.name(): p for p in params}
    names = sorted((n for n in by_name if n not in _PROSE_NAMES), key=len, reverse=True)
    if names:
        pattern = re.compile(r"(?<![\w/\\.\-:])(" + "|".join(map(re.escape, names))
                             + r")(?![\w=/\\\-])(?![.:]\S)(?! \()( \d[\d,.]*)?")
        seen = set()

        def title(match) -> str:
            name, value, whole = match.group(1), match.group(2) or "", match.string
            start, end = match.start(1), match.end(1)
            if name in seen or (whole[start - 1:start] == "(" and whole[end:end + 1] == ")"):
                return match.group(0)
            seen.add(name)
            return parameter_title(by_name[name], short=True) + (f" = {value.strip()}" if value else "")

        pieces, at = [], 0
        for q in _QUOTED_VALUE.finditer(text):
            pieces += [pattern.sub(title, text[at:q.start()]), q.group(0)]
            at = q.end()
        text = "".join(pieces + [pattern.sub(title, text[at:])])
    for name in _PROSE_NAMES & set(by_name):
        if text.startswith(f"{name}:"):
            text = parameter_title(by_name[name], short=True) + text[len(name):]
    return text


class ClaireAlgorithm(QgsProcessingAlgorithm):
    """Base of CLAIRE's algorithms; subclasses set the class attributes and implement the rest.

    A subclass's processAlgorithm is wrapped so that the messages of its QgsProcessingException name parameters
    as the dialog labels them (titled_message)."""

    ICON_NAME = "claire.svg"
    INTRO = ""  # the first paragraph of the help, HTML
    HELP: Dict[str, str] = {}  # parameter name -> help text (shown in the help list and as tooltips)
    ADVANCED: FrozenSet[str] = frozenset()  # parameters shown under "Advanced parameters"
    TAGS: Tuple[str, ...] = ()  # words the toolbox's search finds it by, beside COMMON_TAGS

    def __init__(self) -> None:
        super().__init__()
        self._post_processors: List[object] = POST_PROCESSORS

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("processAlgorithm")
        if run is None or getattr(run, "_titled", False):
            return

        def process_algorithm(self, parameters, context, feedback):
            try:
                return run(self, parameters, context, feedback)
            except QgsProcessingException as exc:
                titled = titled_message(str(exc), self.parameterDefinitions())
                if titled == str(exc):
                    raise
                raise QgsProcessingException(titled) from None

        process_algorithm._titled = True
        process_algorithm.__doc__ = run.__doc__
        cls.processAlgorithm = process_algorithm

    def group(self) -> str:
        return "Land cover"

    def groupId(self) -> str:  # noqa: N802
        return "landcover"

    def icon(self) -> QIcon:
        return QIcon(icon_path(self.ICON_NAME))

    def svgIconPath(self) -> str:  # noqa: N802
        """The icon the graphical modeller draws (it asks for the SVG, not icon())."""
        return icon_path(self.ICON_NAME)

    def tags(self) -> List[str]:
        return list(COMMON_TAGS + self.TAGS)

    def createInstance(self) -> "ClaireAlgorithm":  # noqa: N802
        return type(self)()

    def shortHelpString(self) -> str:  # noqa: N802
        """The algorithm's help; first, where packages are missing, what and how to install them (the toolbox's
        help panel and `qgis_process help` show it before a run fails, headless too)."""
        import html

        from ..deps import install_hint, missing

        # escaped: the help panel and the tooltips render HTML, and dropped "(?P<key>...)" from the examples
        items = "".join(f"<li><b>{html.escape(title)}</b>: {html.escape(text, quote=False)}</li>"
                        for title, text in self.help_items())
        absent = missing()
        warning = f"<p><b>⚠ {html.escape(install_hint(absent))}</b></p>" if absent else ""
        return f"{warning}<p>{self.INTRO}</p><ul>{items}</ul>"

    def help_items(self) -> List[Tuple[str, str]]:
        """(title, text) per parameter in the dialog's order, titled as the dialog labels it with the name
        qgis_process and messages use ("Device (DEVICE)"); HELP entries of no parameter last, by name."""
        params = {p.name(): p for p in self.parameterDefinitions()}
        ordered = [name for name in params if name in self.HELP]
        ordered += [name for name in self.HELP if name not in params]
        return [(parameter_title(params[name]) if name in params else name, self.HELP[name]) for name in ordered]

    def add_parameters(self, params: List[QgsProcessingParameterDefinition]) -> None:
        """Add `params` with their help from HELP, flagging those in ADVANCED as advanced."""
        import html

        for param in params:
            param.setHelp(html.escape(self.HELP[param.name()], quote=False))  # a tooltip is HTML too
            if param.name() in self.ADVANCED:
                param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(param)

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """QGIS's check of every parameter, with a message that says what was wrong and what is accepted
        (QGIS itself only says "Incorrect parameter value for NAME")."""
        for param in self.parameterDefinitions():  # QGIS takes NaN, and reads it and 1e12 as -2147483648
            if not number_in_range(param, parameters.get(param.name())):
                return False, parameter_problem(param, parameters.get(param.name()))
            problem = destination_problem(param, parameters.get(param.name()))
            if problem:
                return False, problem
        ok, message = super().checkParameterValues(parameters, context)
        if ok:
            return ok, message
        for param in self.parameterDefinitions():
            value = parameters.get(param.name())
            if not param.checkValueIsAcceptable(value, context):
                return False, parameter_problem(param, value)
        return ok, message


def destination_problem(param: QgsProcessingParameterDefinition, value) -> Optional[str]:
    """What is wrong with a file or folder output's value that QGIS lets through, or None: a name of spaces only, or
    a provider's address ("memory:", "ogr:...") where only a file can be written (each was written as a file of that
    name in QGIS's working folder)."""
    if param.type() not in ("rasterDestination", "fileDestination", "folderDestination") or value is None:
        return None
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        sink = value.sink
        value = sink.staticValue() if hasattr(sink, "staticValue") else sink
    if not isinstance(value, str) or value == "" or value == "TEMPORARY_OUTPUT":
        return None
    name = parameter_title(param)
    if not value.strip():
        return f"{name} is a name of spaces only; give a file path, or leave it empty where it is optional"
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:(?![\\/])", value) and not re.match(r"^[A-Za-z]:[\\/]", value):
        what = "a folder" if param.type() == "folderDestination" else "a file"
        return (f"{name} = {quoted(value)} is a data provider's address; this output is written as {what}: give "
                f"its path")
    return None


def number_in_range(param: QgsProcessingParameterDefinition, value) -> bool:
    """False for a number or enum parameter given NaN or infinity, or, where QGIS reads it as a 32-bit integer (a
    whole number, an option), a value beyond that; True for anything else (QGIS's own check judges it)."""
    import math

    from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

    if not isinstance(param, (QgsProcessingParameterNumber, QgsProcessingParameterEnum)) or value is None \
            or isinstance(value, bool):
        return True
    try:
        number = float(value)
    except (TypeError, ValueError):
        return True
    if not math.isfinite(number):
        return False
    whole = isinstance(param, QgsProcessingParameterEnum) or \
        param.dataType() == QgsProcessingParameterNumber.Type.Integer
    return not whole or abs(number) <= 2 ** 31 - 1


def parameter_problem(param: QgsProcessingParameterDefinition, value) -> str:
    """What is wrong with `value` for `param`, naming the parameter, what it got and what it accepts."""
    import os

    from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

    from ..core.io.gdal_names import source_file

    name = parameter_title(param)
    if value is None or value == "":
        return f"{name} is required; give a value"
    if isinstance(value, QgsProcessingFeatureSourceDefinition):
        return f"{name}: {SOURCE_DEFINITION}"
    if isinstance(param, QgsProcessingParameterNumber):
        low, high = param.minimum(), param.maximum()
        whole = param.dataType() == QgsProcessingParameterNumber.Type.Integer

        def fmt(v: float) -> str:
            return f"{int(v)}" if whole else f"{v:g}"

        if low > -1e300 and high < 1e300:
            span = f" from {fmt(low)} to {fmt(high)}"
        elif low > -1e300:
            span = f" of at least {fmt(low)}"
        else:
            span = f" of at most {fmt(high)}" if high < 1e300 else ""
        return f"{name} = {quoted(value)} is not accepted; give {'a whole number' if whole else 'a number'}{span}"
    if isinstance(param, QgsProcessingParameterEnum):
        options = ", ".join(f"{i} ({o})" for i, o in enumerate(param.options()))
        return f"{name} = {quoted(value)} is not one of its options; give one of {options}"
    if isinstance(value, str) and param.type() in ("source", "vector", "raster", "file", "layer"):
        path = source_file(value)
        if not os.path.exists(path):
            return f"{name}: {quoted(path)} does not exist; check the path"
        if os.path.isdir(path) and param.type() == "file":
            ext = getattr(param, "extension", lambda: "")() or ""
            return (f"{name}: {quoted(path)} is a folder; give a file{f' (.{ext})' if ext else ''} in it, or leave "
                    f"it empty where it is optional")
        kind = {"source": "a vector layer (GeoPackage, shapefile, GeoJSON...)",
                "vector": "a vector layer (GeoPackage, shapefile, GeoJSON...)",
                "raster": "a raster GDAL can read (GeoTIFF, VRT...)"}.get(param.type(), "a layer or file of that kind")
        return f"{name}: {quoted(path)} cannot be opened as {kind}; give {kind}"
    return f"{name} = {quoted(value)} is not accepted"
