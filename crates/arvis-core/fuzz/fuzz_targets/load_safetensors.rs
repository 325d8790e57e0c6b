//! Fuzzes `Weights::from_bytes`: any input must give `Ok` or an error, never a panic, and every
//! tensor of a file that opens must be readable without panicking.

#![no_main]

use arvis_core::Weights;
use arvis_core::weights::{META_CONFIG, META_FAMILY, META_SOURCE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(weights) = Weights::from_bytes("fuzz.safetensors", data.to_vec()) else {
        return;
    };
    for name in weights.names() {
        let _ = weights.shape_of(name);
        let _ = weights.dtype_of(name);
        if let Ok(tensor) = weights.get_any(name) {
            // A tensor that loads has exactly the stored shape.
            assert_eq!(Ok(tensor.shape()), weights.shape_of(name).map_err(|_| ()));
        }
    }
    if let Some(metadata) = weights.metadata() {
        for key in metadata.keys() {
            let _ = weights.metadata_str(key);
            let _ = weights.metadata_json(key);
        }
    }
    for key in [META_FAMILY, META_CONFIG, META_SOURCE] {
        let _ = weights.metadata_str(key);
        let _ = weights.metadata_json(key);
    }
});
