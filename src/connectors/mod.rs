//! Platform connectors (being written).
