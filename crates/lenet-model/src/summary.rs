//! A per-layer summary of a network: output shapes, parameter counts and the output-size
//! formula evaluated for every convolution and pooling layer.

use serde::Serialize;

use crate::config::{OutputKind, PoolKind};
use crate::plan::{output_len, Plan};

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSummary {
    /// Path of the layer, e.g. `features.0.conv`.
    pub name: String,
    /// What the layer is, e.g. `conv2d 1→6 k5×5 s1 p2`.
    pub kind: String,
    /// Output shape of one example, `[channels, size...]` or `[features]`.
    pub output: Vec<usize>,
    /// Trainable parameters.
    pub parameters: usize,
    /// The output-size formula, evaluated (conv and pool layers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// A convolution's connection table: for each filter, the input channels it sees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<Vec<usize>>>,
}

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The network's name.
    pub model: String,
    /// Input shape of one example.
    pub input: Vec<usize>,
    /// The layers in order.
    pub layers: Vec<LayerSummary>,
    /// Total trainable parameters.
    pub total_parameters: usize,
}

fn dims_str(v: &[usize]) -> String {
    v.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// `(I - K + 2·P)/S + 1 = O` per dimension; one formula when all dimensions agree.
fn formula(
    input: &[usize],
    kernel: &[usize],
    stride: &[usize],
    pad: &[(usize, usize)],
    dilation: &[usize],
) -> String {
    let names: &[&str] = match input.len() {
        1 => &["L"],
        2 => &["H", "W"],
        _ => &["D", "H", "W"],
    };
    let one = |d: usize| {
        let k = if dilation[d] == 1 {
            kernel[d].to_string()
        } else {
            format!("({}·{}+1)", dilation[d], kernel[d] - 1)
        };
        let p = if pad[d].0 == pad[d].1 {
            format!("2·{}", pad[d].0)
        } else {
            format!("{}+{}", pad[d].0, pad[d].1)
        };
        let effective = dilation[d] * (kernel[d] - 1) + 1;
        let numerator = input[d] + pad[d].0 + pad[d].1 - effective;
        let out = output_len(input[d], kernel[d], stride[d], pad[d], dilation[d]).unwrap_or(0);
        if numerator.is_multiple_of(stride[d]) {
            format!("({} - {} + {})/{} + 1 = {}", input[d], k, p, stride[d], out)
        } else {
            format!(
                "⌊({} - {} + {})/{}⌋ + 1 = {}",
                input[d], k, p, stride[d], out
            )
        }
    };
    let all: Vec<String> = (0..input.len()).map(one).collect();
    if all.iter().all(|f| f == &all[0]) {
        all[0].clone()
    } else {
        all.iter()
            .zip(names)
            .map(|(f, n)| format!("{n}: {f}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn with_channels(c: usize, size: &[usize]) -> Vec<usize> {
    std::iter::once(c).chain(size.iter().copied()).collect()
}

impl Plan {
    /// The per-layer summary of this network, named `model`.
    pub fn summary(&self, model: &str) -> Summary {
        let n = self.spatial_dims();
        let mut layers = vec![LayerSummary {
            name: "input".into(),
            kind: format!("{}D input", n),
            output: self.input_shape(),
            parameters: 0,
            formula: None,
            connections: None,
        }];
        for (i, b) in self.blocks.iter().enumerate() {
            let c = &b.conv;
            let pads: Vec<String> = c
                .padding
                .iter()
                .map(|(a, z)| {
                    if a == z {
                        a.to_string()
                    } else {
                        format!("{a}+{z}")
                    }
                })
                .collect();
            let mut kind = format!(
                "conv{}d {}→{} k{} s{} p{}",
                n,
                c.in_channels,
                c.out_channels,
                dims_str(&c.kernel),
                dims_str(&c.stride),
                pads.join("×")
            );
            if c.dilation.iter().any(|&d| d != 1) {
                kind.push_str(&format!(" d{}", dims_str(&c.dilation)));
            }
            if c.groups != 1 {
                kind.push_str(&format!(" g{}", c.groups));
            }
            if c.connections.is_some() {
                let all = c.out_channels * c.in_channels;
                kind.push_str(&format!(" table {}/{all}", c.kernels()));
            }
            layers.push(LayerSummary {
                name: format!("features.{i}.conv"),
                kind,
                output: with_channels(c.out_channels, &c.output),
                parameters: c.parameters(),
                formula: Some(formula(
                    &c.input,
                    &c.kernel,
                    &c.stride,
                    &c.padding,
                    &c.dilation,
                )),
                connections: c.connections.clone(),
            });
            if b.batch_norm {
                layers.push(LayerSummary {
                    name: format!("features.{i}.norm"),
                    kind: "batch_norm".into(),
                    output: with_channels(c.out_channels, &c.output),
                    parameters: 2 * c.out_channels,
                    formula: None,
                    connections: None,
                });
            }
            layers.push(LayerSummary {
                name: format!("features.{i}.{}", b.activation.name()),
                kind: b.activation.name().into(),
                output: with_channels(c.out_channels, &c.output),
                parameters: 0,
                formula: None,
                connections: None,
            });
            if let Some(p) = &b.pool {
                let pads: Vec<(usize, usize)> = p.padding.iter().map(|&x| (x, x)).collect();
                let (kind, then) = match p.kind {
                    PoolKind::Max => ("max_pool", String::new()),
                    PoolKind::Avg => ("avg_pool", String::new()),
                    PoolKind::Subsample => (
                        "subsample",
                        format!(" (sum × coef + bias, {})", b.activation.name()),
                    ),
                };
                layers.push(LayerSummary {
                    name: format!("features.{i}.pool"),
                    kind: format!(
                        "{kind}{n}d k{} s{} p{}{then}",
                        dims_str(&p.kernel),
                        dims_str(&p.stride),
                        dims_str(&p.padding)
                    ),
                    output: with_channels(c.out_channels, &p.output),
                    parameters: p.parameters(c.out_channels),
                    formula: Some(formula(&p.input, &p.kernel, &p.stride, &pads, &vec![1; n])),
                    connections: None,
                });
            }
            if b.dropout > 0.0 {
                layers.push(LayerSummary {
                    name: format!("features.{i}.dropout"),
                    kind: format!("dropout p={}", b.dropout),
                    output: b.output_shape(),
                    parameters: 0,
                    formula: None,
                    connections: None,
                });
            }
        }
        layers.push(LayerSummary {
            name: "flatten".into(),
            kind: "flatten".into(),
            output: vec![self.flat_features],
            parameters: 0,
            formula: None,
            connections: None,
        });
        for (i, &(a, z)) in self.hidden.iter().enumerate() {
            layers.push(LayerSummary {
                name: format!("hidden.{i}"),
                kind: format!("linear {a}→{z}"),
                output: vec![z],
                parameters: a * z + z,
                formula: None,
                connections: None,
            });
            layers.push(LayerSummary {
                name: format!("hidden.{i}.{}", self.hidden_activation.name()),
                kind: self.hidden_activation.name().into(),
                output: vec![z],
                parameters: 0,
                formula: None,
                connections: None,
            });
            if self.hidden_dropout > 0.0 {
                layers.push(LayerSummary {
                    name: format!("hidden.{i}.dropout"),
                    kind: format!("dropout p={}", self.hidden_dropout),
                    output: vec![z],
                    parameters: 0,
                    formula: None,
                    connections: None,
                });
            }
        }
        let (a, z) = *self
            .dense_layers()
            .last()
            .unwrap_or(&(self.flat_features, self.num_classes));
        let (kind, parameters) = match self.output {
            OutputKind::Linear => (format!("linear {a}→{z} (logits)"), a * z + z),
            OutputKind::Rbf => (
                format!(
                    "rbf {a}→{z} (fixed {}×{} digit bitmaps: {} weights, not trained)",
                    crate::rbf::WIDTH,
                    crate::rbf::HEIGHT,
                    a * z
                ),
                0,
            ),
        };
        layers.push(LayerSummary {
            name: "output".into(),
            kind,
            output: vec![z],
            parameters,
            formula: None,
            connections: None,
        });
        Summary {
            model: model.to_string(),
            input: self.input_shape(),
            total_parameters: layers.iter().map(|l| l.parameters).sum(),
            layers,
        }
    }
}

/// A connection table as a grid, as Table I of LeCun et al. (1998): a row per input channel, a
/// column per filter, `X` where the filter sees the channel.
pub fn connection_grid(layer: &str, table: &[Vec<usize>]) -> String {
    let inputs = table.iter().flatten().max().map_or(0, |&m| m + 1);
    let width = table
        .len()
        .saturating_sub(1)
        .to_string()
        .len()
        .max(inputs.to_string().len());
    let cell = |s: &str| format!("{s:>width$} ");
    let mut out = format!(
        "\n{layer} connections (X: the filter in the column sees the input channel in the row)\n"
    );
    out.push_str(&cell(""));
    for o in 0..table.len() {
        out.push_str(&cell(&o.to_string()));
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for i in 0..inputs {
        out.push_str(&cell(&i.to_string()));
        for inputs_of in table {
            out.push_str(&cell(if inputs_of.contains(&i) { "X" } else { "·" }));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// `61706` → `61,706`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Summary {
    /// An aligned text table with a totals line.
    pub fn to_table(&self) -> String {
        let header = ["layer", "type", "output", "params", "output size"];
        let rows: Vec<[String; 5]> = self
            .layers
            .iter()
            .map(|l| {
                [
                    l.name.clone(),
                    l.kind.clone(),
                    format!(
                        "[{}]",
                        l.output
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    thousands(l.parameters),
                    l.formula.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let mut width = header.map(|h| h.chars().count());
        for r in &rows {
            for (w, cell) in width.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
                let pad = w - cell.chars().count();
                if i == 3 {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    if i + 1 < cells.len() {
                        s.push_str(&" ".repeat(pad));
                    }
                }
                if i + 1 < cells.len() {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        let total_width: usize = width.iter().sum::<usize>() + 2 * (width.len() - 1);
        let mut out = format!("Model: {}\n", self.model);
        out.push_str(&line(&header.map(String::from)));
        out.push('\n');
        out.push_str(&"─".repeat(total_width));
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out.push_str(&"─".repeat(total_width));
        out.push('\n');
        out.push_str(&format!(
            "Total parameters: {}\n",
            thousands(self.total_parameters)
        ));
        for l in &self.layers {
            if let Some(table) = &l.connections {
                out.push_str(&connection_grid(&l.name, table));
            }
        }
        out
    }

    /// The summary as pretty JSON.
    pub fn to_json(&self) -> Result<String, crate::ModelError> {
        serde_json::to_string_pretty(self).map_err(|e| {
            crate::ModelError::Internal(format!("cannot write the summary as JSON: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::lenet5;

    #[test]
    fn lenet5_summary_has_formulas_and_total() {
        let s = lenet5().plan().unwrap().summary("lenet5");
        assert_eq!(s.total_parameters, 61_706);
        let conv1 = s
            .layers
            .iter()
            .find(|l| l.name == "features.0.conv")
            .unwrap();
        assert_eq!(conv1.formula.as_deref(), Some("(28 - 5 + 2·2)/1 + 1 = 28"));
        assert_eq!(conv1.parameters, 156);
        assert_eq!(conv1.output, vec![6, 28, 28]);
        let pool2 = s
            .layers
            .iter()
            .find(|l| l.name == "features.1.pool")
            .unwrap();
        assert_eq!(pool2.formula.as_deref(), Some("(10 - 2 + 2·0)/2 + 1 = 5"));
        let table = s.to_table();
        assert!(table.contains("Total parameters: 61,706"), "{table}");
        assert!(table.contains("[16, 5, 5]"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&s.to_json().unwrap()).unwrap();
        assert_eq!(json["total_parameters"], 61_706);
        assert_eq!(json["layers"][1]["name"], "features.0.conv");
    }

    #[test]
    fn inexact_division_shows_the_floor_and_per_dimension_formulas() {
        let f = formula(&[7, 8], &[3, 3], &[2, 2], &[(0, 0), (0, 0)], &[1, 1]);
        assert_eq!(
            f,
            "H: (7 - 3 + 2·0)/2 + 1 = 3; W: ⌊(8 - 3 + 2·0)/2⌋ + 1 = 3"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(61_706), "61,706");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
