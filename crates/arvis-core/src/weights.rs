//! Loading model weights from `.safetensors` files.
//!
//! [`Weights`] memory-maps a file (or wraps an in-memory buffer), validates the whole container
//! once when it is opened, and then hands out tensors converted to `f32` by name:
//!
//! ```no_run
//! use arvis_core::Weights;
//!
//! # fn main() -> arvis_core::Result<()> {
//! let weights = Weights::open("var_d16.safetensors")?;
//! let family = weights.metadata_str(arvis_core::weights::META_FAMILY)?;
//! let block = weights.scope("blocks.0.attn");
//! let proj = block.get("proj.weight", &[1024, 1024])?; // reads `blocks.0.attn.proj.weight`
//! # let _ = (family, proj);
//! # Ok(())
//! # }
//! ```
//!
//! # Validation
//!
//! Everything that could later make a read go out of range is checked at open time: the 8-byte
//! header length against the file size, the header's UTF-8 and JSON, every tensor's dtype, shape
//! (element count and byte count must not overflow) and byte range (inside the data section,
//! sized exactly dtype × shape, and all ranges contiguous from offset 0 to the end of the file,
//! without overlap, gap or trailing bytes). The header is also parsed by
//! [`safetensors::SafeTensors::read_metadata`] as a cross-check. After a successful open, reading
//! a tensor cannot panic or read out of bounds; invalid files give [`Error::SafeTensors`] naming
//! the file and, where one is at fault, the tensor.
//!
//! # Dtypes
//!
//! [`Weights::get`] converts `F32`, `F16` and `BF16` (little-endian, any alignment) to `f32`.
//! Other dtypes (including `F64` and the integer types) are listed by [`Weights::dtype_of`] but
//! reading them gives [`Error::Dtype`].
//!
//! # Metadata convention
//!
//! safetensors files carry an optional `__metadata__` map of strings to strings. arvis uses three
//! keys (see [`META_FAMILY`], [`META_CONFIG`], [`META_SOURCE`]):
//!
//! - `arvis.family`: the model family, e.g. `"var"`, selecting the architecture;
//! - `arvis.config`: the model's hyper-parameters as a JSON object (read it with
//!   [`Weights::metadata_json`]);
//! - `arvis.source`: free text saying where the weights came from (upstream checkpoint, licence).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::tensor::{Device, Tensor};

pub use safetensors::Dtype;

/// Metadata key naming the model family (e.g. `"var"`).
pub const META_FAMILY: &str = "arvis.family";
/// Metadata key holding the model configuration as a JSON object.
pub const META_CONFIG: &str = "arvis.config";
/// Metadata key describing where the weights come from.
pub const META_SOURCE: &str = "arvis.source";
/// Optional metadata key with the sampling settings the model was tuned for, as a JSON object
/// (e.g. `{"cfg": 0.5, "top_k": 0, "top_p": 1.0}`); front ends use it when the user gives none.
pub const META_SAMPLING: &str = "arvis.sampling";

/// Size of the little-endian `u64` header-length prefix.
const N_LEN: usize = 8;
/// Largest header safetensors accepts (it rejects anything larger).
const MAX_HEADER_SIZE: usize = 100_000_000;
/// Key of the free-form metadata block in the header.
const METADATA_KEY: &str = "__metadata__";

/// Where the bytes of a [`Weights`] live.
enum Backing {
    /// A read-only memory map of the file.
    Mmap(memmap2::Mmap),
    /// An owned buffer.
    Vec(Vec<u8>),
    /// A buffer embedded in the binary (`include_bytes!`).
    Static(&'static [u8]),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Vec(v) => v,
            Backing::Static(s) => s,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Backing::Mmap(_) => "mmap",
            Backing::Vec(_) => "vec",
            Backing::Static(_) => "static",
        }
    }
}

