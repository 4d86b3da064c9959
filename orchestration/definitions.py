"""What `dg dev` and `dg check defs` load: eventlake's Dagster definitions.

Built when Dagster loads them, not at import: the settings come from the
environment (``EVENTLAKE_*``, ``EVENTLAKE_CONFIG``) then, as for every
eventlake command; `eventlake ui` sets them for the demo's lake.
"""

import dagster as dg

from orchestration.defs import build_definitions
from orchestration.settings import load_settings


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions for the lake the settings name."""
    return build_definitions(load_settings())
