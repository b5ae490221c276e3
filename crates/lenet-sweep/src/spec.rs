//! The sweep file: a base run config and the axes to vary, expanded into trials.
//!
//! ```toml
//! base = "../configs/lenet5.toml"   # the base run config, relative to this file
//! seeds = 2                         # each point trained with training.seed, seed + 1, …
//! seed = 0                          # draws of [random] (default 0)
//!
//! [set]                             # changed on top of the base, for every trial
//! training.epochs = 1
//!
//! [grid]                            # every combination (keys sorted, the last fastest)
//! "training.optimizer.lr" = [1e-3, 3e-3]
//! "training.batch_size" = [32, 64]
//!
//! [random]                          # `count` draws, crossed with the grid
//! count = 4
//! "data.augment.rotation" = { uniform = [0.0, 15.0] }
//! "training.optimizer.weight_decay" = { log_uniform = [1e-5, 1e-3] }
//! "model.layers.0.filters" = { int = [4, 8] }
//! "model.activation" = { choice = ["relu", "tanh"] }
//! ```
//!
//! Keys are dotted paths into the run config, like `lenet train`'s overrides (quoted, or as
//! nested tables). Every trial's config is resolved and validated before anything is written; an
//! error names the sweep file, the axis and the trial.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lenet_train::RunConfig;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use toml::Value;

/// Why a sweep file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid sweep.
    #[error("{path}: {message}")]
    Invalid {
        /// The sweep file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// How one random axis is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Draw {
    /// Uniform in `[low, high]`.
    Uniform(f64, f64),
    /// Log-uniform in `[low, high]` (both positive).
    LogUniform(f64, f64),
    /// A uniform integer in `[low, high]`.
    Int(i64, i64),
    /// One of the values.
    Choice(Vec<Value>),
}

/// One swept key.
#[derive(Debug, Clone, PartialEq)]
pub enum Axis {
    /// Every value in turn.
    Grid {
        /// The dotted key.
        key: String,
        /// Its values.
        values: Vec<Value>,
    },
    /// `count` random draws.
    Random {
        /// The dotted key.
        key: String,
        /// How values are drawn.
        draw: Draw,
    },
}

impl Axis {
    /// The dotted key.
    pub fn key(&self) -> &str {
        match self {
            Axis::Grid { key, .. } | Axis::Random { key, .. } => key,
        }
    }

    /// Whether its values are best shown on a log scale.
    pub fn log_scale(&self) -> bool {
        match self {
            Axis::Random {
                draw: Draw::LogUniform(..),
                ..
            } => true,
            Axis::Grid { values, .. } => {
                let v: Vec<f64> = values.iter().filter_map(number).collect();
                v.len() == values.len()
                    && v.iter().all(|&x| x > 0.0)
                    && v.iter().cloned().fold(f64::MIN, f64::max)
                        / v.iter().cloned().fold(f64::MAX, f64::min)
                        >= 10.0
            }
            _ => false,
        }
    }
}

/// A value as a number, if it is one.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// A parsed sweep file.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep file.
    pub path: PathBuf,
    /// Its name (the `name` key, else the file's stem).
    pub name: String,
    /// The base config file, if any.
    pub base: Option<PathBuf>,
    /// The base config with `[set]` applied, as a TOML table.
    pub base_table: toml::Table,
    /// The axes, grid ones first, in file order.
    pub axes: Vec<Axis>,
    /// Random draws (0 when there is no `[random]`).
    pub random_count: usize,
    /// Seeds per point.
    pub seeds: usize,
    /// The seed of the random draws.
    pub seed: u64,
}

/// One trial: its index, the swept values and its complete run config (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Index, 0-based (what `--trial` and `SLURM_ARRAY_TASK_ID` name).
    pub index: usize,
    /// Its directory's name under `trials/`.
    pub id: String,
    /// The swept keys and their values (as TOML text), in axis order.
    pub values: Vec<(String, String)>,
    /// `training.seed`.
    pub seed: u64,
    /// The point's number: trials that differ only by seed share it.
    pub point: usize,
}

/// A dotted path's tables flattened: `{a = {b = [1, 2]}}` → `("a.b", [1, 2])`, stopping at
/// values for which `leaf` says so.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    leaf: &dyn Fn(&Value) -> bool,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) if !leaf(v) => out.extend(flatten(&key, t, leaf)),
            _ => out.push((key, v.clone())),
        }
    }
    out
}

