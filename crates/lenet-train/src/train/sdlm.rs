//! Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Section II-C and Appendix C):
//! before each epoch, each parameter's second derivative `h` is estimated on a few hundred
//! training images ([`ConvNet::curvature`]: Gauss-Newton, diagonal, back-propagated by Burn's
//! autodiff through a surrogate network); during the epoch, each parameter steps by
//! `lr / (μ + h)` times its gradient.
//!
//! Where it plugs in: the training step divides each gradient by `μ + h` and Burn's plain SGD
//! takes the step `lr · g` with the schedule's rate. The division cannot live in a Burn
//! [`Optimizer`](burn::optim::Optimizer): its `step` sees one tensor and its gradient but not
//! which parameter they are, and its per-parameter state is created inside the loop burn-train
//! owns, so second derivatives computed outside it (keyed by parameter id) cannot reach it. The
//! gradients the training step returns are keyed by parameter id, so the division is exact
//! there, and the update is the paper's.

use std::fmt;
use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use lenet_model::curvature::Curvature;
use lenet_model::{ConvNet, FeatureMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{ImageItem, Part};

/// The images of one epoch's estimate, from the epoch's number (1-based).
type Probe = Box<dyn Fn(usize) -> Tensor<4> + Send + Sync>;

/// SDLM's state, shared by the training steps of a session.
pub struct Sdlm {
    mu: f64,
    steps_per_epoch: usize,
    first_epoch: usize,
    probe: Probe,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    steps: usize,
    /// Per parameter, `μ + h/n` for this epoch.
    scale: Option<GradientsParams>,
}

impl fmt::Debug for Sdlm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sdlm")
            .field("mu", &self.mu)
            .field("steps_per_epoch", &self.steps_per_epoch)
            .finish_non_exhaustive()
    }
}

impl Sdlm {
    /// SDLM with damping `mu`, for epochs of `steps_per_epoch` steps of which the first in this
    /// session is `first_epoch` (1-based), the second derivatives estimated on `samples`
    /// images of `train` drawn afresh for each epoch (from `seed` and the epoch).
    pub fn new(
        mu: f64,
        steps_per_epoch: usize,
        first_epoch: usize,
        train: &Part,
        samples: usize,
        seed: u64,
        device: Device,
    ) -> Sdlm {
        let batcher = train.batcher.clone();
        let indices = train.indices.clone();
        let probe = move |epoch: usize| {
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            let chosen =
                rand::seq::index::sample(&mut rng, indices.len(), samples.min(indices.len()));
            let items: Vec<ImageItem> = chosen
                .into_iter()
                .map(|i| ImageItem::plain(indices[i]))
                .collect();
            batcher.make_batch(&items, &device).images
        };
        Sdlm::with_probe(mu, steps_per_epoch, first_epoch, Box::new(probe))
    }

    fn with_probe(mu: f64, steps_per_epoch: usize, first_epoch: usize, probe: Probe) -> Sdlm {
        Sdlm {
            mu,
            steps_per_epoch: steps_per_epoch.max(1),
            first_epoch,
            probe,
            state: Mutex::new(State::default()),
        }
    }

    /// `grads` (of `net`, this step's) divided by `μ + h`; at the first step of an epoch the
    /// second derivatives `h` are estimated again, on `net` as it is before the step.
    pub fn precondition(&self, net: &ConvNet, mut grads: GradientsParams) -> GradientsParams {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.steps % self.steps_per_epoch == 0 {
            let epoch = self.first_epoch + state.steps / self.steps_per_epoch;
            let images = (self.probe)(epoch);
            // The divisors `μ + h/n`, once per epoch rather than at every step.
            state.scale = match net.curvature(FeatureMap::D2(images)) {
                Ok(c) => {
                    let mut divisors = Divisors {
                        curvature: &c,
                        mu: self.mu,
                        out: GradientsParams::new(),
                    };
                    net.visit(&mut divisors);
                    Some(divisors.out)
                }
                Err(e) => {
                    // The config check rejects what `curvature` cannot do (batch norm).
                    eprintln!(
                        "warning: SDLM cannot estimate the second derivatives ({e}); using h = 0"
                    );
                    None
                }
            };
        }
        state.steps += 1;
        if let Some(scale) = &state.scale {
            net.visit(&mut Divide {
                grads: &mut grads,
                scale,
            });
        }
        grads
    }
}

/// Per parameter, `μ + h/n`: `h` its second derivative summed over the estimate's `n` samples.
struct Divisors<'a> {
    curvature: &'a Curvature,
    mu: f64,
    out: GradientsParams,
}

impl ModuleVisitor for Divisors<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(h) = self.curvature.sums.get::<D>(param.id) {
            let d = h
                .div_scalar(self.curvature.samples as f64)
                .add_scalar(self.mu);
            self.out.register(param.id, d);
        }
    }
}

/// Divides each parameter's gradient by its divisor.
struct Divide<'a> {
    grads: &'a mut GradientsParams,
    scale: &'a GradientsParams,
}

impl ModuleVisitor for Divide<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = self.grads.remove::<D>(param.id) else {
            return;
        };
        let g = match self.scale.get::<D>(param.id) {
            Some(d) => {
                let device = g.device();
                g / d.to_device(&device)
            }
            None => g,
        };
        self.grads.register(param.id, g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use burn::tensor::Distribution;

    fn values<const D: usize>(t: Option<Tensor<D>>) -> Vec<f32> {
        t.unwrap().to_data().try_to_vec::<f32>().unwrap()
    }

    /// Each gradient is divided by `μ + h/n` with the `h` of the epoch's images, estimated at
    /// the first step of each epoch (here 2 steps long) on that epoch's images and on the
    /// network as it is then.
    #[test]
    fn gradients_are_divided_by_mu_plus_the_epochs_second_derivatives() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let net = lenet_model::preset("lenet5-1998")
            .unwrap()
            .init(&device)
            .unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let probe_device = device.clone();
        let probe: Probe = Box::new(move |epoch| {
            log.lock().unwrap().push(epoch);
            probe_device.seed(epoch as u64);
            Tensor::random(
                [6, 1, 32, 32],
                Distribution::Uniform(-0.1, 1.175),
                &probe_device,
            )
        });
        let sdlm = Sdlm::with_probe(0.02, 2, 3, probe);
        let x = Tensor::<4>::random([4, 1, 32, 32], Distribution::Uniform(-0.1, 1.175), &device);
        let weight = net.hidden[0].weight.id;
        for step in 0..3 {
            let grads =
                GradientsParams::from_grads(net.forward_2d(x.clone()).sum().backward(), &net);
            let g = values(grads.get::<2>(weight));
            let s = values(sdlm.precondition(&net, grads).get::<2>(weight));
            // The estimate this step used: the epoch's images, on the unchanged network.
            let epoch = 3 + step / 2;
            device.seed(epoch as u64);
            let images =
                Tensor::random([6, 1, 32, 32], Distribution::Uniform(-0.1, 1.175), &device);
            let c = net.curvature(FeatureMap::D2(images)).unwrap();
            assert_eq!(c.samples, 6);
            let h = values(c.sums.get::<2>(weight));
            for ((g, s), h) in g.iter().zip(&s).zip(&h) {
                let want = g / (0.02 + h / 6.0);
                assert!(
                    (s - want).abs() <= 1e-4 * want.abs().max(1e-3),
                    "{s} vs {want}"
                );
            }
        }
        assert_eq!(*asked.lock().unwrap(), vec![3, 4]);
    }
}
