//! The control socket: protocol types (`proto`), supctl's client side (`client`,
//! `render`, `exit`) and supd's server side (`server`); the `image` commands
//! both binaries run on the image store (`image_cli`).

pub mod client;
pub mod exec;
pub mod exec_client;
pub mod exit;
pub mod image_cli;
pub mod proto;
pub mod render;
pub mod render_audit;
pub mod server;
mod streams;
