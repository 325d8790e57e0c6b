//! Images in and out: tensor ↔ 8-bit RGB conversions with the official rounding, a
//! `make_grid`-style tiling, and PNG files via the `image` crate.
//!
//! # Conversions (checked against the official code)
//!
//! - **Input** (`utils/data.py`): torchvision's `ToTensor` gives `x = u8 / 255` (a true f32
//!   division), then `normalize_01_into_pm1` gives `x + x − 1` in `[-1, 1]`.
//!   [`rgb8_to_tensor`] computes exactly these f32 operations.
//! - **Output**: VAR returns `fhat_to_img(f).add_(1).mul_(0.5)` in `[0, 1]`; its demo notebook
//!   then does `mul_(255)` and `numpy.astype(uint8)`, which **truncates**
//!   ([`Rounding::Truncate`], the default). `torchvision.utils.save_image` instead rounds,
//!   `mul(255).add_(0.5).clamp_(0, 255)` then truncation ([`Rounding::Nearest`]).
//!   [`tensor_to_rgb8`] clamps to `[0, 255]` before rounding (the demo relies on the decoder's
//!   clamp instead) and maps NaN to 0.

use std::path::Path;

use arvis_core::Tensor;

use crate::error::{Result, TokenizerError};

/// The value range of an image tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PixelRange {
    /// `[0, 1]` (VAR's generated images).
    ZeroOne,
    /// `[-1, 1]` (the VQ-VAE's input and `fhat_to_img` output).
    #[default]
    MinusOneOne,
}

/// How `[0, 255]` floats become bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rounding {
    /// `floor(v)`: VAR's demo (`.mul_(255)` then `astype(np.uint8)`).
    #[default]
    Truncate,
    /// `floor(v + 0.5)`: `torchvision.utils.save_image`.
    Nearest,
}

/// An 8-bit RGB image, pixels interleaved `RGBRGB…`, rows top to bottom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8Image {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Rgb8Image {
    /// Wraps `pixels` (`3·width·height` bytes).
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Result<Self> {
        if pixels.len() != 3 * width * height {
            return Err(TokenizerError::Pixels(format!(
                "{} bytes cannot form a {width}x{height} RGB image ({} needed)",
                pixels.len(),
                3 * width * height
            )));
        }
        Ok(Rgb8Image {
            width,
            height,
            pixels,
        })
    }

    /// A `width × height` image filled with `rgb`.
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        let pixels = rgb
            .iter()
            .copied()
            .cycle()
            .take(3 * width * height)
            .collect();
        Rgb8Image {
            width,
            height,
            pixels,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The interleaved RGB bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixel at `(x, y)`.
    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 3 * (y * self.width + x);
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    /// Takes the bytes.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }
}

/// Converts `[B, 3, H, W]` in `range` to `B` RGB images (see the module docs for the exact
/// arithmetic).
pub fn tensor_to_rgb8(
    img: &Tensor,
    range: PixelRange,
    rounding: Rounding,
) -> Result<Vec<Rgb8Image>> {
    let s = img.shape();
    if s.len() != 4 || s[1] != 3 {
        return Err(TokenizerError::shape(
            "tensor_to_rgb8",
            "image [B, 3, H, W]",
            s,
        ));
    }
    let (b, h, w) = (s[0], s[2], s[3]);
    let data = img.to_vec();
    let plane = h * w;
    let to_u8 = |x: f32| -> u8 {
        let v01 = match range {
            PixelRange::ZeroOne => x,
            PixelRange::MinusOneOne => (x + 1.0) * 0.5,
        };
        let v = v01 * 255.0;
        let v = match rounding {
            Rounding::Truncate => v,
            Rounding::Nearest => v + 0.5,
        };
        // `as u8` saturates and maps NaN to 0; clamping first keeps the intent explicit.
        v.clamp(0.0, 255.0) as u8
    };
    (0..b)
        .map(|bi| {
            let base = bi * 3 * plane;
            let mut pixels = Vec::with_capacity(3 * plane);
            for p in 0..plane {
                for ch in 0..3 {
                    pixels.push(to_u8(data[base + ch * plane + p]));
                }
            }
            Rgb8Image::new(w, h, pixels)
        })
        .collect()
}

