//! Stage 4: what must hold of a built ROM before it is written: its structure and limit, the
//! profile's feature promises against the linked image, and the size budget.

pub mod audit;
pub mod budget;
pub mod romcheck;
