"""Record schemas: one versioned numpy dtype per table, from the kind declarations."""

from feedhandler.records.schema import (
    SCALE,
    SCHEMAS,
    Schema,
    compact_row,
    from_str,
    in_current_layout,
    schema_by_name,
    to_decimal,
    to_str,
    wide_to_int,
)

__all__ = ["SCALE", "SCHEMAS", "Schema", "compact_row", "from_str", "in_current_layout",
           "schema_by_name", "to_decimal", "to_str", "wide_to_int"]
