"""What every CLAIRE algorithm shares: group, icon, instance creation, help, parameters and error mapping."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, FrozenSet, Iterator, List, Optional

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterDefinition
from qgis.PyQt.QtGui import QIcon

from ..paths import resource


def icon_path(name: str = "claire.svg") -> str:
    """Path of one of the plugin's SVG icons."""
    return resource("icons", name)


ICON = icon_path()


@contextmanager
def engine_errors(qgis_message: bool = True, names: Optional[Dict[str, str]] = None) -> Iterator[None]:
    """Turn the engine's user errors into QgsProcessingException; with `qgis_message`, command-line flags
    in the message are renamed to the algorithm's parameters (e.g. --tile-size -> TILE_SIZE; `names`:
    common.qgis_message's)."""
    from ..core.errors import USER_ERRORS

    try:
        yield
    except USER_ERRORS as exc:
        if qgis_message:
            from .common import qgis_message as rename
            raise QgsProcessingException(rename(str(exc), names)) from None
        raise QgsProcessingException(str(exc)) from None
    except ModuleNotFoundError as exc:
        from ..deps import missing_package_hint

        hint = missing_package_hint(exc)
        if not hint:
            raise
        raise QgsProcessingException(hint) from None


class ClaireAlgorithm(QgsProcessingAlgorithm):
    """Base of CLAIRE's algorithms; subclasses set the class attributes and implement the rest."""

    ICON_NAME = "claire.svg"
    INTRO = ""  # the first paragraph of the help, HTML
    HELP: Dict[str, str] = {}  # parameter name -> help text (shown in the help list and as tooltips)
    ADVANCED: FrozenSet[str] = frozenset()  # parameters shown under "Advanced parameters"

    def __init__(self) -> None:
        super().__init__()
        #: layer post-processors of this run: QGIS keeps only a C++ pointer, so the Python objects live here
        self._post_processors: List[object] = []

    def group(self) -> str:
        return "Land cover"

    def groupId(self) -> str:  # noqa: N802
        return "landcover"

    def icon(self) -> QIcon:
        return QIcon(icon_path(self.ICON_NAME))

    def createInstance(self) -> "ClaireAlgorithm":  # noqa: N802
        return type(self)()

    def shortHelpString(self) -> str:  # noqa: N802
        items = "".join(f"<li><b>{k}</b>: {v}</li>" for k, v in self.HELP.items())
        return f"<p>{self.INTRO}</p><ul>{items}</ul>"

    def add_parameters(self, params: List[QgsProcessingParameterDefinition]) -> None:
        """Add `params` with their help from HELP, flagging those in ADVANCED as advanced."""
        for param in params:
            param.setHelp(self.HELP[param.name()])
            if param.name() in self.ADVANCED:
                param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(param)
