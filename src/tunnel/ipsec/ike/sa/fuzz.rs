//! The body of the `ike_engine` fuzz target (filled in below).
