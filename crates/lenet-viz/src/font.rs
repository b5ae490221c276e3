//! The embedded font.
//!
//! plotters' `ab_glyph` text renderer knows no system fonts: every family it draws with must be
//! registered first. We register DejaVu Sans (regular and bold, from the `dejavu` crate) under
//! the family name `"sans-serif"`, so text looks the same on every machine.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

use crate::VizError;

/// The family name every drawing in this crate uses.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the fonts once per process; later calls return the first call's outcome.
pub(crate) fn ensure_fonts() -> Result<(), VizError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "cannot load the embedded DejaVu Sans font".to_string())?;
            register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold())
                .map_err(|_| "cannot load the embedded DejaVu Sans Bold font".to_string())
        })
        .clone()
        .map_err(VizError::Draw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fonts_register_and_repeat_calls_succeed() {
        assert!(ensure_fonts().is_ok());
        assert!(ensure_fonts().is_ok());
    }
}
