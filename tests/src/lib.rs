//! Shared helpers for ferrolb's end-to-end tests (the tests live in `tests/tests/`).
