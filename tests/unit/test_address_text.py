"""Address text: checks, normalisation (full-width, numerals, suffixes, prefixes) and parsing into parts."""

from __future__ import annotations

import re

import pytest

from geogrid.addresses.text import MAX_CHARS, Names, Parts, check_text, normalize, parse
from geogrid.errors import InvalidAddress
from geogrid.people import shown

WIDE = str.maketrans("０１２３４５６７８９", "0123456789")


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("迎泽路３２号", "迎泽路32号"),  # full-width digits
        ("迎泽路三十二号", "迎泽路32号"),  # Chinese numerals to digits
        ("康和小区五号楼二单元", "康和小区5号楼2单元"),
        ("康和小区5栋2门", "康和小区5号楼2单元"),
        ("康和小区5幢", "康和小区5号楼"),
        ("康和小区5座", "康和小区5号楼"),
        ("康和小区 5号楼，2单元。", "康和小区5号楼2单元"),  # spaces and punctuation
        ("内蒙古自治区鄂尔多斯市准格尔旗迎泽路32号", "迎泽路32号"),  # prefixes stripped
        ("内蒙古鄂尔多斯准格尔旗康和小区", "康和小区"),
        ("鄂尔多斯大街3号", "鄂尔多斯大街3号"),  # a street named after the city keeps its name
        ("兴安轩新村2号楼", "兴安轩新村2号楼"),  # 兴安 (兴安盟) alone is a compound's word, not a prefix
        ("纬十一路507号", "纬11路507号"),
    ],
)
def test_normalize(text: str, norm: str) -> None:
    assert normalize(text) == norm


def test_numerals_both_ways_meet() -> None:
    assert normalize("三十二号五号楼") == normalize("32号5号楼") == "32号5号楼"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "薛家湾镇迎泽路32号康和小区5号楼2单元",
            Parts(
                township="薛家湾镇", road="迎泽路", door="32", compound="康和小区", building="5", entrance="2"
            ),
        ),
        (  # reordered: compound and building before road and door
            "康和小区5栋2单元，迎泽路32号",
            Parts(road="迎泽路", door="32", compound="康和小区", building="5", entrance="2"),
        ),
        ("康和小区五号", Parts(compound="康和小区", building="5")),  # 5号 after a compound: the building
        (
            "十二连城乡杨家圪堵村8组20号",
            Parts(township="12连城乡", village="杨家圪堵村", group="8", door="20"),
        ),
        ("巴音敖包嘎查十组十号", Parts(village="巴音敖包嘎查", group="10", door="10")),
        ("109国道225号", Parts(road="109国道", door="225")),
        ("新街街12号", Parts(road="新街街", door="12")),
        (
            "嘉瑞园3号1单元凤山路49号",
            Parts(road="凤山路", door="49", building="3", entrance="1", rest="嘉瑞园"),
        ),
        ("迎泽路32号502室", Parts(road="迎泽路", door="32", rest="502室")),
    ],
)
def test_parse(text: str, parts: Parts) -> None:
    assert parse(text, {"12连城乡": "township"}) == parts


def test_known_names_are_taken_whole() -> None:
    known = {"大路镇": "township", "苏家路": "road"}
    assert parse("大路镇苏家路51号", known) == Parts(township="大路镇", road="苏家路", door="51")
    # without the registry's names the suffix rule reads 大路 as a road
    assert parse("大路镇苏家路51号").road == "大路"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("，。！？、 ", "only punctuation"),
        ("康和小区\x005号楼", "control character"),
        ("康和小区\x075号楼", "control character"),
        ("康" * (MAX_CHARS + 1), "characters long"),
    ],
)
def test_bad_text_is_refused_with_its_reason(text: str, problem: str) -> None:
    with pytest.raises(InvalidAddress, match=problem):
        check_text(text)


@pytest.mark.parametrize("text", ["hello world", "Room 5, Block B", "康和小区\n5号楼", "🏠康和小区5号楼"])
def test_latin_emoji_and_newlines_are_not_errors(text: str) -> None:
    assert check_text(text) == text.strip()


@pytest.mark.parametrize("text", ["😀😀", "🏠 🔥！", "★☆"])
def test_a_text_without_letters_or_digits_is_refused(text: str) -> None:
    with pytest.raises(InvalidAddress, match="no letters or digits"):
        check_text(text)


def test_names_lookup_exact_core_pinyin_and_typo() -> None:
    names = Names(["康和小区", "康安苑小区", "康安苑公寓", "迎泽小区"], ("小区", "公寓"))
    assert names.lookup("康和小区")["康和小区"].how == "exact"
    assert names.lookup("抗和小区")["康和小区"].score >= 0.9  # homophone (kang)
    assert names.lookup("康禾小区")["康和小区"].how == "fuzzy"  # one character off
    both = names.lookup("康安苑", bare=True)  # suffix not said: both compounds, neither sure
    assert set(both) >= {"康安苑小区", "康安苑公寓"}
    assert both["康安苑小区"].score == both["康安苑公寓"].score < 1.0


@pytest.mark.parametrize(
    "text",
    [
        "康和小区5栋 13912345678",
        "电话13912345678康和小区5栋",
        "康和小区5栋，联系电话：0477-1234567",
        "康和小区5栋 来电139****5678",  # as the queue keeps it, masked
        "康和小区５栋　ＴＥＬ１３９１２３４５６７８",
        "康和小区5栋 电话 138 1234 1234",
        "康和小区5栋 手机138-1234-1234",
        "康和小区5栋 +86 13812341234",
        "康和小区5栋 8613812341234",
    ],
)
def test_a_callers_phone_is_no_part_of_the_address(text: str) -> None:
    assert normalize(text) == "康和小区5号楼"
    assert normalize(shown(text)) == "康和小区5号楼"  # as the queue keeps it
    assert not re.search(r"\d{5}", shown(text).translate(WIDE)), shown(text)  # no run of a phone is shown


def test_a_text_of_only_division_names_keeps_the_last_whole() -> None:
    assert normalize("内蒙古鄂尔多斯市") == "鄂尔多斯市"
    assert normalize("内蒙古自治区鄂尔多斯市准格尔旗") == "准格尔旗"
    assert normalize("鄂尔多斯大街12号") == "鄂尔多斯大街12号"


def test_a_text_that_grows_past_the_limit_when_normalised_is_refused() -> None:
    with pytest.raises(InvalidAddress, match="once normalised"):
        check_text("ﷺ" * 20)  # one character each, 18 once normalised
