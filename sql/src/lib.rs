//! gnomon-sql (WIP)
pub mod catalog;
pub mod encoding;
pub mod error;
pub(crate) mod expr;
pub(crate) mod query;
pub mod session;
pub mod storage;
pub mod types;

pub use error::{Notice, SqlError, SqlState};
pub use query::ExecStats;
pub use session::{Column, Outcome, Prepared, Session, SqlEngine, TxnStatus, VERSION_STRING};
pub use types::{DataType, Value};
