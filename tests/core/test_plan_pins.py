"""Mutation audit, fourth wave (QA round 15): the plan refuses a class coded as the nodata value and ignores a
reference's nodata 0 where a class is coded 0. Each test was shown to fail on its mutant."""
import pytest

from claire.claire_plugin.core.engine.plan import card_classes, reference_lut
from claire.claire_plugin.core.errors import ClaireError


def test_a_class_coded_as_the_nodata_value_is_refused():
    card = {"nodata": 7, "classes": [{"index": 0, "value": 1, "name": "water"},
                                       {"index": 1, "value": 7, "name": "trees"}]}
    with pytest.raises(ClaireError, match="equals the nodata value"):
        card_classes(card)


def test_a_reference_nodata_of_0_is_ignored_even_where_a_class_is_coded_0():
    classes = [{"index": 0, "value": 0, "name": "water"}, {"index": 1, "value": 1, "name": "trees"}]
    lut = reference_lut(classes, 0)
    assert lut[0] == -1 and lut[1] == 1
