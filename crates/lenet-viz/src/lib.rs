//! Pictures of training runs and networks, drawn without Burn.
//!
//! * [`curves`]: loss, accuracy and learning rate against the epoch, as PNG and SVG
//!   ([`write_curves`]).
//! * [`confusion`]: a confusion matrix heat map ([`write_confusion`]).
//! * [`scatter`]: a value against a setting, e.g. a sweep's accuracy against its learning rate
//!   ([`write_scatter`]).
//! * [`grid`]: grids of small grayscale images such as misclassified digits, learned filters or
//!   feature maps ([`write_grid`]).
//!
//! Text is drawn with DejaVu Sans embedded in the binary, so pictures are identical on every
//! machine and need no system fonts. Rendering is deterministic: the same input gives the same
//! bytes. Files are written with `lenet_io`: atomically, missing parent directories created.
//!
//! ```
//! use lenet_viz::{grid_png, grid_size, Grid, Scale, Tile};
//!
//! let grid = Grid {
//!     title: Some("conv1 filters".into()),
//!     tiles: vec![Tile::new(2, 2, vec![-1.0, 0.0, 0.5, 1.0]).with_caption("f0")],
//!     columns: 8,
//!     zoom: 10,
//!     scale: Scale::Symmetric,
//! };
//! let picture = grid_png(&grid)?;
//! assert_eq!(picture.dimensions(), grid_size(&grid));
//! # Ok::<(), lenet_viz::VizError>(())
//! ```

pub mod confusion;
pub mod curves;
mod error;
mod font;
pub mod grid;
mod render;
pub mod scatter;

pub use confusion::{confusion_png, confusion_size, write_confusion};
pub use curves::{curves_png, curves_svg, write_curves, Curves, Series};
pub use error::VizError;
pub use grid::{grid_png, grid_size, tile_origin, write_grid, Grid, Scale, Tile};
pub use lenet_io::png_bytes;
pub use scatter::{scatter_png, write_scatter, Scatter, XAxis};
