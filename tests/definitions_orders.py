"""Definitions module for serving tests: the orders model of the topic a test names
in ``ORDERS_TOPIC_FOR_TESTS`` (a test variable, not a setting)."""

import os

from tests.orders_data import spec
from training.specs import register_model

register_model(spec(os.environ.get("ORDERS_TOPIC_FOR_TESTS", "orders")))
