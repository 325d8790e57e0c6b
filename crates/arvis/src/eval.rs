//! Scoring a class-conditional MNIST generator with the [`MnistClassifier`].
//!
//! [`evaluate`] generates `samples_per_class` images of each digit (labels `i mod 10`, in
//! batches), runs the classifier on them ([`to_classifier_input`]) and reports ([`EvalReport`]):
//! - **class fidelity**: the share of samples the classifier assigns to the class they were
//!   generated for, overall and per class, and the mean softmax probability of that class;
//! - **Fréchet distance** ([`frechet_distance`]) between the Gaussian fitted to the generated
//!   samples' 128-d features and the one of the 10k real MNIST test images ("FID" with the MNIST
//!   classifier instead of Inception); the reference point is the same distance for the 10k real
//!   validation images, which no generator can be expected to beat. With few samples the
//!   estimate is biased upwards (the covariance of fewer than 128 samples is rank-deficient):
//!   compare numbers at the same sample count;
//! - **nearest-neighbour diversity** ([`Diversity`], defined in [`nn_diversity`]): the mean
//!   distance of each generated sample to its nearest other generated sample, against the same
//!   on as many real test images, and the share of near-duplicates;
//! - with a token sampler ([`EvalSettings::sampler`], raster models): what the sampler cost
//!   ([`SamplerCost`]: target forwards, accepted lengths, sampling time) and the NLL of the
//!   samples under the target — the quality proxy the speculative samplers are compared on.

mod cost;
mod diversity;
mod frechet;

use std::fmt;

use arvis_core::{SeededRng, Tensor};

pub use cost::SamplerCost;
pub use diversity::{Diversity, NEAR_DUPLICATE_FACTOR, nn_distances, nn_diversity};
pub use frechet::{
    FeatureStats, SymmetricEigen, frechet_distance, sqrt_psd, symmetric_eigen, trace_sqrt_product,
};

use crate::classifier::{INPUT_SIDE, MnistClassifier, NUM_CLASSES, RealFd, to_classifier_input};
use crate::error::{Error, Result};
use crate::pipeline::{Pipeline, Request};
use crate::sampler::SamplerOptions;
use arvis_models::llamagen::LlamaGen;

/// Share of samples classified as the class they were generated for.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassFidelity {
    /// Over all samples.
    pub overall: f64,
    /// Per requested class (`NaN` for a class with no sample).
    pub per_class: Vec<f64>,
    /// Samples per requested class.
    pub counts: Vec<usize>,
    /// `confusion[requested][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// [`ClassFidelity`] of `predictions` against the requested `labels` (both `< num_classes`).
pub fn class_fidelity(
    labels: &[u32],
    predictions: &[u32],
    num_classes: usize,
) -> Result<ClassFidelity> {
    if labels.len() != predictions.len() || labels.is_empty() {
        return Err(frechet::arg_err(
            "class_fidelity",
            format!(
                "{} labels for {} predictions",
                labels.len(),
                predictions.len()
            ),
        ));
    }
    let mut confusion = vec![vec![0usize; num_classes]; num_classes];
    for (&l, &p) in labels.iter().zip(predictions) {
        let (l, p) = (l as usize, p as usize);
        if l >= num_classes || p >= num_classes {
            return Err(frechet::arg_err(
                "class_fidelity",
                format!("class {l} or {p} >= {num_classes}"),
            ));
        }
        confusion[l][p] += 1;
    }
    let counts: Vec<usize> = confusion.iter().map(|row| row.iter().sum()).collect();
    let per_class = (0..num_classes)
        .map(|c| confusion[c][c] as f64 / counts[c] as f64)
        .collect();
    let correct: usize = (0..num_classes).map(|c| confusion[c][c]).sum();
    Ok(ClassFidelity {
        overall: correct as f64 / labels.len() as f64,
        per_class,
        counts,
        confusion,
    })
}

