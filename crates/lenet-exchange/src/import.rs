//! Weights from other tools: a PyTorch `state_dict` (`.pt`, `.pth`) or a safetensors file,
//! its keys mapped to a lenet network's parameters.
//!
//! Mapping, in order:
//! 1. each `--map REGEX=REPLACEMENT` rule rewrites every key it matches;
//! 2. a key that is a lenet parameter's name ([`crate::layout`]) is that parameter;
//! 3. the other keys are grouped by layer (the key without its last part) and each group gets a
//!    kind from its members (`running_mean`: batch norm; `coefficient`: subsampling; a rank 3-5
//!    `weight`: convolution; a rank 2 `weight`: dense layer); the groups of one kind, in natural
//!    key order (`fc2` before `fc10`), go to lenet's layers of that kind in layer order.
//!
//! Every required parameter must be given once with its shape and every key must be used, or the
//! import fails naming them all: a partial model is never made.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::store::{ModuleStore, PytorchStore};
use burn::tensor::{DType, TensorData};
use regex::Regex;

use crate::error::ExchangeError;
use crate::layout::{LayerKind, Parameter};

/// One tensor of a weights file, converted to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTensor {
    /// Its key in the file.
    pub key: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its type in the file (`F32`, `F16`, `BF16`, `F64`, `I64`, …).
    pub dtype: String,
    /// Its values as `f32`.
    pub values: Vec<f32>,
}

/// The formats weights are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// PyTorch's `torch.save` (zip) file.
    Pytorch,
    /// A safetensors file.
    Safetensors,
}

impl SourceFormat {
    /// The format of `path` by its extension: `.pt`, `.pth`, `.bin` or `.safetensors`.
    pub fn of(path: &Path) -> Result<SourceFormat, ExchangeError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("pt" | "pth" | "bin") => Ok(SourceFormat::Pytorch),
            Some("safetensors") => Ok(SourceFormat::Safetensors),
            _ => Err(ExchangeError::Usage(format!(
                "{}: unknown weights format (expected .pt, .pth or .safetensors)",
                path.display()
            ))),
        }
    }
}

/// The keys under which checkpoints usually nest their `state_dict`, tried in this order when
/// the file is not a plain `state_dict`.
pub const NESTED_KEYS: [&str; 4] = ["state_dict", "model_state_dict", "model", "net"];

/// The tensors of a weights file.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// The tensors, converted to `f32`.
    pub tensors: Vec<SourceTensor>,
    /// The key of the checkpoint dictionary they were under, if not the top level.
    pub nested_under: Option<String>,
    /// Tensors of the file left aside: beside the nested `state_dict` (optimizer state, …).
    pub left_aside: Vec<String>,
}

/// The tensors of the weights file `path`, with `f16`, `bf16`, `f64` and integer values
/// converted to `f32`: a safetensors file, or a PyTorch file holding a `state_dict` (at the top
/// level, or nested under `key`; without `key`, a checkpoint dictionary whose tensors are partly
/// under one of [`NESTED_KEYS`] gives those, the others left aside).
pub fn read_weights(path: &Path, key: Option<&str>) -> Result<Weights, ExchangeError> {
    let read_err = |message: String| ExchangeError::Read {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(read_err("no such file".into()));
    }
    let plain = |tensors| Weights {
        tensors,
        nested_under: None,
        left_aside: Vec::new(),
    };
    match SourceFormat::of(path)? {
        SourceFormat::Safetensors => {
            if key.is_some() {
                return Err(ExchangeError::Usage(
                    "--key: safetensors files hold one flat set of tensors".into(),
                ));
            }
            read_safetensors(path).map(plain).map_err(read_err)
        }
        SourceFormat::Pytorch => match key {
            Some(k) => match read_pytorch(path, Some(k)) {
                Ok(tensors) if !tensors.is_empty() => Ok(Weights {
                    tensors,
                    nested_under: Some(k.to_string()),
                    left_aside: Vec::new(),
                }),
                Ok(_) => Err(read_err(format!("no tensors under the key {k:?}"))),
                Err(e) => Err(read_err(format!("no tensors under the key {k:?}: {e}"))),
            },
            None => {
                let all = read_pytorch(path, None).map_err(read_err)?;
                if all.is_empty() {
                    return Err(read_err("no tensors in the file".into()));
                }
                Ok(nested(all))
            }
        },
    }
}

