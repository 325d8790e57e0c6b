//! The override variants a shader declares, from its `// variants:` header lines.
//!
//! Every shader with `override` constants lists the values its launchers use, e.g.
//!
//! ```text
//! // variants: OP=0..7
//! // variants: TRANS_A=0,1 TRANS_B=0,1 ACT=0..3
//! ```
//!
//! Each line is a cross product (`a..b` is inclusive); several lines are a union. `cargo xtask
//! codegen` validates and writes every declared variant (`shaders/generated/`), and in debug
//! builds [`GpuContext::launch`](super::GpuContext::launch) refuses a variant that is not
//! declared, so the tests keep the declarations true. A value `*` declares an open axis (e.g. a
//! head dim that may be any size): such a line admits launches but is not generated, so the
//! production values go on lines of their own.

/// One variant: `(constant, value)` pairs sorted by name.
pub type Variant = Vec<(String, f64)>;

/// One `// variants:` line: each constant with its values (`None`: any value), sorted by name.
type Line = Vec<(String, Option<Vec<f64>>)>;

fn parse_lines(source: &str) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for line in source.lines() {
        let Some(spec) = line.trim_start().strip_prefix("// variants:") else {
            continue;
        };
        let mut axes: Line = Vec::new();
        for item in spec.split_whitespace() {
            let (key, vals) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not KEY=VALUES in `{line}`"))?;
            if vals == "*" {
                axes.push((key.to_owned(), None));
                continue;
            }
            let num = |s: &str| {
                s.parse::<f64>()
                    .map_err(|_| format!("`{s}` is not a number in `{line}`"))
            };
            let mut values = Vec::new();
            for v in vals.split(',') {
                match v.split_once("..") {
                    Some((a, b)) => {
                        let (a, b) = (num(a)? as i64, num(b)? as i64);
                        values.extend((a..=b).map(|i| i as f64));
                    }
                    None => values.push(num(v)?),
                }
            }
            axes.push((key.to_owned(), Some(values)));
        }
        axes.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(axes);
    }
    Ok(out)
}

/// Every concrete variant `source` declares (deduplicated, in declaration order); lines with an
/// open axis are not expanded.
///
/// Errors: a malformed `// variants:` line, with the line.
pub fn declared_variants(source: &str) -> Result<Vec<Variant>, String> {
    let mut out: Vec<Variant> = Vec::new();
    for axes in parse_lines(source)? {
        let mut combos: Vec<Variant> = vec![Vec::new()];
        for (key, values) in &axes {
            let Some(values) = values else {
                combos.clear();
                break;
            };
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

/// Whether `constants` (in any order) is one of the variants `source` declares (open axes
/// match any value). A shader that declares none accepts only an empty constant list.
pub fn is_declared(source: &str, constants: &[(&str, f64)]) -> bool {
    let mut want: Variant = constants
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let Ok(lines) = parse_lines(source) else {
        return false;
    };
    if lines.is_empty() {
        return want.is_empty();
    }
    lines.iter().any(|axes| {
        axes.len() == want.len()
            && axes.iter().zip(&want).all(|((k, vals), (wk, wv))| {
                k == wk && vals.as_ref().is_none_or(|vals| vals.contains(wv))
            })
    })
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
        let open = "// variants: D=* M=0,1\n// variants: D=64 M=0";
        assert_eq!(declared_variants(open).expect("valid").len(), 1);
        assert!(is_declared(open, &[("D", 24.0), ("M", 1.0)]));
        assert!(!is_declared(open, &[("D", 24.0), ("M", 2.0)]));
        assert!(!is_declared(open, &[("D", 24.0)]));
        assert!(declared_variants("// variants: OP").is_err());
        assert!(declared_variants("// variants: OP=x").is_err());
    }
}
