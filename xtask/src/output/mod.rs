//! Stage 5: outputs written whole (ROMs, SHA256SUMS, manifest), and releases with provenance.

pub mod emit;
pub mod release;
