//! Checking a dataset's files, and fetching the missing or damaged ones: presence, SHA-256, IDX
//! headers, item counts, labels, and whether images and labels agree. The result is a
//! [`VerifyReport`]: a row per file and every problem found, so a user sees all of them at once.

use std::path::Path;

use crate::dataset::{file_urls, DatasetFile, DatasetKind, FileRole, Split};
use crate::download::{download_verified, sha256_file, verify_sha256};
use crate::error::DataError;
use crate::idx::{read_images, read_labels};

/// One line of the verification table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRow {
    /// The file, as shown (`mnist/train-images-idx3-ubyte.gz`).
    pub file: String,
    /// Items it holds, or `-`.
    pub items: String,
    /// Image shape (`28x28`), `-` for labels, `ERROR` when unreadable.
    pub shape: String,
    /// `ok`, `ok (mnist)`, `unknown`, `FAILED` or `MISSING`.
    pub sha: String,
}

/// The outcome of checking one or more dataset directories.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// One row per file.
    pub rows: Vec<VerifyRow>,
    /// Every problem found, each naming its file.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// The aligned table: file, items, shape, sha256.
    pub fn table(&self) -> String {
        let header = VerifyRow {
            file: "file".into(),
            items: "items".into(),
            shape: "shape".into(),
            sha: "sha256".into(),
        };
        let all: Vec<&VerifyRow> = std::iter::once(&header).chain(&self.rows).collect();
        let w_file = all.iter().map(|r| r.file.len()).max().unwrap_or(0);
        let w_items = all.iter().map(|r| r.items.len()).max().unwrap_or(0);
        let w_shape = all.iter().map(|r| r.shape.len()).max().unwrap_or(0);
        all.iter()
            .map(|r| {
                format!(
                    "{:<w_file$}  {:>w_items$}  {:<w_shape$}  {}\n",
                    r.file, r.items, r.shape, r.sha
                )
            })
            .collect()
    }

    /// Adds another directory's rows and problems.
    pub fn extend(&mut self, other: VerifyReport) {
        self.rows.extend(other.rows);
        self.problems.extend(other.problems);
    }

    /// `Ok` when nothing is wrong, else an error listing every problem.
    pub fn into_result(self) -> Result<(), DataError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(DataError::Verification(self.problems))
        }
    }
}

/// Checks the built-in datasets under `root`: `kind`, or every one whose directory exists.
/// An error if none is found (with what to run instead).
pub fn verify_root(root: &Path, kind: Option<DatasetKind>) -> Result<VerifyReport, DataError> {
    let kinds: Vec<DatasetKind> = match kind {
        Some(k) => vec![k],
        None => DatasetKind::ALL
            .into_iter()
            .filter(|k| k.dir(root).is_dir())
            .collect(),
    };
    if kinds.is_empty() {
        return Err(DataError::NotFound {
            path: root.to_path_buf(),
            hint: format!(
                ": no dataset here (expected {} or {}); run `lenet data fetch mnist`, or pass \
                 --data-dir",
                DatasetKind::Mnist.dir(root).display(),
                DatasetKind::FashionMnist.dir(root).display()
            ),
        });
    }
    let mut all = VerifyReport::default();
    for k in kinds {
        all.extend(verify_dir(&k.dir(root), Some(k), &format!("{k}/")));
    }
    Ok(all)
}

