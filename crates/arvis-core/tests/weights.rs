//! Tests of `arvis_core::Weights`: round trips, metadata, scopes, and rejection of every kind of
//! malformed safetensors container without panicking.
//!
//! Files are built by a tiny hand-written safetensors writer so that tests can also produce
//! deliberately broken ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use arvis_core::weights::{Dtype, META_CONFIG, META_FAMILY, META_SOURCE};
use arvis_core::{Error, Weights};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------
// A minimal safetensors writer.
// ---------------------------------------------------------------------------------------------

/// One tensor to write: name, dtype name, shape, raw little-endian bytes.
struct Spec {
    name: &'static str,
    dtype: &'static str,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn spec(name: &'static str, dtype: &'static str, shape: &[usize], data: Vec<u8>) -> Spec {
    Spec {
        name,
        dtype,
        shape: shape.to_vec(),
        data,
    }
}

/// A whole file: 8-byte little-endian header length, header bytes, data bytes.
fn raw(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// The JSON header for `specs` laid out contiguously in order, plus the data section.
fn header_and_data(
    specs: &[Spec],
    metadata: Option<&[(&str, &str)]>,
) -> (serde_json::Value, Vec<u8>) {
    let mut header = serde_json::Map::new();
    if let Some(meta) = metadata {
        let m: BTreeMap<&str, &str> = meta.iter().copied().collect();
        header.insert("__metadata__".to_owned(), json!(m));
    }
    let mut data = Vec::new();
    for s in specs {
        let begin = data.len();
        data.extend_from_slice(&s.data);
        header.insert(
            s.name.to_owned(),
            json!({ "dtype": s.dtype, "shape": s.shape, "data_offsets": [begin, data.len()] }),
        );
    }
    (serde_json::Value::Object(header), data)
}

/// A valid file holding `specs` (in order) and optional metadata.
fn build(specs: &[Spec], metadata: Option<&[(&str, &str)]>) -> Vec<u8> {
    let (header, data) = header_and_data(specs, metadata);
    raw(header.to_string().as_bytes(), &data)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u16_bytes(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A fresh path under the system temp dir, unique per process and call.
fn temp_path(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "arvis-weights-test-{}-{n}-{tag}.safetensors",
        std::process::id()
    ))
}

/// A file on disk, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> std::io::Result<Self> {
        let path = temp_path(tag);
        std::fs::write(&path, bytes)?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Asserts `r` is `Error::SafeTensors` for file `path` whose message contains every `needle`.
fn assert_invalid<T: std::fmt::Debug>(
    r: arvis_core::Result<T>,
    path: &Path,
    needles: &[&str],
) -> TestResult {
    match r {
        Err(Error::SafeTensors { path: p, msg }) => {
            assert_eq!(p, path, "error names the wrong file: {msg}");
            for n in needles {
                assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
            }
            Ok(())
        }
        other => Err(format!("expected Error::SafeTensors, got {other:?}").into()),
    }
}

/// Checks both `from_bytes` and `open` (through a temp file) reject `bytes` as invalid.
fn assert_invalid_both(tag: &str, bytes: Vec<u8>, needles: &[&str]) -> TestResult {
    let file = TempFile::new(tag, &bytes)?;
    assert_invalid(Weights::open(&file.0), &file.0, needles)?;
    let name = PathBuf::from(format!("<mem:{tag}>"));
    assert_invalid(Weights::from_bytes(name.clone(), bytes), &name, needles)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Round trips.
// ---------------------------------------------------------------------------------------------

const F32_VALUES: [f32; 6] = [
    1.5,
    -0.0,
    f32::MAX,
    f32::MIN_POSITIVE,
    1e-42,
    f32::NEG_INFINITY,
];
/// f16 bit patterns and their exact values, written out by hand.
const F16_CASES: [(u16, f32); 8] = [
    (0x0000, 0.0),
    (0x3C00, 1.0),
    (0xC000, -2.0),
    (0x3800, 0.5),
    (0x7BFF, 65504.0),
    (0x0001, 5.960_464_5e-8), // 2^-24, smallest subnormal
    (0x0400, 6.103_515_6e-5), // 2^-14, smallest normal
    (0x7C00, f32::INFINITY),
];
/// bf16 bit patterns and their exact values.
const BF16_CASES: [(u16, f32); 6] = [
    (0x3F80, 1.0),
    (0xC000, -2.0),
    (0x3E20, 0.156_25),
    (0x4049, 3.140_625),
    (0x0001, 9.183_55e-41), // 2^-133, subnormal
    (0xFF80, f32::NEG_INFINITY),
];

/// A file with an odd-length leading tensor so that every later tensor is unaligned.
fn mixed_file() -> Vec<u8> {
    let f16_bits: Vec<u16> = F16_CASES.iter().map(|c| c.0).collect();
    let bf16_bits: Vec<u16> = BF16_CASES.iter().map(|c| c.0).collect();
    build(
        &[
            spec("odd", "U8", &[3], vec![1, 2, 3]),
            spec("w32", "F32", &[2, 3], f32_bytes(&F32_VALUES)),
            spec("w16", "F16", &[4, 2], u16_bytes(&f16_bits)),
            spec("wbf", "BF16", &[6], u16_bytes(&bf16_bits)),
            spec("scalar", "F32", &[], f32_bytes(&[7.25])),
            spec("empty", "F16", &[2, 0], vec![]),
        ],
        Some(&[(META_FAMILY, "var")]),
    )
}

fn check_mixed(w: &Weights) -> TestResult {
    assert_eq!(w.names(), ["empty", "odd", "scalar", "w16", "w32", "wbf"]);
    assert_eq!(w.len(), 6);
    assert!(w.contains("w32") && !w.contains("w64"));

    let t = w.get("w32", &[2, 3])?;
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(bits(&t.to_vec()), bits(&F32_VALUES));

    let t = w.get("w16", &[4, 2])?;
    let want: Vec<f32> = F16_CASES.iter().map(|c| c.1).collect();
    assert_eq!(bits(&t.to_vec()), bits(&want));

    let t = w.get("wbf", &[6])?;
    let want: Vec<f32> = BF16_CASES.iter().map(|c| c.1).collect();
    assert_eq!(bits(&t.to_vec()), bits(&want));
    // bf16 is the top half of an f32: an independent conversion.
    let independent: Vec<u32> = BF16_CASES.iter().map(|c| u32::from(c.0) << 16).collect();
    assert_eq!(bits(&t.to_vec()), independent);

    let t = w.get("scalar", &[])?;
    assert_eq!(t.shape(), &[] as &[usize]);
    assert_eq!(t.to_vec(), [7.25]);

    let t = w.get("empty", &[2, 0])?;
    assert_eq!(t.shape(), &[2, 0]);
    assert!(t.to_vec().is_empty());

    assert_eq!(w.get_any("w16")?.shape(), &[4, 2]);
    assert_eq!(w.shape_of("wbf")?, &[6]);
    assert_eq!(w.dtype_of("w16")?, Dtype::F16);
    assert_eq!(w.dtype_of("odd")?, Dtype::U8);
    Ok(())
}

#[test]
fn round_trip_from_bytes() -> TestResult {
    let w = Weights::from_bytes("mixed.safetensors", mixed_file())?;
    assert_eq!(w.path(), Path::new("mixed.safetensors"));
    check_mixed(&w)
}

#[test]
fn round_trip_from_file() -> TestResult {
    let file = TempFile::new("mixed", &mixed_file())?;
    let w = Weights::open(&file.0)?;
    assert_eq!(w.path(), file.0.as_path());
    check_mixed(&w)
}

#[test]
fn round_trip_from_static() -> TestResult {
    let bytes: &'static [u8] = Box::leak(mixed_file().into_boxed_slice());
    let w = Weights::from_static("embedded", bytes)?;
    check_mixed(&w)
}

#[test]
fn empty_container_is_valid() -> TestResult {
    let w = Weights::from_bytes("empty", raw(b"{}", &[]))?;
    assert!(w.is_empty());
    assert!(w.names().is_empty());
    assert!(w.metadata().is_none());
    // safetensors pads headers with spaces; trailing whitespace is fine too.
    let w = Weights::from_bytes("padded", raw(b"{}      ", &[]))?;
    assert!(w.is_empty());
    Ok(())
}

#[test]
fn safetensors_serialize_cross_check() -> TestResult {
    use safetensors::tensor::TensorView;
    let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    let b_bits: Vec<u16> = F16_CASES.iter().map(|c| c.0).collect();
    let c_bits: Vec<u16> = BF16_CASES.iter().map(|c| c.0).collect();
    let (a_bytes, b_bytes, c_bytes) = (f32_bytes(&a), u16_bytes(&b_bits), u16_bytes(&c_bits));
    let views = vec![
        (
            "layer.a",
            TensorView::new(safetensors::Dtype::F32, vec![3, 4], &a_bytes)?,
        ),
        (
            "layer.b",
            TensorView::new(safetensors::Dtype::F16, vec![8], &b_bytes)?,
        ),
        (
            "layer.c",
            TensorView::new(safetensors::Dtype::BF16, vec![2, 3], &c_bytes)?,
        ),
    ];
    let mut meta = std::collections::HashMap::new();
    meta.insert(META_FAMILY.to_owned(), "var".to_owned());
    let bytes = safetensors::serialize(views, Some(meta))?;

    let w = Weights::from_bytes("serialized", bytes.clone())?;
    assert_eq!(w.names(), ["layer.a", "layer.b", "layer.c"]);
    assert_eq!(bits(&w.get("layer.a", &[3, 4])?.to_vec()), bits(&a));
    let want_b: Vec<f32> = F16_CASES.iter().map(|c| c.1).collect();
    assert_eq!(bits(&w.get("layer.b", &[8])?.to_vec()), bits(&want_b));
    let want_c: Vec<f32> = BF16_CASES.iter().map(|c| c.1).collect();
    assert_eq!(bits(&w.get("layer.c", &[2, 3])?.to_vec()), bits(&want_c));
    assert_eq!(w.metadata_str(META_FAMILY)?, "var");

    // And our writer's files are readable by safetensors itself, with the same tensors.
    let ours = mixed_file();
    let st = safetensors::SafeTensors::deserialize(&ours)?;
    let w = Weights::from_bytes("mixed", ours.clone())?;
    let mut st_names = st.names();
    st_names.sort_unstable();
    assert_eq!(st_names, w.names());
    let view = st.tensor("w32")?;
    assert_eq!(view.shape(), w.shape_of("w32")?);
    assert_eq!(
        view.data(),
        f32_bytes(&w.get_any("w32")?.to_vec()).as_slice()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Metadata.
// ---------------------------------------------------------------------------------------------

#[test]
fn metadata_and_config_json() -> TestResult {
    let config = json!({ "depth": 16, "patch_nums": [1, 2, 3, 4], "name": "var-d16" }).to_string();
    let bytes = build(
        &[spec("x", "F32", &[1], f32_bytes(&[0.0]))],
        Some(&[
            (META_FAMILY, "var"),
            (META_CONFIG, &config),
            (META_SOURCE, "FoundationVision/var d16"),
            ("broken", "{not json"),
        ]),
    );
    let w = Weights::from_bytes("meta.safetensors", bytes)?;
    let meta = w.metadata().ok_or("no metadata")?;
    assert_eq!(meta.len(), 4);
    assert_eq!(w.metadata_str(META_FAMILY)?, "var");
    assert_eq!(w.metadata_str(META_SOURCE)?, "FoundationVision/var d16");
    let cfg = w.metadata_json(META_CONFIG)?;
    assert_eq!(cfg["depth"], 16);
    assert_eq!(cfg["patch_nums"], json!([1, 2, 3, 4]));
    assert_eq!(cfg["name"], "var-d16");

    match w.metadata_str("arvis.missing") {
        Err(Error::Metadata { path, msg }) => {
            assert_eq!(path, Path::new("meta.safetensors"));
            assert!(msg.contains("arvis.missing"), "{msg}");
        }
        other => return Err(format!("expected Metadata error, got {other:?}").into()),
    }
    match w.metadata_json("broken") {
        Err(e @ Error::Metadata { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("meta.safetensors") && text.contains("broken"),
                "{text}"
            );
        }
        other => return Err(format!("expected Metadata error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn no_metadata_block() -> TestResult {
    let w = Weights::from_bytes(
        "plain",
        build(&[spec("x", "F32", &[1], f32_bytes(&[1.0]))], None),
    )?;
    assert!(w.metadata().is_none());
    match w.metadata_json(META_CONFIG) {
        Err(Error::Metadata { path, msg }) => {
            assert_eq!(path, Path::new("plain"));
            assert!(msg.contains(META_CONFIG), "{msg}");
        }
        other => return Err(format!("expected Metadata error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn bad_metadata_block_is_rejected() -> TestResult {
    let data = f32_bytes(&[1.0]);
    let header = r#"{"__metadata__":{"k":1},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert_invalid_both("badmeta", raw(header.as_bytes(), &data), &["__metadata__"])?;
    // An explicit null metadata block is accepted (safetensors does).
    let header = r#"{"__metadata__":null,"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let w = Weights::from_bytes("nullmeta", raw(header.as_bytes(), &data))?;
    assert!(w.metadata().is_none());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scopes.
// ---------------------------------------------------------------------------------------------

fn model_file() -> Vec<u8> {
    build(
        &[
            spec(
                "blocks.0.attn.proj.weight",
                "F32",
                &[2, 2],
                f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
            ),
            spec(
                "blocks.0.attn.proj.bias",
                "F32",
                &[2],
                f32_bytes(&[5.0, 6.0]),
            ),
            spec("blocks.1.mlp.fc1.weight", "F16", &[1], u16_bytes(&[0x3C00])),
            spec("head.weight", "BF16", &[1], u16_bytes(&[0x4000])),
        ],
        None,
    )
}

#[test]
fn scopes_join_names() -> TestResult {
    let w = Weights::from_bytes("model.safetensors", model_file())?;
    let attn = w.scope("blocks.0.attn");
    assert_eq!(attn.prefix(), "blocks.0.attn");
    assert_eq!(
        attn.get("proj.weight", &[2, 2])?.to_vec(),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(attn.get_any("proj.bias")?.to_vec(), [5.0, 6.0]);
    assert!(attn.contains("proj.bias") && !attn.contains("proj.nope"));
    assert_eq!(attn.shape_of("proj.weight")?, &[2, 2]);
    assert_eq!(attn.dtype_of("proj.bias")?, Dtype::F32);
    assert_eq!(attn.names(), ["proj.bias", "proj.weight"]);
    assert_eq!(attn.full_name("proj.weight"), "blocks.0.attn.proj.weight");

    // Nesting, with and without trailing dots.
    let nested = w.scope("blocks").scope("0.").scope("attn").scope("proj");
    assert_eq!(nested.prefix(), "blocks.0.attn.proj");
    assert_eq!(nested.get("bias", &[2])?.to_vec(), [5.0, 6.0]);
    let b1 = w.scope("blocks.").scope("1");
    assert_eq!(b1.prefix(), "blocks.1");
    assert_eq!(b1.names(), ["mlp.fc1.weight"]);
    assert_eq!(b1.scope("mlp.fc1").get("weight", &[1])?.to_vec(), [1.0]);

    // The empty scope is the whole file; "blocks.0" does not match "blocks.01...".
    let root = w.scope("");
    assert_eq!(root.prefix(), "");
    assert_eq!(root.get("head.weight", &[1])?.to_vec(), [2.0]);
    assert_eq!(root.names(), w.names());
    assert_eq!(w.scope("blocks.0.at").names(), Vec::<&str>::new());
    Ok(())
}

#[test]
fn scope_errors_carry_full_name_and_path() -> TestResult {
    let w = Weights::from_bytes("model.safetensors", model_file())?;
    let proj = w.scope("blocks").scope("0").scope("attn.proj");
    match proj.get("nope", &[1]) {
        Err(Error::MissingTensor { path, name }) => {
            assert_eq!(path, Path::new("model.safetensors"));
            assert_eq!(name, "blocks.0.attn.proj.nope");
        }
        other => return Err(format!("expected MissingTensor, got {other:?}").into()),
    }
    match proj.get("weight", &[4]) {
        Err(e @ Error::TensorShape { .. }) => {
            let text = e.to_string();
            assert!(text.contains("model.safetensors"), "{text}");
            let Error::TensorShape {
                name,
                expected,
                found,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(name, "blocks.0.attn.proj.weight");
            assert_eq!(expected, [4]);
            assert_eq!(found, [2, 2]);
        }
        other => return Err(format!("expected TensorShape, got {other:?}").into()),
    }
    match proj.shape_of("missing") {
        Err(Error::MissingTensor { name, .. }) => assert_eq!(name, "blocks.0.attn.proj.missing"),
        other => return Err(format!("expected MissingTensor, got {other:?}").into()),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lookup errors.
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_tensor() -> TestResult {
    let file = TempFile::new("missing", &mixed_file())?;
    let w = Weights::open(&file.0)?;
    for r in [
        w.get("nope", &[1]).map(|_| ()),
        w.get_any("nope").map(|_| ()),
        w.dtype_of("nope").map(|_| ()),
    ] {
        match r {
            Err(e @ Error::MissingTensor { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains(&*file.0.to_string_lossy()) && text.contains("nope"),
                    "{text}"
                );
            }
            other => return Err(format!("expected MissingTensor, got {other:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn wrong_shape() -> TestResult {
    let w = Weights::from_bytes("shapes", mixed_file())?;
    for expected in [&[3, 2][..], &[6], &[2, 3, 1], &[]] {
        match w.get("w32", expected) {
            Err(Error::TensorShape {
                path,
                name,
                expected: e,
                found,
            }) => {
                assert_eq!(path, Path::new("shapes"));
                assert_eq!(name, "w32");
                assert_eq!(e, expected);
                assert_eq!(found, [2, 3]);
            }
            other => return Err(format!("expected TensorShape, got {other:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn unsupported_dtypes() -> TestResult {
    let bytes = build(
        &[
            spec("i64", "I64", &[2], vec![0; 16]),
            spec("f64", "F64", &[1], 1.0f64.to_le_bytes().to_vec()),
            spec("u8", "U8", &[3], vec![1, 2, 3]),
            spec("bool", "BOOL", &[1], vec![1]),
            spec("f8", "F8_E4M3", &[2], vec![0, 0]),
        ],
        None,
    );
    let file = TempFile::new("dtypes", &bytes)?;
    let w = Weights::open(&file.0)?;
    for (name, shape, dtype) in [
        ("i64", &[2][..], "I64"),
        ("f64", &[1], "F64"),
        ("u8", &[3], "U8"),
        ("bool", &[1], "BOOL"),
        ("f8", &[2], "F8_E4M3"),
    ] {
        assert_eq!(w.dtype_of(name)?.to_string(), dtype);
        for r in [w.get(name, shape), w.get_any(name)] {
            match r {
                Err(Error::Dtype {
                    path,
                    name: n,
                    dtype: d,
                }) => {
                    assert_eq!(path, file.0);
                    assert_eq!(n, name);
                    assert_eq!(d, dtype);
                }
                other => return Err(format!("{name}: expected Dtype error, got {other:?}").into()),
            }
        }
    }
    // A wrong shape is reported before the dtype.
    assert!(matches!(w.get("i64", &[3]), Err(Error::TensorShape { .. })));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Malformed containers.
// ---------------------------------------------------------------------------------------------

/// A small valid file and the length of its header.
fn small_file() -> (Vec<u8>, usize) {
    let bytes = build(
        &[
            spec("a.weight", "F32", &[2, 2], f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
            spec("a.bias", "F16", &[2], u16_bytes(&[0x3C00, 0x4000])),
        ],
        Some(&[(META_FAMILY, "var")]),
    );
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[..8]);
    (bytes, u64::from_le_bytes(len) as usize)
}

#[test]
fn nonexistent_path_is_io_error() -> TestResult {
    let path = temp_path("does-not-exist");
    match Weights::open(&path) {
        Err(e @ Error::Io { .. }) => {
            assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
            let Error::Io { path: p, source } = e else {
                unreachable!()
            };
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => return Err(format!("expected Io error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn directory_is_io_error() -> TestResult {
    let dir = std::env::temp_dir();
    assert!(matches!(Weights::open(&dir), Err(Error::Io { .. })));
    Ok(())
}

#[test]
fn empty_and_tiny_files() -> TestResult {
    assert_invalid_both("empty", vec![], &["0 bytes"])?;
    assert_invalid_both("tiny", vec![2, 0, 0, 0, 0], &["5 bytes"])?;
    Ok(())
}

#[test]
fn truncated_files() -> TestResult {
    let (bytes, n) = small_file();
    // Cut in the data: the last tensor no longer fits.
    assert_invalid_both(
        "cut-data",
        bytes[..bytes.len() - 1].to_vec(),
        &["a.bias", "out of range"],
    )?;
    // Cut just after the header: no data at all.
    assert_invalid_both("cut-data-all", bytes[..8 + n].to_vec(), &["out of range"])?;
    // Cut in the header: its declared length exceeds the file.
    assert_invalid_both(
        "cut-header",
        bytes[..8 + n / 2].to_vec(),
        &["header length"],
    )?;
    // Cut in the length prefix.
    assert_invalid_both("cut-prefix", bytes[..7].to_vec(), &["7 bytes"])?;
    Ok(())
}

#[test]
fn header_length_too_large() -> TestResult {
    let (bytes, n) = small_file();
    let mut big = bytes.clone();
    big[..8].copy_from_slice(&((bytes.len() - 8 + 1) as u64).to_le_bytes());
    assert_invalid_both("len-past-end", big, &["header length"])?;
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_invalid_both("len-max", huge, &["header length", &u64::MAX.to_string()])?;
    // A header length that stays inside the file but cuts the JSON short.
    let mut short = bytes;
    short[..8].copy_from_slice(&((n - 1) as u64).to_le_bytes());
    assert_invalid_both("len-short", short, &["JSON"])?;
    Ok(())
}

#[test]
fn non_utf8_header() -> TestResult {
    let (mut bytes, _) = small_file();
    // Inside the string "var" of the metadata.
    let pos = bytes.windows(3).position(|w| w == b"var").ok_or("no var")?;
    bytes[pos] = 0xFF;
    assert_invalid_both("utf8", bytes, &["UTF-8"])
}

#[test]
fn invalid_json_header() -> TestResult {
    let data = f32_bytes(&[1.0]);
    assert_invalid_both(
        "json",
        raw(b"{\"x\": {\"dtype\": \"F32\",", &data),
        &["JSON"],
    )?;
    assert_invalid_both("json-array", raw(b"[1, 2, 3]", &[]), &["JSON object"])?;
    // Valid JSON but not a tensor entry.
    assert_invalid_both("json-entry", raw(br#"{"x": 3}"#, &data), &["`x`"])?;
    let header = r#"{"x":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#;
    assert_invalid_both("json-dtype", raw(header.as_bytes(), &data), &["`x`", "F33"])?;
    let header = r#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#;
    assert_invalid_both("json-neg", raw(header.as_bytes(), &data), &["`x`"])?;
    Ok(())
}

fn entry(dtype: &str, shape: &[usize], begin: u64, end: u64) -> serde_json::Value {
    json!({ "dtype": dtype, "shape": shape, "data_offsets": [begin, end] })
}

fn file_with(entries: &[(&str, serde_json::Value)], data_len: usize) -> Vec<u8> {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    raw(
        serde_json::Value::Object(map).to_string().as_bytes(),
        &vec![0u8; data_len],
    )
}

#[test]
fn overlapping_offsets() -> TestResult {
    let bytes = file_with(
        &[
            ("first", entry("F32", &[2], 0, 8)),
            ("second", entry("F32", &[2], 4, 12)),
        ],
        12,
    );
    assert_invalid_both("overlap", bytes, &["second", "overlap", "first"])?;
    // Two tensors sharing one range.
    let bytes = file_with(
        &[
            ("a", entry("F32", &[1], 0, 4)),
            ("b", entry("F32", &[1], 0, 4)),
        ],
        4,
    );
    assert_invalid_both("alias", bytes, &["overlap"])?;
    // A gap between tensors, and trailing bytes after the last one.
    let bytes = file_with(
        &[
            ("a", entry("F32", &[1], 0, 4)),
            ("b", entry("F32", &[1], 8, 12)),
        ],
        12,
    );
    assert_invalid_both("gap", bytes, &["`b`", "gap"])?;
    let bytes = file_with(&[("a", entry("F32", &[1], 0, 4))], 8);
    assert_invalid_both("trailing", bytes, &["trailing"])?;
    let bytes = file_with(&[("a", entry("F32", &[1], 4, 8))], 8);
    assert_invalid_both("late-start", bytes, &["`a`", "gap"])?;
    Ok(())
}

#[test]
fn out_of_range_offsets() -> TestResult {
    let bytes = file_with(&[("far", entry("F32", &[1], 100, 104))], 8);
    assert_invalid_both("far", bytes, &["far", "out of range"])?;
    let bytes = file_with(&[("inverted", entry("F32", &[1], 8, 4))], 8);
    assert_invalid_both("inverted", bytes, &["inverted", "out of range"])?;
    let bytes = file_with(&[("huge", entry("U8", &[1], u64::MAX - 1, u64::MAX))], 8);
    assert_invalid_both("huge", bytes, &["huge", "out of range"])?;
    Ok(())
}

/// Contiguous, size-consistent ranges whose end is near `usize::MAX`: safetensors 0.8's own
/// `read_metadata` overflows adding the header length to such an end (a panic in debug builds).
/// Our range check runs first.
#[test]
fn offsets_summing_near_usize_max() -> TestResult {
    let size = (1u64 << 61) - 1;
    let entries: Vec<(String, serde_json::Value)> = (0..8u64)
        .map(|i| {
            (
                format!("t{i}"),
                entry("U8", &[size as usize], i * size, (i + 1) * size),
            )
        })
        .collect();
    let refs: Vec<(&str, serde_json::Value)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_invalid_both("near-max", file_with(&refs, 16), &["out of range"])
}

#[test]
fn data_length_mismatch() -> TestResult {
    let bytes = file_with(&[("short", entry("F32", &[3], 0, 8))], 8);
    assert_invalid_both("len-mismatch", bytes, &["short", "needs 12"])?;
    let bytes = file_with(&[("long", entry("F16", &[2], 0, 8))], 8);
    assert_invalid_both("len-mismatch2", bytes, &["long", "needs 4"])?;
    Ok(())
}

#[test]
fn shape_product_overflow() -> TestResult {
    let big = 1usize << 40;
    let bytes = file_with(&[("overflow", entry("F32", &[big, big], 0, 4))], 4);
    assert_invalid_both("overflow", bytes, &["overflow"])?;
    // Element count fits but the byte size does not.
    let bytes = file_with(&[("bytes", entry("F64", &[1usize << 62], 0, 4))], 4);
    assert_invalid_both("overflow-bytes", bytes, &["bytes", "overflows"])?;
    // An empty tensor whose non-zero dims exceed isize::MAX.
    let bytes = file_with(&[("wide", entry("F32", &[1usize << 63, 0], 0, 0))], 0);
    assert_invalid_both("overflow-wide", bytes, &["wide", "overflows"])?;
    // Sub-byte dtypes must fill whole bytes.
    let bytes = file_with(&[("nibble", entry("F4", &[3], 0, 1))], 1);
    assert_invalid_both("nibble", bytes, &["nibble", "whole number of bytes"])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Robustness: random mutations never panic.
// ---------------------------------------------------------------------------------------------

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Exercises every accessor of `w`; errors are fine, panics are not.
fn exercise(w: &Weights) -> usize {
    let mut ok = 0;
    for name in w.names() {
        let shape = w.shape_of(name).map(<[usize]>::to_vec).unwrap_or_default();
        ok += usize::from(w.get_any(name).is_ok());
        ok += usize::from(w.get(name, &shape).is_ok());
        let _ = w.dtype_of(name);
    }
    if w.metadata().is_some() {
        let _ = w.metadata_str(META_FAMILY);
        let _ = w.metadata_json(META_CONFIG);
    }
    let _ = w.scope("a").get("weight", &[2, 2]);
    ok
}

#[test]
fn random_mutations_never_panic() -> TestResult {
    const ITERATIONS: usize = 20_000;
    let config = json!({ "depth": 2 }).to_string();
    let base = build(
        &[
            spec("a.weight", "F32", &[2, 2], f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
            spec("a.bias", "F16", &[2], u16_bytes(&[0x3C00, 0x4000])),
            spec("b", "BF16", &[1, 3], u16_bytes(&[0x3F80, 0x4000, 0x4040])),
            spec("c", "I32", &[2], vec![0; 8]),
        ],
        Some(&[(META_FAMILY, "var"), (META_CONFIG, &config)]),
    );
    let header_end = 8 + {
        let mut len = [0u8; 8];
        len.copy_from_slice(&base[..8]);
        u64::from_le_bytes(len) as usize
    };
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let (mut opened, mut read) = (0usize, 0usize);
    for _ in 0..ITERATIONS {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(3) {
            match rng.below(7) {
                // Flip a random bit anywhere.
                0 => {
                    let i = rng.below(bytes.len());
                    if let Some(b) = bytes.get_mut(i) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                // Replace a header digit with another digit: JSON stays valid, numbers change.
                1 | 2 => {
                    let digits: Vec<usize> = (8..header_end.min(bytes.len()))
                        .filter(|&i| bytes[i].is_ascii_digit())
                        .collect();
                    if !digits.is_empty() {
                        let i = digits[rng.below(digits.len())];
                        bytes[i] = b'0' + rng.below(10) as u8;
                    }
                }
                // Random byte in the header.
                3 => {
                    let i = 8 + rng.below(header_end - 8);
                    if let Some(b) = bytes.get_mut(i) {
                        *b = rng.next() as u8;
                    }
                }
                // Truncate.
                4 => {
                    let keep = rng.below(bytes.len() + 1);
                    bytes.truncate(keep);
                }
                // Random header length.
                5 => {
                    if bytes.len() >= 8 {
                        let v = match rng.below(3) {
                            0 => rng.next(),
                            1 => rng.below(bytes.len() + 16) as u64,
                            _ => u64::MAX - rng.below(16) as u64,
                        };
                        bytes[..8].copy_from_slice(&v.to_le_bytes());
                    }
                }
                // Append garbage.
                _ => {
                    for _ in 0..1 + rng.below(8) {
                        bytes.push(rng.next() as u8);
                    }
                }
            }
        }
        match Weights::from_bytes("fuzz", bytes) {
            Ok(w) => {
                opened += 1;
                read += exercise(&w);
            }
            Err(Error::SafeTensors { path, .. }) => assert_eq!(path, Path::new("fuzz")),
            Err(other) => return Err(format!("unexpected error kind: {other:?}").into()),
        }
    }
    eprintln!("random mutations: {opened} of {ITERATIONS} opened, {read} reads succeeded");
    // Some mutations (e.g. a changed metadata digit) keep the file valid.
    assert!(opened > 0 && read > 0, "opened {opened}, read {read}");
    Ok(())
}

#[test]
fn random_mutations_via_file() -> TestResult {
    // A few through the mmap path too.
    let (base, _) = small_file();
    let mut rng = XorShift(42);
    for i in 0..50 {
        let mut bytes = base.clone();
        let at = rng.below(bytes.len());
        bytes[at] ^= 0xFF;
        if i % 5 == 0 {
            let keep = rng.below(bytes.len());
            bytes.truncate(keep);
        }
        let file = TempFile::new("mut", &bytes)?;
        if let Ok(w) = Weights::open(&file.0) {
            exercise(&w);
        }
    }
    Ok(())
}
