"""Definitions module for CLI tests: registers test_training's ``eta`` model."""

from tests.test_training import SPEC
from training.specs import register_model

register_model(SPEC)