/// Tables merged key by key; other values replace.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Sets the dotted `key` of `table` to `value`.
fn set(table: &mut toml::Table, key: &str, value: Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{key:?} is not a dotted key"));
    }
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(toml::Table::new()));
        node = match entry {
            Value::Table(t) => t,
            // `model.layers.0.filters`: an index into an array of tables.
            Value::Array(a) => {
                return set_in_array(a, &parts, part, key, value);
            }
            _ => return Err(format!("{key}: {part} is not a table")),
        };
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// The rest of a dotted key that runs into an array: `layers.0.filters`.
fn set_in_array(
    array: &mut [Value],
    parts: &[&str],
    at: &str,
    key: &str,
    value: Value,
) -> Result<(), String> {
    let position = parts
        .iter()
        .position(|p| p == &at)
        .ok_or_else(|| key.to_string())?;
    let rest = &parts[position + 1..];
    let index: usize = rest
        .first()
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| format!("{key}: {at} is a list; name an element by its index ({at}.0…)"))?;
    let len = array.len();
    let element = array
        .get_mut(index)
        .ok_or_else(|| format!("{key}: {at} has {len} elements, there is no {index}"))?;
    let tail = rest[1..].join(".");
    match element {
        Value::Table(t) if !tail.is_empty() => set(t, &tail, value),
        _ if tail.is_empty() => {
            *element = value;
            Ok(())
        }
        _ => Err(format!("{key}: {at}.{index} is not a table")),
    }
}

fn is_draw(v: &Value) -> bool {
    matches!(v, Value::Table(t) if t.len() == 1
        && t.keys().all(|k| matches!(k.as_str(), "uniform" | "log_uniform" | "int" | "choice")))
}

fn pair(v: &Value) -> Option<(f64, f64)> {
    let a = v.as_array()?;
    match a.as_slice() {
        [x, y] => Some((number(x)?, number(y)?)),
        _ => None,
    }
}

fn parse_draw(key: &str, v: &Value) -> Result<Draw, String> {
    let bad = |what: &str| format!("random.{key}: {what}");
    let t = v.as_table().ok_or_else(|| {
        bad("expected { uniform = [low, high] }, { log_uniform = [low, high] }, { int = [low, high] } or { choice = [...] }")
    })?;
    let (kind, spec) = t.iter().next().ok_or_else(|| bad("empty"))?;
    let ordered = |(a, b): (f64, f64)| {
        if a.is_finite() && b.is_finite() && a <= b {
            Ok((a, b))
        } else {
            Err(bad("expected [low, high] with low <= high"))
        }
    };
    match kind.as_str() {
        "uniform" => {
            let (a, b) = ordered(pair(spec).ok_or_else(|| bad("uniform = [low, high]"))?)?;
            Ok(Draw::Uniform(a, b))
        }
        "log_uniform" => {
            let (a, b) = ordered(pair(spec).ok_or_else(|| bad("log_uniform = [low, high]"))?)?;
            if a <= 0.0 {
                return Err(bad("log_uniform needs positive bounds"));
            }
            Ok(Draw::LogUniform(a, b))
        }
        "int" => {
            let (a, b) = ordered(pair(spec).ok_or_else(|| bad("int = [low, high]"))?)?;
            if a.fract() != 0.0 || b.fract() != 0.0 {
                return Err(bad("int = [low, high] takes integers"));
            }
            Ok(Draw::Int(a as i64, b as i64))
        }
        "choice" => {
            let values = spec
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| bad("choice = [a non-empty list]"))?;
            Ok(Draw::Choice(values.clone()))
        }
        other => Err(bad(&format!("unknown draw {other:?}"))),
    }
}

impl Draw {
    fn sample(&self, rng: &mut impl Rng) -> Value {
        match self {
            Draw::Uniform(a, b) => Value::Float(round(a + (b - a) * rng.random::<f64>())),
            Draw::LogUniform(a, b) => {
                let (la, lb) = (a.ln(), b.ln());
                Value::Float(round((la + (lb - la) * rng.random::<f64>()).exp()))
            }
            Draw::Int(a, b) => Value::Integer(rng.random_range(*a..=*b)),
            Draw::Choice(values) => values[rng.random_range(0..values.len())].clone(),
        }
    }
}

/// Six significant digits: values that read well in tables and configs.
fn round(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}

