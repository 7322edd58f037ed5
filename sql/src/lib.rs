//! gnomon-sql (WIP)
pub mod catalog;
pub mod encoding;
pub mod error;
pub(crate) mod expr;
pub mod storage;
pub mod types;
