//! Raw serde structures, one per YAML mapping.
