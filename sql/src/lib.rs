//! gnomon-sql (WIP)
pub mod encoding;
pub mod error;
pub mod types;
