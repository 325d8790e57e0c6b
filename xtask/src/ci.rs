//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.
//!
//! CI calls this with `CI=true`; the GPU tests then require an adapter (`.ci/run` installs
//! Mesa's lavapipe).

use std::process::Command;

use crate::{XResult, cargo, run_echoed};

/// One CI step: a description and the cargo command.
fn steps() -> Vec<(&'static str, Command)> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);

    let mut test = cargo();
    test.args(["test", "--workspace"]);

    let mut shaders = cargo();
    shaders.args(["run", "-q", "-p", "xtask", "--", "codegen", "--check"]);

    let mut doc = cargo();
    doc.env("RUSTDOCFLAGS", "-Dwarnings")
        .args(["doc", "--workspace", "--no-deps"]);

    vec![
        ("format", fmt),
        ("clippy", clippy),
        ("shaders (naga)", shaders),
        ("tests", test),
        ("docs", doc),
    ]
}

/// Runs every step; the first failure ends the run with an error (nonzero exit code).
pub fn run(args: &[String]) -> XResult<()> {
    if let Some(extra) = args.first() {
        return Err(format!("`ci` takes no arguments (got `{extra}`)").into());
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    eprintln!("xtask ci{}", if in_ci { " (CI=true)" } else { "" });
    let mut steps = steps();
    let total = steps.len();
    for (i, (name, cmd)) in steps.iter_mut().enumerate() {
        eprintln!("\n[{}/{total}] {name}", i + 1);
        run_echoed(cmd).map_err(|e| format!("ci step `{name}` failed: {e}"))?;
    }
    eprintln!("\nxtask ci: all {total} steps passed");
    Ok(())
}
