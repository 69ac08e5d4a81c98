//! gatehouse's configuration: the TOML file model, the validated model, and errors that name
//! `FILE:LINE:COL: KEY.PATH: message`. This is the only crate that parses TOML; it does no network IO.

pub mod model;

pub use model::Config;
