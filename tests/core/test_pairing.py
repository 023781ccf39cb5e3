"""Pairing of optical and SAR files by name (no QGIS)."""
import os

import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.io.pairing import (
    list_rasters,
    output_name,
    pair_files,
    pair_folders,
    parse_rule,
)


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"x")


def test_identical_stem_pairs_and_reports_unmatched(tmp_path):
    _touch(tmp_path / "opt", "a.tif", "b.TIF", "only_opt.tif", "notes.txt")
    _touch(tmp_path / "sar", "a.tiff", "b.tif", "only_sar.tif")
    res = pair_folders(str(tmp_path / "opt"), str(tmp_path / "sar"), "")
    assert [(p.key, os.path.basename(p.optical), os.path.basename(p.sar)) for p in res.pairs] == [
        ("a", "a.tif", "a.tiff"), ("b", "b.TIF", "b.tif")]
    assert [os.path.basename(u.path) for u in res.unmatched_optical] == ["only_opt.tif"]
    assert [os.path.basename(u.path) for u in res.unmatched_sar] == ["only_sar.tif"]
    assert "no SAR file" in res.unmatched_optical[0].reason


def test_suffix_replacement_rule(tmp_path):
    opt = [str(tmp_path / "o" / "x_S2.tif"), str(tmp_path / "o" / "y_S2.tif")]
    sar = [str(tmp_path / "s" / "x_S1.tif"), str(tmp_path / "s" / "y_S2.tif")]
    res = pair_files(opt, sar, parse_rule("_S2->_S1"))
    assert [(os.path.basename(p.optical), os.path.basename(p.sar)) for p in res.pairs] == [
        ("x_S2.tif", "x_S1.tif")]
    assert {os.path.basename(u.path) for u in res.unmatched} == {"y_S2.tif"}
    assert {u.side for u in res.unmatched} == {"optical", "sar"}


def test_regex_rule_uses_key_group_and_reports_ambiguity(tmp_path):
    rule = parse_rule(r"regex:(?P<key>tile\d+)")
    opt = ["/o/S2_tile1_2020.tif", "/o/S2_tile2.tif", "/o/readme_map.tif"]
    sar = ["/s/S1_tile1_asc.tif", "/s/S1_tile2_asc.tif", "/s/S1_tile2_desc.tif"]
    res = pair_files(opt, sar, rule)
    assert [(p.key, p.sar) for p in res.pairs] == [("tile1", "/s/S1_tile1_asc.tif")]
    reasons = {u.path: u.reason for u in res.unmatched}
    assert "several SAR files" in reasons["/o/S2_tile2.tif"]
    assert "does not match" in reasons["/o/readme_map.tif"]
    assert "/s/S1_tile2_asc.tif" in reasons and "/s/S1_tile2_desc.tif" in reasons


def test_keys_match_case_aside_and_keep_the_optical_files_spelling(tmp_path):
    """The batch summary's key is the tile as the optical file names it, not lowercased."""
    _touch(tmp_path / "opt", "Site_T31UFQ_S2.tif", "Other_S2.tif")
    _touch(tmp_path / "sar", "site_t31ufq_s1.tif", "OTHER_s1.tif")
    res = pair_folders(str(tmp_path / "opt"), str(tmp_path / "sar"), "_S2->_S1")
    assert sorted((p.key, os.path.basename(p.sar)) for p in res.pairs) == [
        ("Other_S1", "OTHER_s1.tif"), ("Site_T31UFQ_S1", "site_t31ufq_s1.tif")]
    res = pair_folders(str(tmp_path / "opt"), str(tmp_path / "sar"), r"regex:(?P<key>t\d\d[a-z]{3})")
    assert [p.key for p in res.pairs] == ["T31UFQ"]


@pytest.mark.parametrize("bad", ["regex:(", "foo", "->x", "a->b->c"])
def test_bad_rules_raise_clear_errors(bad):
    with pytest.raises(ClaireError):
        parse_rule(bad)


def test_missing_folder_raises(tmp_path):
    with pytest.raises(ClaireError, match="does not exist"):
        list_rasters(str(tmp_path / "nope"))


def test_output_name():
    res = pair_files(["/o/a_S2.tif"], ["/s/a_S1.tif"], parse_rule("_S2->_S1"))
    assert output_name(res.pairs[0]) == "a_S2_landcover.tif"


def test_one_folder_holding_both_sides_is_split_by_the_rule(tmp_path):
    """x_S2.tif beside x_S1.tif in one folder: a replacement rule tells the optical from the SAR files; the
    identical-name rule cannot, and says so."""
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.io.pairing import pair_folders

    for name in ("a_S2.tif", "a_S1.tif", "b_S2.tif", "b_S1.tif", "c_S1.tif"):
        (tmp_path / name).write_bytes(b"")
    result = pair_folders(str(tmp_path), str(tmp_path), "_S2->_S1")
    assert [(os.path.basename(p.optical), os.path.basename(p.sar)) for p in result.pairs] == [
        ("a_S2.tif", "a_S1.tif"), ("b_S2.tif", "b_S1.tif")]
    assert [(os.path.basename(u.path), u.side) for u in result.unmatched] == [("c_S1.tif", "sar")]
    with pytest.raises(ClaireError, match=r"same folder .*give a pairing rule that tells their files apart"):
        pair_folders(str(tmp_path), str(tmp_path), "")


