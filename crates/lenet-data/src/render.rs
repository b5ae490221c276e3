//! Showing one image: as text art for the terminal, or as a grayscale PNG file.

use std::path::Path;

use super::error::DataError;

/// Characters from dark (0) to bright (255).
const RAMP: &[u8] = b" .:-=+*#%@";

/// The `rows x cols` image as text, one line per row and two characters per pixel (terminal
/// cells are about twice as tall as wide), from `' '` for black to `'@'` for white.
///
/// Pixels missing from a short `img` are drawn as black; extra bytes are ignored.
pub fn text_art(img: &[u8], rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * (2 * cols + 1));
    for y in 0..rows {
        for x in 0..cols {
            let v = img.get(y * cols + x).copied().unwrap_or(0);
            let c = char::from(RAMP[usize::from(v) * RAMP.len() / 256]);
            s.push(c);
            s.push(c);
        }
        // Trailing spaces are noise in a terminal or a diff.
        s.truncate(s.trim_end_matches(' ').len());
        s.push('\n');
    }
    s
}

/// Writes the `rows x cols` image as an 8-bit grayscale PNG (atomically, through `lenet_io`).
pub fn write_png(path: &Path, img: &[u8], rows: usize, cols: usize) -> Result<(), DataError> {
    let invalid = |detail: String| DataError::InvalidInput {
        path: path.to_path_buf(),
        detail,
    };
    if rows.checked_mul(cols) != Some(img.len()) {
        return Err(invalid(format!(
            "an image of {rows}x{cols} pixels needs {} bytes, got {}",
            rows.saturating_mul(cols),
            img.len()
        )));
    }
    let width = u32::try_from(cols).map_err(|_| invalid(format!("width {cols} is too large")))?;
    let height = u32::try_from(rows).map_err(|_| invalid(format!("height {rows} is too large")))?;
    let image = image::GrayImage::from_raw(width, height, img.to_vec())
        .ok_or_else(|| invalid(format!("{rows}x{cols} does not match the pixels")))?;
    Ok(lenet_io::write_png(path, &image)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_art_shape_and_ramp() {
        let img = [0u8, 255, 128, 0, 0, 0];
        let art = text_art(&img, 2, 3);
        let lines: Vec<&str> = art.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "  @@++");
        assert_eq!(lines[1], "");
        // A short image does not panic; missing pixels are black.
        assert_eq!(text_art(&[255], 1, 2), "@@\n");
    }

    #[test]
    fn png_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("digit.png");
        let img: Vec<u8> = (0..12).map(|i| i * 20).collect();
        write_png(&p, &img, 3, 4).unwrap();
        let back = image::open(&p).unwrap().into_luma8();
        assert_eq!(back.dimensions(), (4, 3));
        assert_eq!(back.into_raw(), img);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let err = write_png(&dir.path().join("bad.png"), &img, 5, 5).unwrap_err();
        assert!(matches!(err, DataError::InvalidInput { .. }), "{err:?}");
        assert!(err.to_string().contains("bad.png"), "{err}");
    }
}
