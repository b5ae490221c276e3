//! `metrics.csv`: one row per epoch and split (train, valid), a column per metric.

use std::collections::BTreeMap;

use crate::data::Subset;

/// One row of `metrics.csv`: an epoch's values on one split.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// `train` or `valid`.
    pub split: Subset,
    /// Column → value (`loss`, `accuracy`, `top_5_accuracy`, `learning_rate`, `images_per_second`, `seconds`).
    pub values: BTreeMap<String, f64>,
}

impl MetricRow {
    /// A value, if the row has it.
    pub fn get(&self, column: &str) -> Option<f64> {
        self.values.get(column).copied()
    }
}

/// The epoch with the highest validation accuracy (the earliest on ties) and that accuracy.
pub fn best_epoch(rows: &[MetricRow]) -> Option<(usize, f64)> {
    rows.iter()
        .filter(|r| r.split == Subset::Valid)
        .filter_map(|r| r.get("accuracy").map(|a| (r.epoch, a)))
        .fold(None, |best: Option<(usize, f64)>, (e, a)| match best {
            Some((_, b)) if b >= a => best,
            _ => Some((e, a)),
        })
}

/// The last validation accuracy recorded.
pub fn last_valid_accuracy(rows: &[MetricRow]) -> Option<f64> {
    rows.iter()
        .filter(|r| r.split == Subset::Valid)
        .max_by_key(|r| r.epoch)
        .and_then(|r| r.get("accuracy"))
}

/// The rows as CSV: `epoch,split,` then every column that any row has, sorted.
pub fn format(rows: &[MetricRow]) -> String {
    let mut columns: Vec<String> = rows.iter().flat_map(|r| r.values.keys().cloned()).collect();
    columns.sort();
    columns.dedup();
    let header: Vec<&str> = ["epoch", "split"]
        .into_iter()
        .chain(columns.iter().map(String::as_str))
        .collect();
    let mut out = format!("{}\n", header.join(","));
    let mut rows: Vec<&MetricRow> = rows.iter().collect();
    rows.sort_by_key(|r| (r.epoch, r.split));
    for r in rows {
        out.push_str(&format!("{},{}", r.epoch, r.split));
        for c in &columns {
            match r.get(c) {
                Some(v) => out.push_str(&format!(",{v}")),
                None => out.push(','),
            }
        }
        out.push('\n');
    }
    out
}

/// Reads CSV written by [`format()`]; an error is `(1-based line, what is wrong)`.
pub fn parse(text: &str) -> Result<Vec<MetricRow>, (usize, String)> {
    let mut lines = text.lines();
    let header: Vec<&str> = match lines.next() {
        Some(h) => h.split(',').collect(),
        None => return Ok(Vec::new()),
    };
    if header.len() < 2 || header[0] != "epoch" || header[1] != "split" {
        return Err((1, "expected a header starting with `epoch,split`".into()));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != header.len() {
            return Err((
                i + 2,
                format!("{} cells, expected {}", cells.len(), header.len()),
            ));
        }
        let epoch = cells[0]
            .parse()
            .map_err(|_| (i + 2, format!("bad epoch `{}`", cells[0])))?;
        let split = cells[1].parse().map_err(|e| (i + 2, e))?;
        let mut values = BTreeMap::new();
        for (name, cell) in header[2..].iter().zip(&cells[2..]) {
            if !cell.is_empty() {
                let v = cell
                    .parse()
                    .map_err(|_| (i + 2, format!("bad number `{cell}` in {name}")))?;
                values.insert(name.to_string(), v);
            }
        }
        rows.push(MetricRow {
            epoch,
            split,
            values,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_and_best_epoch() {
        let row = |epoch, split, acc| MetricRow {
            epoch,
            split,
            values: [("accuracy".to_string(), acc), ("loss".to_string(), 0.5)]
                .into_iter()
                .collect(),
        };
        let rows = vec![
            row(1, Subset::Train, 0.9),
            row(1, Subset::Valid, 0.95),
            row(2, Subset::Valid, 0.97),
            row(3, Subset::Valid, 0.97),
        ];
        let text = format(&rows);
        assert!(
            text.starts_with("epoch,split,accuracy,loss\n1,train,0.9,0.5\n"),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), rows);
        assert_eq!(best_epoch(&rows), Some((2, 0.97)));
        assert_eq!(last_valid_accuracy(&rows), Some(0.97));
        assert!(parse("epoch,split,loss\n1,train\n").is_err());
        assert_eq!(parse("epoch,split,loss\n1,trial,0.5\n").unwrap_err().0, 2);
    }
}
