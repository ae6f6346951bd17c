"""The committed model and the README's multi-seed table belong to the current defaults."""

import dataclasses
import json
import os

import pytest

import infogan
from multiseed import BOOKKEEPING

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_options():
    return {
        field.name: getattr(infogan.Config(), field.name)
        for field in dataclasses.fields(infogan.Config)
        if field.name not in BOOKKEEPING
    }


@pytest.mark.parametrize(
    "path, key",
    [("model/config.json", None), ("figures/multiseed.json", "config")],
    ids=["committed model", "README table"],
)
def test_published_results_come_from_the_defaults(path, key):
    with open(os.path.join(ROOT, path)) as file:
        config = json.load(file)
    config = config[key] if key else config
    # An option added after the file was made counts as the value that reproduces it.
    trained_with = {
        name: config.get(name, infogan.BEFORE_OPTION_EXISTED.get(name))
        for name in default_options()
    }
    assert trained_with == default_options(), f"{path} was made with other options"