/// A checkpoint's `state_dict`: the tensors under the first of [`NESTED_KEYS`] that holds some,
/// when others lie beside them; otherwise all of them.
fn nested(all: Vec<SourceTensor>) -> Weights {
    for k in NESTED_KEYS {
        let prefix = format!("{k}.");
        let under = all.iter().filter(|t| t.key.starts_with(&prefix)).count();
        if under > 0 {
            let (mut inside, outside): (Vec<_>, Vec<_>) =
                all.into_iter().partition(|t| t.key.starts_with(&prefix));
            for t in &mut inside {
                t.key = t.key[prefix.len()..].to_string();
            }
            return Weights {
                tensors: inside,
                nested_under: Some(k.to_string()),
                left_aside: outside.into_iter().map(|t| t.key).collect(),
            };
        }
    }
    Weights {
        tensors: all,
        nested_under: None,
        left_aside: Vec::new(),
    }
}

fn read_pytorch(path: &Path, key: Option<&str>) -> Result<Vec<SourceTensor>, String> {
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    if let Some(k) = key {
        store = store.with_top_level_key(k);
    }
    let tensors = store.get_all_tensors().map_err(|e| e.to_string())?;
    tensors
        .iter()
        .map(|(name, t)| {
            let data = burn::store::bridge::to_data(t).map_err(|e| format!("{name}: {e:?}"))?;
            source_tensor(name, data)
        })
        .collect()
}

fn read_safetensors(path: &Path) -> Result<Vec<SourceTensor>, String> {
    use safetensors::{Dtype, SafeTensors};
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        let raw = view.data();
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::F64 => DType::F64,
            Dtype::I64 => DType::I64,
            Dtype::I32 => DType::I32,
            Dtype::U8 => DType::U8,
            other => return Err(format!("{name}: unsupported dtype {other:?}")),
        };
        let data = TensorData::from_bytes_vec(raw.to_vec(), shape, dtype);
        out.push(source_tensor(&name, data)?);
    }
    Ok(out)
}

fn source_tensor(name: &str, data: TensorData) -> Result<SourceTensor, String> {
    let dtype = format!("{:?}", data.dtype()).to_uppercase();
    let shape = data.shape().to_vec();
    let values = data
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| format!("{name}: cannot convert {dtype} to f32: {e:?}"))?;
    Ok(SourceTensor {
        key: name.to_string(),
        shape,
        dtype,
        values,
    })
}

/// A `--map 'REGEX=REPLACEMENT'` rule: every match of `REGEX` in a key is replaced
/// (`$1`, `${name}` refer to groups).
#[derive(Debug, Clone)]
pub struct Rule {
    regex: Regex,
    replacement: String,
}

impl Rule {
    /// Parses `REGEX=REPLACEMENT` (split at the first `=`).
    pub fn parse(text: &str) -> Result<Rule, ExchangeError> {
        let (pattern, replacement) = text.split_once('=').ok_or_else(|| {
            ExchangeError::Usage(format!("--map {text:?}: expected REGEX=REPLACEMENT"))
        })?;
        let regex = Regex::new(pattern)
            .map_err(|e| ExchangeError::Usage(format!("--map {text:?}: {e}")))?;
        Ok(Rule {
            regex,
            replacement: replacement.to_string(),
        })
    }

    fn apply(&self, key: &str) -> String {
        self.regex
            .replace_all(key, self.replacement.as_str())
            .into_owned()
    }
}

/// How a source key was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// Its (rewritten) key is the parameter's name.
    ByName,
    /// By layer kind and order.
    ByOrder,
}

/// One row of the mapping table.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    /// The key in the file.
    pub source: String,
    /// The key after the `--map` rules, where they changed it.
    pub renamed: Option<String>,
    /// Its shape in the file.
    pub shape: Vec<usize>,
    /// Its type in the file.
    pub dtype: String,
    /// The lenet parameter it becomes.
    pub target: String,
    /// How it was matched.
    pub how: Matched,
}

