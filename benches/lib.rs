//! Criterion benchmarks for the burn_autogaze workspace live beside this file.