/// What [`evaluate_with`] generates.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalSettings {
    /// Images per digit (the total is 10× this).
    pub samples_per_class: usize,
    /// Seed of the whole evaluation; batch `b` generates with a seed drawn from
    /// `SeededRng::new(seed).fork(b)`.
    pub seed: u64,
    /// Classifier-free guidance strength.
    pub cfg: f32,
    /// Top-k filter (`0` = off).
    pub top_k: usize,
    /// Top-p mass (`1` = off).
    pub top_p: f32,
    /// Images per generation call.
    pub batch_size: usize,
    /// Sampling temperature ([`Request::temperature`]).
    pub temperature: f32,
    /// A token sampler ([`Pipeline::sample_tokens`], raster models): the report then carries
    /// its [`SamplerCost`] and the samples' NLL. `None`: [`Pipeline::generate`].
    pub sampler: Option<SamplerOptions>,
}

impl EvalSettings {
    /// `samples_per_class`, `seed` and `cfg` with [`Request::new`]'s top-k / top-p and batches
    /// of 50.
    pub fn new(samples_per_class: usize, seed: u64, cfg: f32) -> Self {
        let r = Request::new(Vec::new(), seed);
        EvalSettings {
            samples_per_class,
            seed,
            cfg,
            top_k: r.top_k,
            top_p: r.top_p,
            batch_size: 50,
            temperature: 1.0,
            sampler: None,
        }
    }
}

impl EvalSettings {
    /// `samples_per_class` and `seed` with `pipeline`'s recommended sampling
    /// ([`Pipeline::default_sampling`]) and batches of 50.
    pub fn for_pipeline(pipeline: &Pipeline, samples_per_class: usize, seed: u64) -> Self {
        let s = pipeline.default_sampling();
        EvalSettings {
            samples_per_class,
            seed,
            cfg: s.cfg,
            top_k: s.top_k,
            top_p: s.top_p,
            batch_size: 50,
            temperature: 1.0,
            sampler: None,
        }
    }
}

/// Progress of an evaluation, reported after each generated batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalProgress {
    /// Images generated and classified so far.
    pub done: usize,
    /// Images in total.
    pub total: usize,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    /// The settings the samples were generated with.
    pub settings: EvalSettings,
    /// Number of generated samples.
    pub samples: usize,
    /// Class fidelity of the generated samples.
    pub fidelity: ClassFidelity,
    /// Mean classifier probability of the requested class.
    pub mean_confidence: f64,
    /// Fréchet distance of the generated features to the real test features.
    pub fd_generated_test: f64,
    /// Fréchet distance of the real validation features to the test features (the floor).
    pub fd_valid_test: f64,
    /// Real validation images' FD at (the stored sample count closest to) [`Self::samples`]:
    /// the fair comparison, since FD grows as the sample shrinks.
    pub fd_real_same_n: Option<RealFd>,
    /// Nearest-neighbour diversity.
    pub diversity: Diversity,
    /// The classifier's own test accuracy, if its file records it.
    pub classifier_test_accuracy: Option<f64>,
    /// What the token sampler cost, when [`EvalSettings::sampler`] was set.
    pub sampler_cost: Option<SamplerCost>,
}

impl EvalReport {
    /// The report as JSON (for `--json` output and scripts).
    pub fn to_json(&self) -> serde_json::Value {
        let d = &self.diversity;
        // serde_json writes non-finite numbers (a class without samples: NaN) as null.
        serde_json::json!({
            "samples": self.samples,
            "samples_per_class": self.settings.samples_per_class,
            "seed": self.settings.seed,
            "cfg": f32_json(self.settings.cfg),
            "top_k": self.settings.top_k,
            "top_p": f32_json(self.settings.top_p),
            "class_fidelity": self.fidelity.overall,
            "class_fidelity_per_class": self.fidelity.per_class,
            "confusion": self.fidelity.confusion,
            "mean_confidence": self.mean_confidence,
            "fd_generated_test": self.fd_generated_test,
            "fd_valid_test": self.fd_valid_test,
            "fd_real_same_n": self.fd_real_same_n.map(|r| serde_json::json!({
                "n": r.n, "mean": r.mean, "sd": r.sd, "subsets": r.subsets,
            })),
            "diversity": {
                "group_size": d.group_size,
                "groups": d.groups,
                "nn_generated": d.nn_generated,
                "nn_real": d.nn_real,
                "ratio": d.ratio,
                "duplicate_threshold": d.duplicate_threshold,
                "near_duplicate_fraction": d.near_duplicate_fraction,
                "real_near_duplicate_fraction": d.real_near_duplicate_fraction,
            },
            "classifier_test_accuracy": self.classifier_test_accuracy,
            "temperature": f32_json(self.settings.temperature),
            "sampler_cost": self.sampler_cost.as_ref().map(SamplerCost::to_json),
        })
    }
}

