//! efisock-conformance (being written).
