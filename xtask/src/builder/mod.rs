//! Stages 2 and 3: what to build (profile, patch series) and `make`, natively or in the
//! builder image made from the locked toolchain. `ops::build` runs every stage.

pub mod compile;
pub mod patch;
pub mod profile;
pub mod runtime;
pub mod series;
pub mod toolchain;
