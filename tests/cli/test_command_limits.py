"""A flag shared by several commands is refused with the limit of the command it is given to,
so the first refusal names the limit that applies, and an empty path says so."""

from __future__ import annotations

import pytest

from striate.cli.main import build_parser, main
from striate.data.sources.folder import read_image_file
from striate.errors import StriateError


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify", "RUN", "a.png", "--top-k", "0"], "top-k must be at least 1, got 0"),
        (["classify", "RUN", "a.png", "--top-k", "100001"], "over the limit 100000"),
        (["sample", "RUN", "--top-k", "1000001"], "top-k 1000001 is over the limit 1000000"),
        (["translate", "RUN", "x", "--beam", "1024"], "beam size 1024 is over the limit 50"),
        (["caption", "RUN", "a.png", "--beam", "51"], "beam size 51 is over the limit 50"),
        (["translate", "RUN", "x", "--max-length", "1001"], "over the limit 1000"),
        (["caption", "RUN", "a.png", "--max-length", "2000"], "over the limit 1000"),
    ],
)
def test_the_first_refusal_names_the_limit_of_the_command(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_the_same_flag_keeps_its_own_meaning_elsewhere():
    parse = build_parser().parse_args
    assert parse(["sample", "RUN", "--top-k", "0"]).top_k == 0  # all
    assert parse(["train", "sentiment", "--max-length", "5000"]).max_length == 5000
    assert parse(["classify", "RUN", "a.png", "--top-k", "100000"]).top_k == 100000


def test_an_empty_image_path_is_called_one():
    with pytest.raises(StriateError, match=r"^an empty path is not an image file$"):
        read_image_file("")


def test_the_parsers_limits_are_the_predictors():
    from striate.cli import values
    from striate.predict.base import Limits

    assert Limits().max_beam == values.MAX_PREDICT_BEAM
    assert Limits().max_length == values.MAX_PREDICT_LENGTH