/// An `f32` setting as the decimal the user typed (`0.95`, not `0.949999988079071`).
fn f32_json(v: f32) -> serde_json::Value {
    v.to_string()
        .parse::<f64>()
        .map_or(serde_json::Value::Null, serde_json::Value::from)
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        let d = &self.diversity;
        writeln!(
            f,
            "samples:          {} ({} per class, seed {}, cfg {}, top-k {}, top-p {})",
            self.samples, s.samples_per_class, s.seed, s.cfg, s.top_k, s.top_p
        )?;
        writeln!(
            f,
            "class fidelity:   {:.2}% (mean confidence {:.3})",
            100.0 * self.fidelity.overall,
            self.mean_confidence
        )?;
        let per: Vec<String> = self
            .fidelity
            .per_class
            .iter()
            .enumerate()
            .map(|(c, v)| format!("{c}:{:.0}%", 100.0 * v))
            .collect();
        writeln!(f, "  per class:      {}", per.join(" "))?;
        writeln!(
            f,
            "Fréchet distance: {:.3} to the MNIST test features",
            self.fd_generated_test
        )?;
        if let Some(r) = self.fd_real_same_n {
            writeln!(
                f,
                "  real images:    {:.3} ± {:.3} at N = {} ({} disjoint validation subsets); {:.3} for all 10k",
                r.mean, r.sd, r.n, r.subsets, self.fd_valid_test
            )?;
        } else {
            writeln!(
                f,
                "  real images:    {:.3} for all 10k validation images (FD is higher at small N)",
                self.fd_valid_test
            )?;
        }
        writeln!(
            f,
            "NN diversity:     {:.3} vs {:.3} on real images (ratio {:.3}, groups of {})\n\
             \x20 near-duplicates: {:.2}% (real images: {:.2}%)",
            d.nn_generated,
            d.nn_real,
            d.ratio,
            d.group_size,
            100.0 * d.near_duplicate_fraction,
            100.0 * d.real_near_duplicate_fraction
        )?;
        if let Some(acc) = self.classifier_test_accuracy {
            write!(f, "classifier:       {:.2}% test accuracy", 100.0 * acc)?;
        }
        if let Some(c) = &self.sampler_cost {
            write!(f, "\n{c}")?;
        }
        Ok(())
    }
}

/// Generates `samples_per_class` images per digit with `pipeline` and scores them with
/// `classifier` ([`EvalSettings::new`] for the rest). `progress` is called after each batch.
pub fn evaluate(
    pipeline: &Pipeline,
    classifier: &MnistClassifier,
    samples_per_class: usize,
    seed: u64,
    cfg: f32,
    progress: &mut dyn FnMut(EvalProgress),
) -> Result<EvalReport> {
    let settings = EvalSettings::new(samples_per_class, seed, cfg);
    evaluate_with(pipeline, classifier, &settings, progress)
}

/// [`evaluate`] with every setting explicit.
///
/// Errors: [`Error::Usage`] if the model is not a 10-class model with images of 28×28 to 32×32
/// pixels or `samples_per_class` / `batch_size` is 0; generation errors as they come.
pub fn evaluate_with(
    pipeline: &Pipeline,
    classifier: &MnistClassifier,
    settings: &EvalSettings,
    progress: &mut dyn FnMut(EvalProgress),
) -> Result<EvalReport> {
    evaluate_sampled(pipeline, classifier, settings, None, progress)
}