/// What [`fetch`] does with each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchEvent<'a> {
    /// Present with the right checksum: kept.
    Present(&'a str),
    /// Present uncompressed with the right checksum: kept.
    PresentUncompressed(&'a str),
    /// Present with a wrong checksum: downloaded again.
    Damaged(&'a str),
    /// About to be downloaded.
    Downloading(&'a str),
    /// Downloaded and verified.
    Downloaded(&'a str),
}

/// Makes `<root>/<kind>/` hold the four verified files of `kind`: a file already present with the
/// right checksum is kept, any other is downloaded (from `mirrors`, then the official ones) and
/// verified. Then every file is checked; the report says what was found.
pub fn fetch(
    kind: DatasetKind,
    root: &Path,
    mirrors: &[String],
    on_event: &mut dyn FnMut(FetchEvent<'_>),
) -> Result<VerifyReport, DataError> {
    let dir = kind.dir(root);
    for f in kind.files() {
        // What a killed download left never holds a verified file.
        lenet_io::remove_stale_temporaries(&dir.join(f.name));
        let gz = dir.join(f.name);
        let raw = dir.join(f.raw_name());
        if gz.is_file() {
            match verify_sha256(&gz, f.sha256) {
                Ok(()) => {
                    on_event(FetchEvent::Present(f.name));
                    continue;
                }
                Err(DataError::ChecksumMismatch { .. }) => on_event(FetchEvent::Damaged(f.name)),
                Err(e) => return Err(e),
            }
        } else if raw.is_file() && verify_sha256(&raw, f.sha256_raw).is_ok() {
            on_event(FetchEvent::PresentUncompressed(f.raw_name()));
            continue;
        }
        on_event(FetchEvent::Downloading(f.name));
        download_verified(&file_urls(kind, f, mirrors), &gz, f.sha256)?;
        on_event(FetchEvent::Downloaded(f.name));
    }
    Ok(verify_dir(&dir, Some(kind), &format!("{kind}/")))
}

/// What was read from one file, for the cross-file checks.
enum Parsed {
    Images(usize),
    Labels(Vec<u8>),
}

/// Checks the four standard files in `dir` (rows are named `prefix` + the file name). With
/// `kind`, checksums and counts are compared to that dataset's; without, checksums are matched
/// against every built-in dataset.
pub fn verify_dir(dir: &Path, kind: Option<DatasetKind>, prefix: &str) -> VerifyReport {
    let mut report = VerifyReport::default();
    // Both built-in datasets use the same four names, in the same order.
    let names = DatasetKind::Mnist.files();
    let mut parsed: Vec<Option<Parsed>> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let spec = kind.map(|k| &k.files()[i]);
        let (row, p) = check_file(dir, name, spec, prefix, &mut report.problems);
        report.rows.push(row);
        parsed.push(p);
    }
    for split in [Split::Train, Split::Test] {
        let (ii, li) = match split {
            Split::Train => (0, 1),
            Split::Test => (2, 3),
        };
        if let (Some(Parsed::Images(n)), Some(Parsed::Labels(labels))) = (&parsed[ii], &parsed[li])
        {
            if *n != labels.len() {
                report.problems.push(format!(
                    "{split}: {} holds {n} images but {} holds {} labels",
                    names[ii].name,
                    names[li].name,
                    labels.len()
                ));
            }
        }
        if let (Some(k), Some(Parsed::Labels(labels))) = (kind, &parsed[li]) {
            if let Some((idx, &l)) = labels
                .iter()
                .enumerate()
                .find(|(_, &l)| usize::from(l) >= k.num_classes())
            {
                report.problems.push(format!(
                    "{}: label {l} at index {idx} is outside 0..{}",
                    dir.join(names[li].name).display(),
                    k.num_classes()
                ));
            }
        }
    }
    report
}

/// Checks one file (the `.gz` name, else the uncompressed one).
fn check_file(
    dir: &Path,
    name: &DatasetFile,
    spec: Option<&DatasetFile>,
    prefix: &str,
    problems: &mut Vec<String>,
) -> (VerifyRow, Option<Parsed>) {
    let gz = dir.join(name.name);
    let raw = dir.join(name.raw_name());
    let (path, compressed) = if gz.is_file() {
        (gz, true)
    } else if raw.is_file() {
        (raw, false)
    } else {
        problems.push(format!(
            "{}: missing (nor {})",
            gz.display(),
            name.raw_name()
        ));
        let row = VerifyRow {
            file: format!("{prefix}{}", name.name),
            items: "-".into(),
            shape: "-".into(),
            sha: "MISSING".into(),
        };
        return (row, None);
    };
    let shown_name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let expected = |f: &DatasetFile| if compressed { f.sha256 } else { f.sha256_raw };
    let sha = match sha256_file(&path) {
        Err(e) => {
            problems.push(e.to_string());
            "FAILED (unreadable)".to_string()
        }
        Ok(actual) => match spec {
            Some(f) if actual == expected(f) => "ok".to_string(),
            Some(f) => {
                problems.push(
                    DataError::ChecksumMismatch {
                        path: path.clone(),
                        expected: expected(f).to_string(),
                        actual,
                    }
                    .to_string(),
                );
                "FAILED".to_string()
            }
            None => DatasetKind::ALL
                .into_iter()
                .find(|k| k.files().iter().any(|f| expected(f) == actual))
                .map_or_else(|| "unknown".to_string(), |k| format!("ok ({k})")),
        },
    };
    let (items, shape, parsed) = match name.role {
        FileRole::Images => match read_images(&path) {
            Ok(img) => (
                img.count,
                format!("{}x{}", img.rows, img.cols),
                Some(Parsed::Images(img.count)),
            ),
            Err(e) => {
                problems.push(e.to_string());
                (0, "ERROR".to_string(), None)
            }
        },
        FileRole::Labels => match read_labels(&path) {
            Ok(labels) => (labels.len(), "-".to_string(), Some(Parsed::Labels(labels))),
            Err(e) => {
                problems.push(e.to_string());
                (0, "ERROR".to_string(), None)
            }
        },
    };
    if let (Some(f), Some(_)) = (spec, &parsed) {
        if items != f.items {
            problems.push(format!(
                "{}: holds {items} items, expected {}",
                path.display(),
                f.items
            ));
        }
    }
    let row = VerifyRow {
        file: format!("{prefix}{shown_name}"),
        items: if parsed.is_some() {
            items.to_string()
        } else {
            "-".to_string()
        },
        shape,
        sha,
    };
    (row, parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::write_labels;
    use crate::testing::write_fake_dataset;

    #[test]
    fn verify_custom_dir() {
        let dir = tempfile::tempdir().unwrap();
        write_fake_dataset(dir.path(), 5, &[0, 1, 2]);
        let report = verify_dir(dir.path(), None, "");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let table = report.table();
        assert!(table.contains("train-images-idx3-ubyte.gz"), "{table}");
        assert!(table.contains("t10k-images-idx3-ubyte "), "{table}");
        assert!(table.contains("5x5"), "{table}");
        assert!(table.contains("unknown"), "{table}");
        // The columns line up: the sha256 column starts at the same place on every line.
        let col = table.find("sha256").unwrap();
        for line in table.lines() {
            let (before, after) = line.split_at(col);
            assert!(before.ends_with("  ") && !after.starts_with(' '), "{table}");
        }
        report.into_result().unwrap();
    }

    #[test]
    fn verify_reports_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        // A label 12 that MNIST does not have, a garbage file and a missing one.
        write_fake_dataset(dir.path(), 28, &[0, 1, 2, 12]);
        let names = DatasetKind::Mnist.files();
        std::fs::write(dir.path().join(names[0].name), b"garbage").unwrap();
        std::fs::remove_file(dir.path().join(names[3].name)).unwrap();
        let report = verify_dir(dir.path(), Some(DatasetKind::Mnist), "mnist/");
        let all = report.problems.join("\n");
        assert!(
            all.contains("train-images-idx3-ubyte.gz: bad IDX magic"),
            "{all}"
        );
        assert!(all.contains("t10k-labels-idx1-ubyte.gz: missing"), "{all}");
        assert!(all.contains("label 12 at index 3"), "{all}");
        assert!(all.contains("checksum mismatch"), "{all}");
        let table = report.table();
        assert!(
            table.contains("MISSING") && table.contains("FAILED"),
            "{table}"
        );
        let err = report.into_result().unwrap_err().to_string();
        assert!(err.contains("problem(s) found"), "{err}");
    }

    #[test]
    fn count_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_fake_dataset(dir.path(), 4, &[0, 1, 2]);
        let names = DatasetKind::Mnist.files();
        write_labels(&dir.path().join(names[1].name), &[0, 1], true).unwrap();
        let report = verify_dir(dir.path(), None, "");
        let all = report.problems.join("\n");
        assert!(all.contains("holds 3 images but"), "{all}");
    }
}
