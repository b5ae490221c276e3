//! The data layer: IDX files, the built-in datasets (their download and verification),
//! train/validation splits, augmentation, and rendering single images. No Burn: the tensors are
//! made by `lenet-train`'s batcher.
//!
//! Files are written through `lenet_io` (atomically, missing parent directories created).

pub mod augment;
pub mod dataset;
pub mod download;
pub mod error;
pub mod idx;
pub mod render;
pub mod split;
#[doc(hidden)]
pub mod testing;
pub mod verify;

pub use augment::{warp_affine, Affine, AugmentConfig, Augmenter};
pub use dataset::{
    ensure_available, file_urls, resolve_data_root, Dataset, DatasetFile, DatasetKind, FileRole,
    Split, DATA_DIR_ENV,
};
pub use download::{download_verified, sha256_file, verify_sha256};
pub use error::{DataError, MirrorFailure};
pub use idx::{read_images, read_labels, write_images, write_labels, IdxImages};
pub use render::{text_art, write_png};
pub use split::{train_valid_split, Holdout};
pub use verify::{fetch, verify_dir, verify_root, FetchEvent, VerifyReport, VerifyRow};
