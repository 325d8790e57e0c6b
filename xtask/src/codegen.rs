//! `cargo xtask codegen [--check]`: validates every WGSL shader in `shaders/` with naga, the
//! front end and validator wgpu itself runs, so a broken kernel fails here with a file and line
//! instead of at pipeline creation on some user's GPU.
//!
//! Shaders are validated with the capabilities arvis may enable on a device (f16, subgroups).
//! No shader has override/variant expansions yet, so nothing is written; when variants arrive,
//! `codegen` writes them under `shaders/generated/` and `--check` also fails on stale output.

use std::path::{Path, PathBuf};

use crate::{XResult, workspace_root};

/// The `.wgsl` files under `dir`, sorted.
fn shader_files(dir: &Path) -> XResult<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .collect();
    files.sort();
    Ok(files)
}

/// Parses and validates one WGSL source; the error is naga's report with the file name.
pub fn validate(name: &str, source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| e.emit_to_string_with_path(source, name))?;
    let caps = naga::valid::Capabilities::SHADER_FLOAT16
        | naga::valid::Capabilities::SUBGROUP
        | naga::valid::Capabilities::SUBGROUP_BARRIER;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .map_err(|e| e.emit_to_string_with_path(source, name))?;
    Ok(())
}

/// Runs the command.
pub fn run(args: &[String]) -> XResult<()> {
    let check = match args {
        [] => false,
        [a] if a == "--check" => true,
        [other, ..] => return Err(format!("`codegen` takes only `--check` (got `{other}`)").into()),
    };
    let dir = workspace_root().join("shaders");
    let files = shader_files(&dir)?;
    if files.is_empty() {
        return Err(format!("no .wgsl files under {}", dir.display()).into());
    }
    let mut failed = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let src = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        match validate(&name, &src) {
            Ok(()) => eprintln!("  ok   shaders/{name}"),
            Err(report) => {
                eprintln!("  FAIL shaders/{name}\n{report}");
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "{} shader(s) failed naga validation: {failed:?}",
            failed.len()
        )
        .into());
    }
    eprintln!(
        "xtask codegen{}: {} shader(s) valid; no variants to generate",
        if check { " --check" } else { "" },
        files.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_committed_shader_validates() -> XResult<()> {
        let files = shader_files(&workspace_root().join("shaders"))?;
        assert!(!files.is_empty());
        for f in files {
            let src = std::fs::read_to_string(&f)?;
            validate(&f.display().to_string(), &src)?;
        }
        Ok(())
    }

    /// Negative controls: a syntax error and a type error must both be reported.
    #[test]
    fn broken_shaders_are_rejected() {
        let syntax = "@compute @workgroup_size(1) fn main( { }";
        assert!(validate("syntax.wgsl", syntax).is_err());
        let types = "@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n\
                     @compute @workgroup_size(1) fn main() { o[0] = 1u; }";
        let err = validate("types.wgsl", types).err().unwrap_or_default();
        assert!(err.contains("types.wgsl"), "{err}");
    }
}
