"""Features: placeholder until its issue lands (see DESIGN.md)."""

__all__: list[str] = []