/// Stacks images of one size into `[B, 3, H, W]` in `range` (`u8 / 255`, then `2x − 1` for
/// `[-1, 1]`, as the official data pipeline).
pub fn rgb8_to_tensor(images: &[Rgb8Image], range: PixelRange) -> Result<Tensor> {
    let Some(first) = images.first() else {
        return Err(TokenizerError::Pixels("no images to stack".into()));
    };
    let (w, h) = (first.width, first.height);
    if let Some(bad) = images.iter().find(|i| (i.width, i.height) != (w, h)) {
        return Err(TokenizerError::Pixels(format!(
            "images of different sizes: {w}x{h} and {}x{}",
            bad.width, bad.height
        )));
    }
    let plane = w * h;
    let mut out = vec![0.0f32; images.len() * 3 * plane];
    for (img, dst) in images.iter().zip(out.chunks_mut(3 * plane.max(1))) {
        for (p, rgb) in img.pixels.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                let x = rgb[ch] as f32 / 255.0;
                dst[ch * plane + p] = match range {
                    PixelRange::ZeroOne => x,
                    PixelRange::MinusOneOne => x + x - 1.0,
                };
            }
        }
    }
    Ok(Tensor::from_vec(out, &[images.len(), 3, h, w])?)
}

/// Tiles images of one size like `torchvision.utils.make_grid`: `min(nrow, B)` per row,
/// `padding` pixels of `pad_value` between and around them (VAR's demo: `nrow=8, padding=0`).
pub fn grid(
    images: &[Rgb8Image],
    nrow: usize,
    padding: usize,
    pad_value: [u8; 3],
) -> Result<Rgb8Image> {
    let Some(first) = images.first() else {
        return Err(TokenizerError::Pixels("no images to tile".into()));
    };
    if nrow == 0 {
        return Err(TokenizerError::Pixels("grid: nrow must be >= 1".into()));
    }
    let (w, h) = (first.width, first.height);
    if let Some(bad) = images.iter().find(|i| (i.width, i.height) != (w, h)) {
        return Err(TokenizerError::Pixels(format!(
            "grid: images of different sizes: {w}x{h} and {}x{}",
            bad.width, bad.height
        )));
    }
    let cols = nrow.min(images.len());
    let rows = images.len().div_ceil(cols);
    let (cw, ch) = (w + padding, h + padding);
    let mut out = Rgb8Image::filled(cols * cw + padding, rows * ch + padding, pad_value);
    for (i, img) in images.iter().enumerate() {
        let (x0, y0) = ((i % cols) * cw + padding, (i / cols) * ch + padding);
        for y in 0..h {
            let dst = 3 * ((y0 + y) * out.width + x0);
            out.pixels[dst..dst + 3 * w].copy_from_slice(&img.pixels[3 * y * w..3 * (y + 1) * w]);
        }
    }
    Ok(out)
}

fn to_image_crate(img: &Rgb8Image) -> Result<image::RgbImage> {
    let (w, h) = (
        u32::try_from(img.width).map_err(|_| TokenizerError::Pixels("width too large".into()))?,
        u32::try_from(img.height).map_err(|_| TokenizerError::Pixels("height too large".into()))?,
    );
    image::RgbImage::from_raw(w, h, img.pixels.clone())
        .ok_or_else(|| TokenizerError::Pixels("pixel buffer does not fit the size".into()))
}

fn from_image_crate(img: image::DynamicImage) -> Rgb8Image {
    let rgb = img.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Rgb8Image {
        width: w,
        height: h,
        pixels: rgb.into_raw(),
    }
}

/// Writes `img` as an 8-bit RGB PNG at `path`.
pub fn save_png(path: impl AsRef<Path>, img: &Rgb8Image) -> Result<()> {
    let path = path.as_ref();
    to_image_crate(img)?
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|source| TokenizerError::Image {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a PNG (any bit depth or colour type; alpha is dropped, grey is expanded) as 8-bit RGB.
pub fn load_png(path: impl AsRef<Path>) -> Result<Rgb8Image> {
    let path = path.as_ref();
    let img = image::ImageReader::open(path)
        .map_err(|e| TokenizerError::Image {
            path: path.to_path_buf(),
            source: image::ImageError::IoError(e),
        })?
        .with_guessed_format()
        .map_err(|e| TokenizerError::Image {
            path: path.to_path_buf(),
            source: image::ImageError::IoError(e),
        })?
        .decode()
        .map_err(|source| TokenizerError::Image {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(from_image_crate(img))
}

/// Encodes `img` as PNG bytes.
pub fn encode_png(img: &Rgb8Image) -> Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    to_image_crate(img)?
        .write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|source| TokenizerError::Image {
            path: "<memory>".into(),
            source,
        })?;
    Ok(buf.into_inner())
}

/// Decodes PNG bytes as 8-bit RGB.
pub fn decode_png(bytes: &[u8]) -> Result<Rgb8Image> {
    let img =
        image::load_from_memory_with_format(bytes, image::ImageFormat::Png).map_err(|source| {
            TokenizerError::Image {
                path: "<memory>".into(),
                source,
            }
        })?;
    Ok(from_image_crate(img))
}