/// A mapping of every source tensor onto `params`, or an error naming every missing, unused and
/// mis-shaped tensor.
pub fn map_keys(
    params: &[Parameter],
    sources: &[SourceTensor],
    rules: &[Rule],
) -> Result<Vec<MappingRow>, ExchangeError> {
    let renamed: Vec<String> = sources
        .iter()
        .map(|s| rules.iter().fold(s.key.clone(), |k, r| r.apply(&k)))
        .collect();
    let by_name: BTreeMap<&str, &Parameter> = params.iter().map(|p| (p.name.as_str(), p)).collect();
    // target name → source index
    let mut assigned: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut rest = Vec::new();
    for (i, key) in renamed.iter().enumerate() {
        match by_name.get(key.as_str()) {
            Some(p) => {
                assigned.insert(p.name.clone(), i);
                rows.push(row(sources, &renamed, i, &p.name, Matched::ByName));
            }
            None => rest.push(i),
        }
    }

    // Source groups by layer, with their kinds.
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in &rest {
        let (layer, _) = split_key(&renamed[i]);
        groups.entry(layer.to_string()).or_default().push(i);
    }
    let mut by_kind: BTreeMap<LayerKind, Vec<(String, Vec<usize>)>> = BTreeMap::new();
    let mut unused: Vec<usize> = Vec::new();
    for (layer, members) in groups {
        match group_kind(&members, sources, &renamed) {
            Some(kind) => by_kind.entry(kind).or_default().push((layer, members)),
            None => unused.extend(members),
        }
    }
    for groups in by_kind.values_mut() {
        groups.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    }

    // lenet's layers still to fill, by kind, in layer order.
    let mut targets: BTreeMap<LayerKind, Vec<(String, Vec<&Parameter>)>> = BTreeMap::new();
    for p in params {
        if assigned.contains_key(&p.name) {
            continue;
        }
        let layers = targets.entry(p.kind).or_default();
        match layers.last_mut() {
            Some((layer, ps)) if *layer == p.layer => ps.push(p),
            _ => layers.push((p.layer.clone(), vec![p])),
        }
    }
    // A layer whose parameters were partly named explicitly still takes the rest by order.
    for (kind, layers) in targets {
        let mut sources_of_kind = by_kind.remove(&kind).unwrap_or_default().into_iter();
        for (_, ps) in layers {
            let Some((_, members)) = sources_of_kind.next() else {
                problems.extend(
                    ps.iter()
                        .filter(|p| p.required)
                        .map(|p| format!("{}: missing ({:?})", p.name, p.shape)),
                );
                continue;
            };
            let mut members = members;
            for p in ps {
                let pos = members
                    .iter()
                    .position(|&i| split_key(&renamed[i]).1 == p.role);
                match pos {
                    Some(pos) => {
                        let i = members.remove(pos);
                        assigned.insert(p.name.clone(), i);
                        rows.push(row(sources, &renamed, i, &p.name, Matched::ByOrder));
                    }
                    None if p.required => {
                        problems.push(format!("{}: missing ({:?})", p.name, p.shape))
                    }
                    None => {}
                }
            }
            unused.extend(members);
        }
        for (_, members) in sources_of_kind {
            unused.extend(members);
        }
    }
    for (_, groups) in by_kind {
        for (_, members) in groups {
            unused.extend(members);
        }
    }

    // Shapes.
    for r in &rows {
        let p = by_name[r.target.as_str()];
        if r.shape != p.shape
            && !(p.role == "num_batches_tracked" && r.shape.iter().product::<usize>() == 1)
        {
            problems.push(format!(
                "{} {:?} → {}: expected {:?}",
                r.source, r.shape, p.name, p.shape
            ));
        }
    }
    unused.sort_unstable();
    for i in unused {
        problems.push(format!(
            "{} {:?}: unused (no lenet parameter takes it; see --map)",
            sources[i].key, sources[i].shape
        ));
    }
    if !problems.is_empty() {
        return Err(ExchangeError::Mapping(problems.join("\n  ")));
    }
    rows.sort_by_key(|r| params.iter().position(|p| p.name == r.target));
    Ok(rows)
}

