"""The committed model and the README's multi-seed table belong to the current defaults."""

import dataclasses
import json
import os

import pytest

import infogan
from multiseed import BOOKKEEPING, training_options

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
    trained_with = training_options(config, default_options())
    assert trained_with == default_options(), f"{path} was made with other options"