/// One tensor's entry in the header, with its byte range made absolute (into the whole buffer).
#[derive(Clone, Debug)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A validated safetensors container: tensors by name, converted to `f32` on request.
///
/// Cheap to share by reference (`Send + Sync`); [`Weights::scope`] gives prefixed views.
pub struct Weights {
    path: PathBuf,
    backing: Backing,
    tensors: HashMap<String, Entry>,
    metadata: Option<HashMap<String, String>>,
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weights")
            .field("path", &self.path)
            .field("backing", &self.backing.kind())
            .field("bytes", &self.backing.bytes().len())
            .field("tensors", &self.tensors.len())
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl Weights {
    /// Memory-maps and validates the safetensors file at `path`.
    ///
    /// The file is mapped read-only, not read: tensors are converted only when asked for.
    /// As with every memory map, **the file must not be modified or truncated while the
    /// [`Weights`] is alive**: another process writing it changes the data under us, and
    /// truncating it makes later reads fault (`SIGBUS`). Validation happens once, here.
    ///
    /// Errors: [`Error::Io`] if the file cannot be opened or mapped, [`Error::SafeTensors`] if it
    /// is not a valid safetensors container.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(source) => return Err(Error::Io { path, source }),
        };
        // SAFETY: the map is read-only and private to this `Weights`; the documented contract of
        // `open` is that the file is not modified while mapped. Every access goes through
        // bounds-checked slices validated against the mapped length.
        let mmap = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(m) => m,
            Err(source) => return Err(Error::Io { path, source }),
        };
        Self::validate(path, Backing::Mmap(mmap))
    }

    /// Validates a safetensors container held in memory. `name` stands for the file in errors.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::validate(name.into(), Backing::Vec(bytes))
    }

    /// Validates a safetensors container embedded in the binary, e.g. with
    /// `include_bytes!("tiny.safetensors")`, without copying it. `name` stands for the file in
    /// errors.
    pub fn from_static(name: impl Into<PathBuf>, bytes: &'static [u8]) -> Result<Self> {
        Self::validate(name.into(), Backing::Static(bytes))
    }

    /// The file path (or the name given to an in-memory buffer).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tensors in the file.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// `true` if the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// `true` if a tensor called `name` is in the file.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Shape of tensor `name` as stored. Error: [`Error::MissingTensor`].
    pub fn shape_of(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.entry(name)?.shape)
    }

    /// Dtype of tensor `name` as stored. Error: [`Error::MissingTensor`].
    pub fn dtype_of(&self, name: &str) -> Result<Dtype> {
        Ok(self.entry(name)?.dtype)
    }

    /// Reads tensor `name` as `f32`, checking that its shape is `expected_shape`.
    ///
    /// Errors: [`Error::MissingTensor`], [`Error::TensorShape`] (with both shapes),
    /// [`Error::Dtype`] for dtypes other than `F32`, `F16`, `BF16`.
    pub fn get(&self, name: &str, expected_shape: &[usize]) -> Result<Tensor> {
        let entry = self.entry(name)?;
        if entry.shape != expected_shape {
            return Err(Error::TensorShape {
                path: self.path.clone(),
                name: name.to_owned(),
                expected: expected_shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        self.convert(name, entry)
    }

    /// Reads tensor `name` as `f32` with whatever shape it has.
    ///
    /// Errors: [`Error::MissingTensor`], [`Error::Dtype`].
    pub fn get_any(&self, name: &str) -> Result<Tensor> {
        let entry = self.entry(name)?;
        self.convert(name, entry)
    }

    /// A view whose reads prefix names with `prefix` and a `.`: `w.scope("blocks.0").get("x",..)`
    /// reads `blocks.0.x`. An empty prefix is the whole file; a trailing `.` is ignored.
    pub fn scope(&self, prefix: &str) -> WeightsScope<'_> {
        self.scope_on(prefix, Device::Cpu)
    }

    /// [`Weights::scope`] whose tensors are placed on `device` as they are read (so a model's
    /// loader, written once against scopes, loads onto either device).
    pub fn scope_on(&self, prefix: &str, device: Device) -> WeightsScope<'_> {
        WeightsScope {
            weights: self,
            prefix: trim_prefix(prefix).to_owned(),
            device,
        }
    }

    /// The `__metadata__` block, if the file has one.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.metadata.as_ref()
    }

    /// The metadata value for `key`. Error: [`Error::Metadata`] naming the key if it is absent.
    pub fn metadata_str(&self, key: &str) -> Result<&str> {
        match &self.metadata {
            None => {
                Err(self.meta_err(format!("no `__metadata__` block (looking for key `{key}`)")))
            }
            Some(m) => match m.get(key) {
                Some(v) => Ok(v),
                None => Err(self.meta_err(format!("missing key `{key}`"))),
            },
        }
    }

    /// The metadata value for `key` parsed as JSON (e.g. [`META_CONFIG`]).
    ///
    /// Error: [`Error::Metadata`] if the key is absent or its value is not valid JSON.
    pub fn metadata_json(&self, key: &str) -> Result<serde_json::Value> {
        let text = self.metadata_str(key)?;
        serde_json::from_str(text)
            .map_err(|e| self.meta_err(format!("key `{key}` is not valid JSON: {e}")))
    }

    fn meta_err(&self, msg: String) -> Error {
        Error::Metadata {
            path: self.path.clone(),
            msg,
        }
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.to_owned(),
        })
    }

    fn convert(&self, name: &str, entry: &Entry) -> Result<Tensor> {
        let invalid = |msg: String| Error::SafeTensors {
            path: self.path.clone(),
            msg: format!("tensor `{name}`: {msg}"),
        };
        // Validated at open; kept fallible so that no path can panic.
        let bytes = self
            .backing
            .bytes()
            .get(entry.start..entry.end)
            .ok_or_else(|| {
                invalid(format!(
                    "byte range {}..{} out of bounds",
                    entry.start, entry.end
                ))
            })?;
        let data: Vec<f32> = match entry.dtype {
            Dtype::F32 => {
                let (chunks, _) = bytes.as_chunks::<4>();
                chunks.iter().map(|c| f32::from_le_bytes(*c)).collect()
            }
            Dtype::F16 => {
                let (chunks, _) = bytes.as_chunks::<2>();
                chunks
                    .iter()
                    .map(|c| half::f16::from_bits(u16::from_le_bytes(*c)).to_f32())
                    .collect()
            }
            Dtype::BF16 => {
                let (chunks, _) = bytes.as_chunks::<2>();
                chunks
                    .iter()
                    .map(|c| half::bf16::from_bits(u16::from_le_bytes(*c)).to_f32())
                    .collect()
            }
            other => {
                return Err(Error::Dtype {
                    path: self.path.clone(),
                    name: name.to_owned(),
                    dtype: other.to_string(),
                });
            }
        };
        Tensor::from_vec(data, &entry.shape).map_err(|e| invalid(e.to_string()))
    }

    /// Validates `backing` as a safetensors container and builds the tensor index.
    fn validate(path: PathBuf, backing: Backing) -> Result<Self> {
        let (tensors, metadata) = match index(backing.bytes()) {
            Ok(parsed) => parsed,
            Err(msg) => return Err(Error::SafeTensors { path, msg }),
        };
        Ok(Weights {
            path,
            backing,
            tensors,
            metadata,
        })
    }
}

