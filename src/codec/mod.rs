//! The CSV bodies splunkd sends and reads back, with its `__mv_` multivalue
//! columns. Knows nothing of frames or of what the command computes.

pub mod ahead;
pub mod body;
pub mod multivalue;
pub mod skim;
