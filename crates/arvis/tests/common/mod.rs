//! Helpers shared by the facade's test binaries.

/// `bytes` (a safetensors file) with `__metadata__[key] = value`, tensors untouched: for tests
/// of how loaders treat good and malformed metadata.
pub fn with_metadata(
    bytes: &[u8],
    key: &str,
    value: &str,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let n = usize::try_from(u64::from_le_bytes(bytes[..8].try_into()?))?;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n])?;
    header["__metadata__"][key] = serde_json::Value::String(value.to_owned());
    let mut head = serde_json::to_vec(&header)?;
    head.resize(head.len().next_multiple_of(8), b' ');
    let mut out = (head.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&head);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}
