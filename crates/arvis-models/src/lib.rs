#![doc = include_str!("../README.md")]

pub mod error;
pub mod var;

pub use error::{ModelError, Result};
pub use var::{Var, VarConfig, VarOutput, VarRequest};
