#![doc = include_str!("../README.md")]

pub mod error;
pub mod llamagen;
pub mod mar;
pub mod var;

pub use error::{ModelError, Result};
pub use llamagen::{LlamaGen, LlamaGenConfig};
pub use mar::{Mar, MarConfig, MarRequest};
pub use var::{Var, VarConfig, VarOutput, VarRequest};