/// Number of elements of `shape`, or `None` if the product (or any partial product) overflows,
/// or if the product of the non-zero dims exceeds `isize::MAX` (which `ndarray` rejects).
fn checked_numel(shape: &[usize]) -> Option<usize> {
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    (isize::try_from(nonzero).is_ok()).then_some(numel)
}

type Index = (HashMap<String, Entry>, Option<HashMap<String, String>>);

/// Parses and validates a whole safetensors buffer. Errors are messages for
/// [`Error::SafeTensors`].
fn index(buf: &[u8]) -> std::result::Result<Index, String> {
    // Length prefix.
    let Some(prefix) = buf.first_chunk::<N_LEN>() else {
        return Err(format!(
            "file is {} bytes, shorter than the {N_LEN}-byte header length",
            buf.len()
        ));
    };
    let header_len = u64::from_le_bytes(*prefix);
    let available = buf.len() - N_LEN;
    let n = match usize::try_from(header_len) {
        Ok(n) if n <= available => n,
        _ => {
            return Err(format!(
                "header length {header_len} exceeds the {available} bytes after the length prefix \
                 (file is {} bytes)",
                buf.len()
            ));
        }
    };
    if n > MAX_HEADER_SIZE {
        return Err(format!(
            "header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit"
        ));
    }
    let data_start = N_LEN + n;
    let data_len = buf.len() - data_start;
    let header_bytes = buf.get(N_LEN..data_start).unwrap_or_default();

    // Header text and JSON.
    let header =
        std::str::from_utf8(header_bytes).map_err(|e| format!("header is not valid UTF-8: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(header).map_err(|e| format!("header is not valid JSON: {e}"))?;
    let serde_json::Value::Object(entries) = json else {
        return Err("header is not a JSON object".to_owned());
    };

    // Our own checks, entry by entry, so that errors name the tensor and so that nothing reaches
    // `read_metadata` with offsets beyond the buffer (its final size check could overflow).
    let mut ranges: Vec<(usize, usize, String)> = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if name == METADATA_KEY {
            serde_json::from_value::<Option<HashMap<String, String>>>(value)
                .map_err(|e| format!("`{METADATA_KEY}` must map strings to strings: {e}"))?;
            continue;
        }
        let info: safetensors::tensor::TensorInfo = serde_json::from_value(value)
            .map_err(|e| format!("tensor `{name}`: invalid header entry: {e}"))?;
        let (begin, end) = info.data_offsets;
        if begin > end || end > data_len {
            return Err(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}] out of range (data section is \
                 {data_len} bytes)"
            ));
        }
        let numel = checked_numel(&info.shape).ok_or_else(|| {
            format!(
                "tensor `{name}`: element count of shape {:?} overflows",
                info.shape
            )
        })?;
        let bits = numel.checked_mul(info.dtype.bitsize()).ok_or_else(|| {
            format!(
                "tensor `{name}`: byte size of {} × {:?} overflows",
                info.dtype, info.shape
            )
        })?;
        if bits % 8 != 0 {
            return Err(format!(
                "tensor `{name}`: {} × {:?} is not a whole number of bytes",
                info.dtype, info.shape
            ));
        }
        let bytes = bits / 8;
        if end - begin != bytes {
            return Err(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}] hold {} bytes but {} × {:?} needs \
                 {bytes}",
                end - begin,
                info.dtype,
                info.shape
            ));
        }
        ranges.push((begin, end, name));
    }
    ranges.sort_unstable();
    let mut cursor = 0usize;
    let mut previous: Option<&str> = None;
    for (begin, end, name) in &ranges {
        let (begin, end) = (*begin, *end);
        if begin < cursor {
            let other = previous.unwrap_or_default();
            return Err(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}] overlap tensor `{other}` \
                 (which ends at {cursor})"
            ));
        }
        if begin > cursor {
            return Err(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}] leave a gap after offset {cursor}"
            ));
        }
        cursor = end;
        previous = Some(name.as_str());
    }
    if cursor != data_len {
        return Err(format!(
            "tensors cover {cursor} of the {data_len} bytes of the data section (trailing bytes)"
        ));
    }

    // Cross-check with safetensors' own parser, then copy its view of the header.
    let (n_st, meta) = safetensors::SafeTensors::read_metadata(buf)
        .map_err(|e| format!("rejected by safetensors: {e}"))?;
    if n_st != n {
        return Err(format!(
            "safetensors read a {n_st}-byte header, expected {n}"
        ));
    }
    let mut tensors = HashMap::with_capacity(meta.tensors().len());
    for (name, info) in meta.tensors() {
        let (begin, end) = info.data_offsets;
        let range = data_start
            .checked_add(begin)
            .zip(data_start.checked_add(end));
        let Some((start, stop)) = range.filter(|&(s, e)| s <= e && e <= buf.len()) else {
            return Err(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}] out of range"
            ));
        };
        let entry = Entry {
            dtype: info.dtype,
            shape: info.shape.clone(),
            start,
            end: stop,
        };
        tensors.insert(name, entry);
    }
    if tensors.len() != ranges.len() {
        return Err(format!(
            "safetensors found {} tensors, expected {}",
            tensors.len(),
            ranges.len()
        ));
    }
    Ok((tensors, meta.metadata().clone()))
}

