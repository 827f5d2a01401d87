"""Record schemas: one versioned numpy dtype per table, generated from the C++ layouts."""

from feedhandler.records.schema import (
    SCALE,
    SCHEMAS,
    Schema,
    schema_by_name,
    to_decimal,
    wide_to_int,
)

__all__ = ["SCALE", "SCHEMAS", "Schema", "schema_by_name", "to_decimal", "wide_to_int"]
