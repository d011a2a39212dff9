//! The `mmlog` command.
fn main() {}