fn trim_prefix(prefix: &str) -> &str {
    prefix.strip_suffix('.').unwrap_or(prefix)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else if name.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A view of a [`Weights`] under a name prefix, e.g. `blocks.0.attn`.
///
/// Names passed to its methods are joined to the prefix with a `.`; errors carry the full
/// tensor name and the file path. Created by [`Weights::scope`] and [`WeightsScope::scope`].
#[derive(Clone, Debug)]
pub struct WeightsScope<'a> {
    weights: &'a Weights,
    prefix: String,
    /// Where tensors read through this view are placed (uploaded on read for the GPU).
    device: Device,
}

impl<'a> WeightsScope<'a> {
    /// The prefix of this view (without trailing `.`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The underlying weights.
    pub fn weights(&self) -> &'a Weights {
        self.weights
    }

    /// The full tensor name for `name` in this view.
    pub fn full_name(&self, name: &str) -> String {
        join(&self.prefix, name)
    }

    /// A nested view: `w.scope("blocks").scope("0")` has prefix `blocks.0` (and the same
    /// device).
    pub fn scope(&self, sub: &str) -> WeightsScope<'a> {
        WeightsScope {
            weights: self.weights,
            prefix: join(&self.prefix, trim_prefix(sub)),
            device: self.device,
        }
    }

    /// The device tensors read through this view are placed on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// [`Weights::get`] on the full name, placed on the view's device.
    pub fn get(&self, name: &str, expected_shape: &[usize]) -> Result<Tensor> {
        self.weights
            .get(&self.full_name(name), expected_shape)?
            .to_device(self.device)
    }

    /// [`Weights::get_any`] on the full name, placed on the view's device.
    pub fn get_any(&self, name: &str) -> Result<Tensor> {
        self.weights
            .get_any(&self.full_name(name))?
            .to_device(self.device)
    }

    /// [`Weights::contains`] on the full name.
    pub fn contains(&self, name: &str) -> bool {
        self.weights.contains(&self.full_name(name))
    }

    /// [`Weights::shape_of`] on the full name.
    pub fn shape_of(&self, name: &str) -> Result<&'a [usize]> {
        self.weights.shape_of(&self.full_name(name))
    }

    /// [`Weights::dtype_of`] on the full name.
    pub fn dtype_of(&self, name: &str) -> Result<Dtype> {
        self.weights.dtype_of(&self.full_name(name))
    }

    /// Names of the tensors under this prefix, relative to it, sorted.
    pub fn names(&self) -> Vec<&'a str> {
        if self.prefix.is_empty() {
            return self.weights.names();
        }
        let mut names: Vec<&'a str> = self
            .weights
            .tensors
            .keys()
            .filter_map(|k| k.strip_prefix(self.prefix.as_str())?.strip_prefix('.'))
            .collect();
        names.sort_unstable();
        names
    }
}