def test_two_optical_dates_of_one_key_are_both_refused_not_the_first_paired(tmp_path):
    """Pairing by tile with two optical dates: the first by name was paired with the only SAR and the run said ok."""
    rule = parse_rule(r"regex:(?P<key>T\d\d[A-Z]{3})")
    opt = ["/o/S2_20170601_T31UFQ.tif", "/o/S2_20170715_T31UFQ.tif", "/o/S2_20170601_T16AAA.tif"]
    sar = ["/s/S1_20170713_T31UFQ.tif", "/s/S1_20170603_T16AAA.tif"]
    res = pair_files(opt, sar, rule)
    assert [p.key for p in res.pairs] == ["T16AAA"]
    reasons = {u.path: u.reason for u in res.unmatched}
    for path in opt[:2]:
        assert "several optical files have the key 'T31UFQ'" in reasons[path]
        assert "S2_20170601_T31UFQ.tif, S2_20170715_T31UFQ.tif" in reasons[path]
    assert "several optical files" in reasons["/s/S1_20170713_T31UFQ.tif"]


def test_no_pair_at_all_says_why_each_file_was_left(tmp_path):
    from claire.claire_plugin.core.batch import check_pairing

    _touch(tmp_path / "opt", "S2_20170601_T31UFQ.tif")
    _touch(tmp_path / "sar", "S1_20170603_T31UFQ.tif", "S1_20170713_T31UFQ.tif")
    rule = r"regex:(?P<key>T\d\d[A-Z]{3})"
    res = pair_folders(str(tmp_path / "opt"), str(tmp_path / "sar"), rule)
    with pytest.raises(ClaireError) as err:
        check_pairing(res, str(tmp_path / "opt"), str(tmp_path / "sar"), rule)
    assert "S2_20170601_T31UFQ.tif: several SAR files have its key 'T31UFQ': S1_20170603_T31UFQ.tif, " \
           "S1_20170713_T31UFQ.tif" in str(err.value), str(err.value)


def test_a_time_series_pairs_each_optical_date_with_the_nearest_sar_date(tmp_path):
    """QA (a time series): keys had to be equal, so an optical and a SAR of nearby dates never paired (the advice
    to put the date in the key gave 0 pairs). nearest:DAYS[:PATTERN] pairs by the nearest date within a key."""
    _touch(tmp_path / "opt", "S2A_MSIL2A_20230510T073621_N0509_R092_T36MXV_20230510T120000.tif",
           "S2B_MSIL2A_20230525T073619_N0509_R092_T36MXV_20230525T110000.tif",
           "S2A_MSIL2A_20230709T073621_N0509_R092_T36MXV_20230801T120000.tif",
           "S2A_MSIL2A_20230512T073621_N0509_R092_T31UFQ_20230512T120000.tif", "notes_map.tif")
    _touch(tmp_path / "sar", "S1A_IW_GRDH_1SDV_20230513T052314_20230513T052339_T36MXV.tif",
           "S1A_IW_GRDH_1SDV_20230729T052314_20230729T052339_T36MXV.tif",
           "S1A_IW_GRDH_1SDV_20230506T052314_20230506T052339_T31UFQ.tif",
           "S1A_IW_GRDH_1SDV_20230301T052314_20230301T052339_T36MXV.tif")
    res = pair_folders(str(tmp_path / "opt"), str(tmp_path / "sar"), r"nearest:12:(?P<key>T\d\d[A-Z]{3})")
    got = sorted((p.key, os.path.basename(p.sar)[17:25]) for p in res.pairs)
    assert got == [("T31UFQ_20230512", "20230506"), ("T36MXV_20230510", "20230513"),
                   ("T36MXV_20230525", "20230513")], got  # the 05-13 pass serves two dates; tiles never mix
    reasons = {os.path.basename(u.path)[:26]: u.reason for u in res.unmatched}
    assert reasons["S2A_MSIL2A_20230709T073621"] == ("no SAR file within 12 days of 2023-07-09 (the nearest, "
                                                     "S1A_IW_GRDH_1SDV_20230729T052314_20230729T052339_T36MXV.tif, "
                                                     "is 20 days away)")
    assert reasons["notes_map.tif"] == "name does not match the pairing rule"
    assert reasons["S1A_IW_GRDH_1SDV_20230301T"] == "no optical date is nearest to it"
    one = pair_folders(str(tmp_path / "opt"), str(tmp_path / "sar"), "nearest:30")  # no key: every file one site
    assert len(one.pairs) == 4
    with pytest.raises(ClaireError, match=r"needs the most days between an optical and its SAR, e\.g\. nearest:12"):
        parse_rule("nearest:twelve")
