//! Re-running notebooks (placeholder).
