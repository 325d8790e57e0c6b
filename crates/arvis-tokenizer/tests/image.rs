//! Tensor ↔ RGB conversions with the official arithmetic, the grid, and PNG files.

use arvis_core::Tensor;
use arvis_tokenizer::TokenizerError;
use arvis_tokenizer::image::{
    PixelRange, Rgb8Image, Rounding, decode_png, encode_png, grid, load_png, rgb8_to_tensor,
    save_png, tensor_to_rgb8,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One 256×1 image holding every byte value in each channel.
fn ramp() -> Result<Rgb8Image, TokenizerError> {
    let pixels = (0..=255u8).flat_map(|v| [v, 255 - v, v / 2]).collect();
    Rgb8Image::new(256, 1, pixels)
}

#[test]
fn input_conversion_is_to_tensor_then_2x_minus_1() -> TestResult {
    let t = rgb8_to_tensor(&[ramp()?], PixelRange::MinusOneOne)?;
    assert_eq!(t.shape(), &[1, 3, 1, 256]);
    let r = &t.to_vec()[..256];
    for (u, &v) in r.iter().enumerate() {
        let x = u as f32 / 255.0;
        assert_eq!(v.to_bits(), (x + x - 1.0).to_bits(), "u8 {u}");
    }
    assert_eq!((r[0], r[255]), (-1.0, 1.0));
    let t01 = rgb8_to_tensor(&[ramp()?], PixelRange::ZeroOne)?;
    assert_eq!(t01.to_vec()[255], 1.0);
    Ok(())
}

/// torch: `u8 → /255 → x+x−1 → (x+1)·0.5 → ·255 → astype(uint8)` loses one for 1..=63 (float
/// error just below the integer), while `+0.5` rounding (save_image) is exact. Recorded from
/// torch 2 / numpy.
#[test]
fn round_trips_match_torch() -> TestResult {
    let t = rgb8_to_tensor(&[ramp()?], PixelRange::MinusOneOne)?;
    let near = tensor_to_rgb8(&t, PixelRange::MinusOneOne, Rounding::Nearest)?;
    assert_eq!(near[0], ramp()?);
    let trunc = tensor_to_rgb8(&t, PixelRange::MinusOneOne, Rounding::Truncate)?;
    for u in 0..=255usize {
        let want = if (1..=63).contains(&u) { u - 1 } else { u };
        assert_eq!(trunc[0].pixels()[3 * u] as usize, want, "u8 {u}");
    }
    Ok(())
}

#[test]
fn output_conversion_clamps_and_rounds() -> TestResult {
    let vals = [-2.0f32, 0.0, 0.999, 0.5, 1.5, f32::NAN];
    let mut data = Vec::new();
    for _ in 0..3 {
        data.extend_from_slice(&vals);
    }
    let t = Tensor::from_vec(data, &[1, 3, 1, 6])?;
    let tr = tensor_to_rgb8(&t, PixelRange::ZeroOne, Rounding::Truncate)?;
    let nr = tensor_to_rgb8(&t, PixelRange::ZeroOne, Rounding::Nearest)?;
    let red = |img: &Rgb8Image| -> Vec<u8> { img.pixels().iter().step_by(3).copied().collect() };
    assert_eq!(red(&tr[0]), [0, 0, 254, 127, 255, 0]);
    assert_eq!(red(&nr[0]), [0, 0, 255, 128, 255, 0]);
    let err = tensor_to_rgb8(
        &Tensor::zeros(&[1, 4, 2, 2]),
        PixelRange::ZeroOne,
        Rounding::Nearest,
    );
    assert!(matches!(err, Err(TokenizerError::Shape { .. })));
    Ok(())
}

#[test]
fn grid_tiles_like_make_grid() -> TestResult {
    let imgs: Vec<Rgb8Image> = (0..3u8)
        .map(|i| Rgb8Image::filled(2, 2, [i * 10, 1, 2]))
        .collect();
    let g = grid(&imgs, 2, 1, [255, 255, 255])?;
    // 2 columns, 2 rows: (2 + 1)·2 + 1 = 7 on each side.
    assert_eq!((g.width(), g.height()), (7, 7));
    assert_eq!(g.pixel(0, 0), Some([255, 255, 255]));
    assert_eq!(g.pixel(1, 1), Some([0, 1, 2]));
    assert_eq!(g.pixel(4, 2), Some([10, 1, 2]));
    assert_eq!(g.pixel(2, 4), Some([20, 1, 2]));
    assert_eq!(g.pixel(4, 4), Some([255, 255, 255]));
    let g0 = grid(&imgs, 8, 0, [0, 0, 0])?;
    assert_eq!((g0.width(), g0.height()), (6, 2));
    assert!(grid(&[], 8, 0, [0; 3]).is_err());
    Ok(())
}

#[test]
fn png_round_trip() -> TestResult {
    let img = ramp()?;
    let bytes = encode_png(&img)?;
    assert_eq!(decode_png(&bytes)?, img);
    let dir = std::env::temp_dir().join(format!("arvis-tokenizer-png-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("ramp.png");
    save_png(&path, &img)?;
    assert_eq!(load_png(&path)?, img);
    std::fs::remove_dir_all(&dir)?;
    let missing = load_png(dir.join("nope.png"))
        .err()
        .ok_or("expected error")?;
    assert!(missing.to_string().contains("nope.png"), "{missing}");
    assert!(decode_png(b"not a png").is_err());
    assert!(Rgb8Image::new(2, 2, vec![0; 11]).is_err());
    Ok(())
}
