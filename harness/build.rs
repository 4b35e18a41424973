//! Compiles the vendored Temporal history protos (`proto/`) into a descriptor set, which
//! `history::json` uses to write and read histories in Temporal's standard JSON.

use prost::Message;
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // `sqlx::migrate!` embeds the run store's migrations: a new one must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    let descriptors = protox::compile(["temporal/api/history/v1/message.proto"], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?).join("history_descriptors.bin");
    std::fs::write(out, descriptors.encode_to_vec())?;
    Ok(())
}