fn row(
    sources: &[SourceTensor],
    renamed: &[String],
    i: usize,
    target: &str,
    how: Matched,
) -> MappingRow {
    let s = &sources[i];
    MappingRow {
        source: s.key.clone(),
        renamed: (renamed[i] != s.key).then(|| renamed[i].clone()),
        shape: s.shape.clone(),
        dtype: s.dtype.clone(),
        target: target.to_string(),
        how,
    }
}

/// `("features.0.conv", "weight")`; a key without a dot is its own role in layer `""`.
fn split_key(key: &str) -> (&str, &str) {
    key.rsplit_once('.').unwrap_or(("", key))
}

/// What kind of layer a group of keys is, by its members' roles and ranks.
fn group_kind(
    members: &[usize],
    sources: &[SourceTensor],
    renamed: &[String],
) -> Option<LayerKind> {
    let roles: BTreeSet<&str> = members.iter().map(|&i| split_key(&renamed[i]).1).collect();
    let weight_rank = members
        .iter()
        .find(|&&i| split_key(&renamed[i]).1 == "weight")
        .map(|&i| sources[i].shape.len());
    if roles.contains("running_mean") || roles.contains("running_var") {
        Some(LayerKind::BatchNorm)
    } else if roles.contains("coefficient") {
        Some(LayerKind::Subsample)
    } else if roles.contains("prototypes") {
        Some(LayerKind::Rbf)
    } else {
        match weight_rank {
            Some(3..=5) => Some(LayerKind::Conv),
            Some(2) => Some(LayerKind::Linear),
            _ => None,
        }
    }
}