impl Sweep {
    /// Reads and checks a sweep file (not yet the trials: see [`Sweep::trials`]).
    pub fn load(path: &Path) -> Result<Sweep, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Sweep::parse(&text, path)
    }

    /// Parses sweep text; `path` names it in errors and anchors the base config's path.
    pub fn parse(text: &str, path: &Path) -> Result<Sweep, SpecError> {
        let invalid = |message: String| SpecError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let known = ["name", "base", "seeds", "seed", "set", "grid", "random"];
        if let Some(k) = table.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown key {k:?} (expected one of: {})",
                known.join(", ")
            )));
        }
        let name = match table.remove("name") {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(_) => return Err(invalid("name: expected a non-empty string".into())),
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into()),
        };
        let count = |key: &str, v: Option<Value>, default: i64| -> Result<i64, SpecError> {
            match v {
                None => Ok(default),
                Some(Value::Integer(n)) if n >= 0 => Ok(n),
                Some(other) => Err(invalid(format!(
                    "{key}: expected a whole number, found {other}"
                ))),
            }
        };
        let seeds = count("seeds", table.remove("seeds"), 1)?;
        if seeds == 0 {
            return Err(invalid("seeds: at least 1".into()));
        }
        let seed = count("seed", table.remove("seed"), 0)? as u64;
        let base = match table.remove("base") {
            None => None,
            Some(Value::String(s)) => Some(path.parent().unwrap_or_else(|| Path::new(".")).join(s)),
            Some(_) => return Err(invalid("base: expected the path of a run config".into())),
        };
        let mut base_table = match &base {
            None => toml::Table::new(),
            Some(b) => {
                let text = std::fs::read_to_string(b)
                    .map_err(|e| invalid(format!("base: {}: {e}", b.display())))?;
                toml::from_str(&text).map_err(|e| invalid(format!("base: {}: {e}", b.display())))?
            }
        };
        match table.remove("set") {
            None => {}
            Some(Value::Table(t)) => {
                // Dotted keys written quoted ("training.epochs" = 1) as well as nested.
                let (dotted, nested): (toml::Table, toml::Table) =
                    t.into_iter().partition(|(k, _)| k.contains('.'));
                merge(&mut base_table, nested);
                for (k, v) in dotted {
                    set(&mut base_table, &k, v).map_err(|e| invalid(format!("set: {e}")))?;
                }
            }
            Some(_) => return Err(invalid("set: expected a table".into())),
        }
        let mut axes = Vec::new();
        match table.remove("grid") {
            None => {}
            Some(Value::Table(t)) => {
                for (key, v) in flatten("", &t, &|_| false) {
                    match v {
                        Value::Array(values) if !values.is_empty() => {
                            axes.push(Axis::Grid { key, values })
                        }
                        other => {
                            return Err(invalid(format!(
                                "grid.{key}: expected a non-empty list of values, found {other}"
                            )))
                        }
                    }
                }
            }
            Some(_) => return Err(invalid("grid: expected a table".into())),
        }
        let mut random_count = 0;
        match table.remove("random") {
            None => {}
            Some(Value::Table(mut t)) => {
                random_count = match t.remove("count") {
                    Some(Value::Integer(n)) if n >= 1 => n as usize,
                    _ => {
                        return Err(invalid(
                            "random.count: how many draws (a whole number, at least 1)".into(),
                        ))
                    }
                };
                let draws = flatten("", &t, &is_draw);
                if draws.is_empty() {
                    return Err(invalid("random: no key to draw".into()));
                }
                for (key, v) in draws {
                    let draw = parse_draw(&key, &v).map_err(invalid)?;
                    axes.push(Axis::Random { key, draw });
                }
            }
            Some(_) => return Err(invalid("random: expected a table".into())),
        }
        let mut keys: Vec<&str> = axes.iter().map(Axis::key).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!("{} is swept twice", w[0])));
        }
        if seeds > 1 && keys.contains(&"training.seed") {
            return Err(invalid(
                "training.seed is swept and seeds > 1: choose one way to vary the seed".into(),
            ));
        }
        Ok(Sweep {
            path: path.to_path_buf(),
            name,
            base,
            base_table,
            axes,
            random_count,
            seeds: seeds as usize,
            seed,
        })
    }

    /// Every trial with its checked run config: grid points × random draws × seeds, in that
    /// nesting (the seeds of one point are neighbours).
    pub fn trials(&self) -> Result<Vec<(Trial, RunConfig, String)>, SpecError> {
        let invalid = |message: String| SpecError::Invalid {
            path: self.path.clone(),
            message,
        };
        // Grid points: the cartesian product, the last axis changing fastest.
        let mut points: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for axis in &self.axes {
            if let Axis::Grid { key, values } = axis {
                points = points
                    .into_iter()
                    .flat_map(|p| {
                        values.iter().map(move |v| {
                            let mut q = p.clone();
                            q.push((key.clone(), v.clone()));
                            q
                        })
                    })
                    .collect();
            }
        }
        if self.random_count > 0 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
            let draws: Vec<Vec<(String, Value)>> = (0..self.random_count)
                .map(|_| {
                    self.axes
                        .iter()
                        .filter_map(|a| match a {
                            Axis::Random { key, draw } => {
                                Some((key.clone(), draw.sample(&mut rng)))
                            }
                            Axis::Grid { .. } => None,
                        })
                        .collect()
                })
                .collect();
            points = points
                .into_iter()
                .flat_map(|p| {
                    draws.iter().map(move |d| {
                        let mut q = p.clone();
                        q.extend(d.iter().cloned());
                        q
                    })
                })
                .collect();
        }
        let total = points.len() * self.seeds;
        let width = (total.max(2) - 1).to_string().len().max(3);
        let mut trials = Vec::with_capacity(total);
        for (point, values) in points.iter().enumerate() {
            for s in 0..self.seeds {
                let index = trials.len();
                let id = format!("t{index:0width$}");
                let mut table = self.base_table.clone();
                for (key, v) in values {
                    set(&mut table, key, v.clone())
                        .map_err(|e| invalid(format!("trial {id}: {e}")))?;
                }
                let seed = match values.iter().find(|(k, _)| k == "training.seed") {
                    Some((_, v)) => v.as_integer().unwrap_or(0).max(0) as u64,
                    // The point's own seed (the base's, or the default), then the next ones.
                    None => {
                        let text = toml::to_string(&table)
                            .map_err(|e| invalid(format!("trial {id}: {e}")))?;
                        let config = RunConfig::parse(&text, &format!("trial {id}"), &[])
                            .map_err(|e| invalid(e.to_string()))?;
                        config.training.seed + s as u64
                    }
                };
                set(&mut table, "training.seed", Value::Integer(seed as i64))
                    .map_err(|e| invalid(format!("trial {id}: {e}")))?;
                let text =
                    toml::to_string(&table).map_err(|e| invalid(format!("trial {id}: {e}")))?;
                let described = values
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let origin = if described.is_empty() {
                    format!("trial {id}")
                } else {
                    format!("trial {id} ({described})")
                };
                let config =
                    RunConfig::parse(&text, &origin, &[]).map_err(|e| invalid(e.to_string()))?;
                trials.push((
                    Trial {
                        index,
                        id,
                        values: values
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect(),
                        seed,
                        point,
                    },
                    config,
                    text,
                ));
            }
        }
        Ok(trials)
    }

    /// The swept keys, in axis order.
    pub fn keys(&self) -> Vec<String> {
        self.axes.iter().map(|a| a.key().to_string()).collect()
    }
}

