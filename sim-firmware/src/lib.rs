//! efisock-sim (being written).
