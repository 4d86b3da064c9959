"""What `dg dev` and `dg check defs` load: eventlake's Dagster definitions.

The settings come from the environment (``EVENTLAKE_*``, ``EVENTLAKE_CONFIG``),
as for every eventlake command; `eventlake ui` sets them for the demo's lake.
"""

from orchestration.pipeline import build_definitions
from orchestration.settings import load_settings

defs = build_definitions(load_settings())