/// Orders keys as people number layers: runs of digits compare as numbers (`fc2` < `fc10`,
/// `features.3` < `features.10`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let da = a.chars().next().is_some_and(|c| c.is_ascii_digit());
        let db = b.chars().next().is_some_and(|c| c.is_ascii_digit());
        let run = |s: &str, digits: bool| {
            s.find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(s.len())
        };
        let (na, nb) = (run(a, da), run(b, db));
        let (ra, rb) = (&a[..na], &b[..nb]);
        let ord = if da && db {
            let (ta, tb) = (ra.trim_start_matches('0'), rb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then(ta.cmp(tb))
        } else {
            ra.cmp(rb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
}

/// The mapping as a table: source key, shape and type → lenet parameter.
pub fn mapping_table(rows: &[MappingRow]) -> String {
    let src = |r: &MappingRow| match &r.renamed {
        Some(n) => format!("{} (→ {n})", r.source),
        None => r.source.clone(),
    };
    let shape = |r: &MappingRow| format!("{:?} {}", r.shape, r.dtype);
    let w0 = rows
        .iter()
        .map(|r| src(r).chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let w1 = rows
        .iter()
        .map(|r| shape(r).len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!("{:<w0$}  {:<w1$}  lenet parameter\n", "source", "shape");
    for r in rows {
        let how = match r.how {
            Matched::ByName => "by name",
            Matched::ByOrder => "by order",
        };
        out.push_str(&format!(
            "{:<w0$}  {:<w1$}  {} ({how})\n",
            src(r),
            shape(r),
            r.target
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, kind: LayerKind, shape: &[usize]) -> Parameter {
        let (layer, role) = split_key(name);
        Parameter {
            name: name.into(),
            layer: layer.into(),
            role: role.into(),
            kind,
            shape: shape.to_vec(),
            required: role != "num_batches_tracked",
        }
    }

    fn source(key: &str, shape: &[usize]) -> SourceTensor {
        SourceTensor {
            key: key.into(),
            shape: shape.to_vec(),
            dtype: "F32".into(),
            values: vec![0.0; shape.iter().product()],
        }
    }

    /// lenet's LeNet-5: two convolutions and three dense layers.
    fn lenet5() -> Vec<Parameter> {
        use LayerKind::*;
        vec![
            param("features.0.conv.weight", Conv, &[6, 1, 5, 5]),
            param("features.0.conv.bias", Conv, &[6]),
            param("features.1.conv.weight", Conv, &[16, 6, 5, 5]),
            param("features.1.conv.bias", Conv, &[16]),
            param("hidden.0.weight", Linear, &[120, 400]),
            param("hidden.0.bias", Linear, &[120]),
            param("hidden.1.weight", Linear, &[84, 120]),
            param("hidden.1.bias", Linear, &[84]),
            param("output.weight", Linear, &[10, 84]),
            param("output.bias", Linear, &[10]),
        ]
    }

    /// An `nn.Sequential` LeNet-5's keys, with the dense layers numbered past 9 so that plain
    /// string order would be wrong.
    fn sequential() -> Vec<SourceTensor> {
        vec![
            source("0.weight", &[6, 1, 5, 5]),
            source("0.bias", &[6]),
            source("3.weight", &[16, 6, 5, 5]),
            source("3.bias", &[16]),
            source("7.weight", &[120, 400]),
            source("7.bias", &[120]),
            source("9.weight", &[84, 120]),
            source("9.bias", &[84]),
            source("11.weight", &[10, 84]),
            source("11.bias", &[10]),
        ]
    }

    #[test]
    fn natural_order_numbers_layers_like_people() {
        let mut keys = vec!["fc10", "fc2", "features.10", "features.3", "a", "fc1"];
        keys.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            keys,
            ["a", "fc1", "fc2", "fc10", "features.3", "features.10"]
        );
        assert_eq!(natural_cmp("x01", "x1"), Ordering::Equal);
    }

    #[test]
    fn a_sequential_state_dict_maps_by_kind_and_order() {
        let rows = map_keys(&lenet5(), &sequential(), &[]).unwrap();
        let pairs: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.source.as_str(), r.target.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("0.weight", "features.0.conv.weight"),
                ("0.bias", "features.0.conv.bias"),
                ("3.weight", "features.1.conv.weight"),
                ("3.bias", "features.1.conv.bias"),
                ("7.weight", "hidden.0.weight"),
                ("7.bias", "hidden.0.bias"),
                ("9.weight", "hidden.1.weight"),
                ("9.bias", "hidden.1.bias"),
                ("11.weight", "output.weight"),
                ("11.bias", "output.bias"),
            ]
        );
        assert!(rows.iter().all(|r| r.how == Matched::ByOrder));
    }

    #[test]
    fn classifier_named_before_features_still_maps_by_kind() {
        // torchvision style: "classifier" sorts before "features" but holds the dense layers.
        let mut s = sequential();
        for t in &mut s {
            let (layer, role) = split_key(&t.key);
            let n: usize = layer.parse().unwrap();
            t.key = if n < 7 {
                format!("features.{n}.{role}")
            } else {
                format!("classifier.{n}.{role}")
            };
        }
        let rows = map_keys(&lenet5(), &s, &[]).unwrap();
        assert_eq!(rows[0].source, "features.0.weight");
        assert_eq!(rows[4].source, "classifier.7.weight");
        assert_eq!(rows[9].target, "output.bias");
    }

    #[test]
    fn every_problem_is_named() {
        let mut s = sequential();
        s.remove(1); // 0.bias missing
        s[3].shape = vec![120, 401]; // 7.weight mis-shaped
        s.push(source("extra.thing", &[3]));
        let err = map_keys(&lenet5(), &s, &[]).unwrap_err().to_string();
        assert!(err.contains("features.0.conv.bias: missing"), "{err}");
        assert!(
            err.contains("7.weight [120, 401] → hidden.0.weight: expected [120, 400]"),
            "{err}"
        );
        assert!(err.contains("extra.thing [3]: unused"), "{err}");
    }

    #[test]
    fn rules_rename_keys_to_lenet_names() {
        // Swap the two hidden layers by name: the rules win over the order.
        let rules = [
            Rule::parse(r"^7\.=hidden.1.").unwrap(),
            Rule::parse(r"^9\.=hidden.0.").unwrap(),
        ];
        let mut s = sequential();
        s[4].shape = vec![84, 120];
        s[6].shape = vec![120, 400];
        s[5].shape = vec![84];
        s[7].shape = vec![120];
        let rows = map_keys(&lenet5(), &s, &rules).unwrap();
        let r = rows.iter().find(|r| r.source == "9.weight").unwrap();
        assert_eq!(r.target, "hidden.0.weight");
        assert_eq!(r.renamed.as_deref(), Some("hidden.0.weight"));
        assert_eq!(r.how, Matched::ByName);
        assert!(Rule::parse("no-equals-sign").is_err());
        assert!(Rule::parse("(=x").is_err());
    }
}
