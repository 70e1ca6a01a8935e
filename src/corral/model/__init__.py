"""Pure domain logic: shapes, validation, limits, ARNs and the error catalogue. No I/O."""
