//! The admin HTTP listener: `/metrics` (Prometheus text), `/live`, `/ready`.