/// [`evaluate_with`] with the draft model of [`crate::SamplerKind::Spec`] (when
/// `settings.sampler` asks for it).
///
/// Errors: those of [`evaluate_with`] and of [`Pipeline::sample_tokens`].
pub fn evaluate_sampled(
    pipeline: &Pipeline,
    classifier: &MnistClassifier,
    settings: &EvalSettings,
    draft: Option<&LlamaGen>,
    progress: &mut dyn FnMut(EvalProgress),
) -> Result<EvalReport> {
    if pipeline.num_classes() != NUM_CLASSES {
        return Err(Error::Usage(format!(
            "eval scores MNIST digit models (10 classes); {} has {} classes",
            pipeline.source().display(),
            pipeline.num_classes()
        )));
    }
    if settings.samples_per_class == 0 || settings.batch_size == 0 {
        return Err(Error::Usage(
            "--samples and the batch size must be at least 1".into(),
        ));
    }
    let total = settings.samples_per_class * NUM_CLASSES;
    let labels: Vec<u32> = (0..total).map(|i| (i % NUM_CLASSES) as u32).collect();
    let root = SeededRng::new(settings.seed);
    let (mut logits, mut features) = (Vec::new(), Vec::new());
    let mut cost = settings.sampler.map(SamplerCost::new);
    for (b, chunk) in labels.chunks(settings.batch_size).enumerate() {
        let req = Request {
            labels: chunk.to_vec(),
            seed: root.fork(b as u64).next_u64(),
            cfg: settings.cfg,
            top_k: settings.top_k,
            top_p: settings.top_p,
            temperature: settings.temperature,
        };
        let images = match (&mut cost, &settings.sampler) {
            (Some(cost), Some(options)) => {
                let t0 = std::time::Instant::now();
                let sampled = pipeline.sample_tokens(&req, options, draft)?;
                let seconds = t0.elapsed().as_secs_f64();
                let nll = pipeline.token_nll(&req, &sampled.tokens)?;
                cost.add(&sampled.stats, seconds, &nll);
                pipeline.decode_tokens(&sampled.tokens)?
            }
            _ => pipeline.generate(&req, &mut |_| {})?,
        };
        let s = images.shape();
        let mnist_sized = |d: usize| (INPUT_SIDE..=INPUT_SIDE + 4).contains(&d);
        if s.len() != 4 || !mnist_sized(s[2]) || !mnist_sized(s[3]) {
            return Err(Error::Usage(format!(
                "eval needs MNIST-sized images (28x28 to 32x32); {} makes {:?}",
                pipeline.source().display(),
                s
            )));
        }
        let input = to_classifier_input(&images)?;
        let (lo, fe) = classifier.forward(&input)?;
        logits.push(lo);
        features.push(fe);
        progress(EvalProgress {
            done: (b * settings.batch_size + chunk.len()).min(total),
            total,
        });
    }
    let cat = |v: &[Tensor]| Tensor::concat(&v.iter().collect::<Vec<_>>(), 0);
    let mut report = score(classifier, &labels, &cat(&logits)?, &cat(&features)?)?;
    report.settings = settings.clone();
    report.sampler_cost = cost;
    Ok(report)
}

/// Scores already classified samples: `logits` `[N, 10]` and `features` `[N, 128]` of images
/// generated for `labels` (`N ≥ 2`). The returned report's `settings` are
/// `EvalSettings::new(N / 10, 0, 0.0)`; [`evaluate_with`] fills in the real ones.
pub fn score(
    classifier: &MnistClassifier,
    labels: &[u32],
    logits: &Tensor,
    features: &Tensor,
) -> Result<EvalReport> {
    let n = labels.len();
    if logits.shape() != [n, NUM_CLASSES] || features.rank() != 2 || features.shape()[0] != n {
        return Err(frechet::shape_err(
            "score",
            format!("logits [{n}, 10], features [{n}, D]"),
            logits.shape(),
        ));
    }
    let predictions = logits.argmax(-1)?;
    let fidelity = class_fidelity(labels, &predictions, NUM_CLASSES)?;
    let probs = logits.softmax(-1)?.to_vec();
    let mean_confidence = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| f64::from(probs[i * NUM_CLASSES + l as usize]))
        .sum::<f64>()
        / n as f64;
    let generated = FeatureStats::from_features(features)?;
    Ok(EvalReport {
        settings: EvalSettings::new(n / NUM_CLASSES, 0, 0.0),
        samples: n,
        fidelity,
        mean_confidence,
        fd_generated_test: generated.frechet_distance(classifier.test_stats())?,
        fd_valid_test: classifier
            .valid_stats()
            .frechet_distance(classifier.test_stats())?,
        fd_real_same_n: classifier.real_fd_near(n),
        diversity: nn_diversity(features, classifier.reference_features())?,
        classifier_test_accuracy: classifier.test_accuracy(),
        sampler_cost: None,
    })
}
