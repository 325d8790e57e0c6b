//! The override variants a shader declares, from its `// variants:` header lines.
//!
//! Every shader with `override` constants lists the values its launcher uses, e.g.
//!
//! ```text
//! // variants: OP=0..7
//! // variants: TRANS_A=0,1 TRANS_B=0,1 ACT=0..3
//! ```
//!
//! Each line is a cross product (`a..b` is inclusive); several lines are a union. `cargo xtask
//! codegen` validates and writes every declared variant (`shaders/generated/`), and in debug
//! builds [`GpuContext::launch`](super::GpuContext::launch) refuses a variant that is not
//! declared, so the tests keep the declarations true.

/// One variant: `(constant, value)` pairs sorted by name.
pub type Variant = Vec<(String, f64)>;

/// Every variant `source` declares (deduplicated, in declaration order).
///
/// Errors: a malformed `// variants:` line, with the line.
pub fn declared_variants(source: &str) -> Result<Vec<Variant>, String> {
    let mut out: Vec<Variant> = Vec::new();
    for line in source.lines() {
        let Some(spec) = line.trim_start().strip_prefix("// variants:") else {
            continue;
        };
        let mut axes: Vec<(String, Vec<f64>)> = Vec::new();
        for item in spec.split_whitespace() {
            let (key, vals) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not KEY=VALUES in `{line}`"))?;
            let mut values = Vec::new();
            for v in vals.split(',') {
                let num = |s: &str| {
                    s.parse::<f64>()
                        .map_err(|_| format!("`{s}` is not a number in `{line}`"))
                };
                match v.split_once("..") {
                    Some((a, b)) => {
                        let (a, b) = (num(a)? as i64, num(b)? as i64);
                        values.extend((a..=b).map(|i| i as f64));
                    }
                    None => values.push(num(v)?),
                }
            }
            axes.push((key.to_owned(), values));
        }
        axes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut combos: Vec<Variant> = vec![Vec::new()];
        for (key, values) in &axes {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |&v| {
                        let mut c = c.clone();
                        c.push((key.clone(), v));
                        c
                    })
                })
                .collect();
        }
        for c in combos {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// Whether `constants` (in any order) is one of the variants `source` declares. A shader that
/// declares none accepts only an empty constant list.
pub fn is_declared(source: &str, constants: &[(&str, f64)]) -> bool {
    let mut want: Variant = constants
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    match declared_variants(source) {
        Ok(v) if v.is_empty() => want.is_empty(),
        Ok(v) => v.contains(&want),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cross_products_and_their_union() {
        let src = "// variants: OP=0..2\n// variants: B=1,3 A=0\nfn main() {}\n// variants: OP=1";
        let v = declared_variants(src).expect("valid");
        assert_eq!(v.len(), 5);
        assert!(is_declared(src, &[("OP", 2.0)]));
        assert!(is_declared(src, &[("B", 3.0), ("A", 0.0)]));
        assert!(!is_declared(src, &[("B", 2.0), ("A", 0.0)]));
        assert!(!is_declared(src, &[("OP", 3.0)]));
        assert!(!is_declared(src, &[]));
        assert!(is_declared("fn main() {}", &[]));
        assert!(declared_variants("// variants: OP").is_err());
        assert!(declared_variants("// variants: OP=x").is_err());
    }
}
