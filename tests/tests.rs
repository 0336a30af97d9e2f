//! The integration tests, as one test binary (`autotests = false` in Cargo.toml): each file of
//! `tests/` is a module here, and `tests/support` is compiled once for all of them, not once per
//! file. Run one file's tests by its module path: `cargo test --test tests docs::`.
//! docs/development.md's table says what each file covers.

mod support;

mod boundary;
mod cli;
mod cli_report;
mod close;
mod decisions;
mod discovery;
mod docs;
mod environment;
mod failover;
mod fuzz;
mod gateways;
mod hostile;
mod install;
mod isolate;
mod learn;
mod lists;
mod log;
mod log_ecs;
mod nonblocking;
mod notices;
mod relay;
mod reload;
mod resolver;
mod robustness;
mod static_cli;
mod supervise;
mod wrap;
mod zero_leak;