/// The swept values of `trials` by key (for the report's pictures).
pub fn values_by_key(trials: &[Trial]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in trials {
        for (k, v) in &t.values {
            out.entry(k.clone()).or_default().push(v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(text: &str) -> Result<Sweep, SpecError> {
        Sweep::parse(text, Path::new("test-sweep.toml"))
    }

    const BASE: &str = "[set]\nmodel.preset = \"lenet5\"\ntraining.epochs = 1\n";

    #[test]
    fn a_grid_with_seeds_expands_into_every_combination() {
        let s = sweep(&format!(
            "seeds = 2\n{BASE}[grid]\n\"training.optimizer.lr\" = [1e-3, 3e-3]\n\
             training.batch_size = [32, 64]\n"
        ))
        .unwrap();
        let trials = s.trials().unwrap();
        assert_eq!(trials.len(), 8);
        let t = |i: usize| &trials[i].0;
        assert_eq!(t(0).id, "t000");
        assert_eq!(t(7).id, "t007");
        // Seeds are neighbours; the last axis changes fastest.
        assert_eq!((t(0).seed, t(1).seed), (42, 43));
        assert_eq!(t(0).point, t(1).point);
        // Keys in alphabetical order (TOML tables are sorted), the last changing fastest.
        assert_eq!(
            t(2).values,
            [
                ("training.batch_size".to_string(), "32".to_string()),
                ("training.optimizer.lr".to_string(), "0.003".to_string())
            ]
        );
        assert_eq!(trials[2].1.training.optimizer.lr, 3e-3);
        assert_eq!(trials[4].1.training.batch_size, 64);
        assert_eq!(trials[4].1.training.optimizer.lr, 1e-3);
        assert_eq!(trials[5].1.training.seed, 43);
        assert_eq!(trials[5].1.training.epochs, 1);
    }

    #[test]
    fn random_draws_are_seeded_and_within_their_ranges() {
        let text = format!(
            "seed = 5\n{BASE}[random]\ncount = 20\n\
             \"training.optimizer.lr\" = {{ log_uniform = [1e-4, 1e-2] }}\n\
             \"training.batch_size\" = {{ choice = [16, 32] }}\n\
             \"training.optimizer.weight_decay\" = {{ uniform = [0.0, 0.01] }}\n"
        );
        let a = sweep(&text).unwrap().trials().unwrap();
        let b = sweep(&text).unwrap().trials().unwrap();
        assert_eq!(a.len(), 20);
        for ((ta, ca, _), (tb, _, _)) in a.iter().zip(&b) {
            assert_eq!(ta.values, tb.values, "same seed, same draws");
            let lr = ca.training.optimizer.lr;
            assert!((1e-4..=1e-2).contains(&lr), "{lr}");
            assert!([16, 32].contains(&ca.training.batch_size));
            assert!((0.0..=0.01).contains(&ca.training.optimizer.weight_decay));
        }
        let lrs: Vec<f64> = a.iter().map(|t| t.1.training.optimizer.lr).collect();
        assert!(lrs.iter().any(|&x| x < 1e-3) && lrs.iter().any(|&x| x > 1e-3));
        let other = sweep(&text.replace("seed = 5", "seed = 6"))
            .unwrap()
            .trials()
            .unwrap();
        assert_ne!(a[0].0.values, other[0].0.values);
    }

    #[test]
    fn an_index_reaches_into_the_list_of_feature_blocks() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/custom-cnn.toml");
        let s = Sweep::parse(
            &format!(
                "base = {:?}\n[grid]\n\"model.features.1.out_channels\" = [16, 32]\n",
                base.display().to_string()
            ),
            Path::new("sweep.toml"),
        )
        .unwrap();
        let trials = s.trials().unwrap();
        let params: Vec<usize> = trials
            .iter()
            .map(|(_, c, _)| c.model.plan().unwrap().parameters())
            .collect();
        // custom-cnn: the second block's 3×3 convolution from 8 channels, its output flattened
        // (7·7 per channel) into 64 hidden units.
        let per_channel = 8 * 9 + 1 + 7 * 7 * 64;
        assert_eq!(params[1] - params[0], 16 * per_channel);
        let bad = Sweep::parse(
            &format!(
                "base = {:?}\n[grid]\n\"model.features.5.out_channels\" = [16]\n",
                base.display().to_string()
            ),
            Path::new("sweep.toml"),
        )
        .unwrap()
        .trials()
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("features has 2 elements, there is no 5"),
            "{bad}"
        );
    }

    #[test]
    fn the_example_sweeps_expand() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/sweeps");
        let count = |name: &str| {
            Sweep::load(&dir.join(name))
                .unwrap()
                .trials()
                .unwrap()
                .len()
        };
        assert_eq!(count("lenet5-lr-batch.toml"), 3 * 2 * 3);
        assert_eq!(count("lenet5-random.toml"), 8);
    }

    #[test]
    fn bad_sweeps_name_the_key_at_fault() {
        for (text, needle) in [
            ("[grid]\nx = 1\n", "grid.x: expected a non-empty list"),
            ("[grid]\nx = []\n", "grid.x: expected a non-empty list"),
            (
                &format!("{BASE}[grid]\n\"training.optimzer.lr\" = [1e-3]\n") as &str,
                "optimzer",
            ),
            (
                &format!("{BASE}[grid]\n\"training.batch_size\" = [\"big\"]\n"),
                "training.batch_size",
            ),
            (
                &format!("{BASE}[grid]\n\"training.batch_size\" = [0]\n"),
                "training.batch_size",
            ),
            ("[random]\ncount = 2\nx = { gauss = [0, 1] }\n", "random.x"),
            (
                "[random]\ncount = 2\nx = { log_uniform = [0, 1] }\n",
                "positive",
            ),
            ("[random]\nx = { uniform = [0, 1] }\n", "random.count"),
            ("seeds = 0\n", "seeds"),
            ("grdi = 1\n", "unknown key \"grdi\""),
            ("base = \"no/such.toml\"\n", "base: no/such.toml"),
            (
                "[grid]\na = [1]\n[random]\ncount = 1\na = { uniform = [0, 1] }\n",
                "a is swept twice",
            ),
        ] {
            let err = match sweep(text).and_then(|s| s.trials().map(|_| ())) {
                Ok(()) => panic!("{text}: expected an error"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("test-sweep.toml"), "{err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
