"""Shared fixtures."""

import os

import numpy as np
import pytest

import gdsl.pipeline

os.environ["GDSL_CHECK_IR"] = "1"          # every compile in the tests checks the IR after each stage
gdsl.pipeline.CHECK_IR = True


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
