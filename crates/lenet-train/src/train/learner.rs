//! What learns: the optimizer and the learning-rate schedule of `[training]`, and one training
//! step for loops written by hand (`lenet bench`, the examples) that is the step burn-train's
//! loop takes.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::optim::lr_scheduler::step::StepLrSchedulerConfig;
use burn::optim::lr_scheduler::LrSchedulerConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::train::{ClassificationOutput, TrainStep};

use crate::classifier::Classifier;
use crate::config::{OptimizerConfig, OptimizerKind, ScheduleConfig, ScheduleKind};
use crate::data::ImageBatch;

/// The optimizer of `cfg`.
pub fn optimizer(cfg: &OptimizerConfig, clip: Option<f32>) -> ModuleOptimizer {
    let clip = clip.map(GradientClippingConfig::Norm);
    let decay = (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
    match cfg.kind {
        // SDLM's per-parameter step sizes divide the gradients in the training step
        // (`train::sdlm`); the step itself is plain SGD's.
        OptimizerKind::Sdlm => SgdConfig::new()
            .with_weight_decay(decay)
            .with_gradient_clipping(clip)
            .init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((cfg.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(cfg.momentum)
                    .with_dampening(0.0)
                    .with_nesterov(cfg.nesterov)
            }))
            .with_weight_decay(decay)
            .with_gradient_clipping(clip)
            .init(),
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(cfg.beta2)
            .with_epsilon(cfg.epsilon)
            .with_weight_decay(decay)
            .with_grad_clipping(clip)
            .init(),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(cfg.beta2)
            .with_epsilon(cfg.epsilon)
            .with_weight_decay(cfg.weight_decay as f32)
            .with_grad_clipping(clip)
            .init(),
    }
}

/// The learning-rate schedule of `cfg`, per step, for `epochs` epochs of `steps` steps.
pub fn schedule(
    cfg: &ScheduleConfig,
    lr: f64,
    steps: usize,
    epochs: usize,
) -> Result<ModuleLrScheduler, String> {
    let total = (steps * epochs).max(1);
    if cfg.kind == ScheduleKind::Table {
        // One constant rate per epoch, switching after every `steps` steps.
        let used = cfg.rates.len().min(epochs.max(1));
        let schedulers = cfg.rates[..used]
            .iter()
            .map(|&r| LrSchedulerConfig::Constant(r))
            .collect();
        let milestones = (1..used).map(|e| e * steps.max(1)).collect();
        return SequentialLrSchedulerConfig::new(schedulers, milestones).init();
    }
    let (warm, main) = match cfg.kind {
        ScheduleKind::OneCycle => {
            let warm = (total * 3 / 10).max(1);
            (
                warm,
                LrSchedulerConfig::Cosine(
                    CosineAnnealingLrSchedulerConfig::new(lr, (total - warm).max(1))
                        .with_min_lr(cfg.min_lr),
                ),
            )
        }
        kind => {
            let warm = cfg.warmup_epochs * steps;
            let rest = (total - warm.min(total)).max(1);
            let main = match kind {
                ScheduleKind::Step => LrSchedulerConfig::Step(
                    StepLrSchedulerConfig::new(lr, (cfg.step_epochs.unwrap_or(1) * steps).max(1))
                        .with_gamma(cfg.gamma.unwrap_or(0.1)),
                ),
                ScheduleKind::Cosine => LrSchedulerConfig::Cosine(
                    CosineAnnealingLrSchedulerConfig::new(lr, rest).with_min_lr(cfg.min_lr),
                ),
                _ => LrSchedulerConfig::Constant(lr),
            };
            (warm, main)
        }
    };
    if warm == 0 {
        return SequentialLrSchedulerConfig::new(vec![main], vec![]).init();
    }
    let start = if cfg.kind == ScheduleKind::OneCycle {
        lr / 25.0
    } else {
        lr / warm as f64
    };
    let warmup = LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(start, lr, warm));
    SequentialLrSchedulerConfig::new(vec![warmup, main], vec![warm]).init()
}

/// One training step, as burn-train's loop takes it: the classifier's [`TrainStep`] (forward,
/// cross-entropy, backward), then the optimizer at learning rate `lr`.
pub fn step(
    model: Classifier,
    optim: &mut ModuleOptimizer,
    lr: f64,
    batch: ImageBatch,
) -> (Classifier, ClassificationOutput) {
    let out = TrainStep::step(&model, batch);
    (optim.step(lr, model, out.grads), out.item)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kind = "table"`: each epoch's steps take that epoch's rate; epochs past the table keep
    /// its last rate; `optimizer.lr` plays no part.
    #[test]
    fn a_rate_table_gives_each_epoch_its_rate() {
        let cfg = ScheduleConfig {
            kind: ScheduleKind::Table,
            rates: vec![5e-4, 2e-4, 1e-5],
            ..ScheduleConfig::default()
        };
        let steps = 3;
        let mut lr = schedule(&cfg, 0.1, steps, 5).unwrap();
        let got: Vec<f64> = (0..5 * steps).map(|_| lr.step().base()).collect();
        let expected: Vec<f64> = [5e-4, 2e-4, 1e-5, 1e-5, 1e-5]
            .iter()
            .flat_map(|&r| [r; 3])
            .collect();
        assert_eq!(got, expected);
        // A table longer than the run uses its first epochs.
        let mut lr = schedule(&cfg, 0.1, steps, 1).unwrap();
        assert_eq!(
            (0..steps).map(|_| lr.step().base()).collect::<Vec<_>>(),
            [5e-4; 3]
        );
    }
}
