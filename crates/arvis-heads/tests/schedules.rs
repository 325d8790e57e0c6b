//! DiSA step schedules, the respaced cosine DDPM schedule and the flow time grids against their
//! closed forms and the values checked in the reference code.

mod common;

use arvis_heads::schedule::{cosine_betas, space_timesteps};
use arvis_heads::{RespacedSchedule, StepAnnealing, StepSchedule, TimeGrid};
use common::{TestResult, cosine_alphas_cumprod};

/// DiSA's linear schedule `T(k) = L + ⌊(K−1−k)/(K−1)·(U−L)⌋`, in exact rationals, for every
/// iteration of many (K, U, L), including DiSA's MAR setting (64, 50, 5).
#[test]
fn linear_schedule_is_the_closed_form() -> TestResult {
    for (k_total, u, l) in [
        (64, 50, 5),
        (256, 100, 5),
        (4, 25, 15),
        (5, 50, 15),
        (2, 9, 3),
        (7, 7, 7),
    ] {
        let s = StepAnnealing::new(StepSchedule::Linear, u, l)?;
        let steps = s.all_steps(k_total)?;
        for (k, &got) in steps.iter().enumerate() {
            // floor of a rational with a positive denominator, as f64 only where exact.
            let num = (k_total - 1 - k) * (u - l);
            let want = l + num / (k_total - 1);
            assert_eq!(got, want, "K {k_total} U {u} L {l} k {k}");
            // FlowAR's form ⌊(U−L)(K_s−k)/K_s + L⌋ with K_s = K − 1 agrees.
            let flowar = ((u - l) as f64 * (k_total - 1 - k) as f64 / (k_total - 1) as f64
                + l as f64)
                .floor() as usize;
            assert_eq!(got, flowar);
        }
        assert_eq!(steps[0], u);
        assert_eq!(steps[k_total - 1], l);
        assert!(steps.windows(2).all(|w| w[1] <= w[0]), "non-increasing");
    }
    Ok(())
}

#[test]
fn cosine_two_stage_and_constant_schedules() -> TestResult {
    let (u, l, k_total) = (50usize, 5usize, 9usize);
    let cos = StepAnnealing::new(StepSchedule::Cosine, u, l)?.all_steps(k_total)?;
    let two = StepAnnealing::new(StepSchedule::TwoStage, u, l)?.all_steps(k_total)?;
    let con = StepAnnealing::new(StepSchedule::Constant, u, l)?.all_steps(k_total)?;
    for k in 0..k_total {
        let c = (std::f64::consts::PI * k as f64 / (k_total - 1) as f64).cos();
        assert_eq!(
            cos[k],
            l + ((1.0 + c) / 2.0 * (u - l) as f64).floor() as usize
        );
        let first_half = (k as f64) < (k_total as f64 - 1.0) / 2.0;
        assert_eq!(two[k], if first_half { u } else { l }, "k {k}");
        assert_eq!(con[k], l);
    }
    // Half a cosine: the midpoint is halfway, the ends are U and L.
    assert_eq!((cos[0], cos[4], cos[8]), (50, 27, 5));
    assert_eq!(two, [50, 50, 50, 50, 5, 5, 5, 5, 5]);
    // An even K: iteration (K−1)/2 = 1.5 splits 0,1 | 2,3.
    let two4 = StepAnnealing::new(StepSchedule::TwoStage, u, l)?.all_steps(4)?;
    assert_eq!(two4, [50, 50, 5, 5]);
    Ok(())
}

#[test]
fn schedule_edge_cases_and_errors() -> TestResult {
    // One iteration: U (the first iteration's count) except for the constant schedule.
    for (s, want) in [
        (StepSchedule::Linear, 20),
        (StepSchedule::Cosine, 20),
        (StepSchedule::TwoStage, 20),
        (StepSchedule::Constant, 4),
    ] {
        assert_eq!(StepAnnealing::new(s, 20, 4)?.steps(0, 1)?, want);
    }
    assert!(StepAnnealing::new(StepSchedule::Linear, 4, 5).is_err());
    assert!(StepAnnealing::new(StepSchedule::Linear, 4, 0).is_err());
    let s = StepAnnealing::new(StepSchedule::Linear, 10, 2)?;
    let err = s.steps(3, 3).expect_err("k out of range");
    assert!(err.to_string().contains("iteration 3 of 3"), "{err}");
    Ok(())
}

/// MAR's `"100"` respacing: the map the reference prints (round-half-even of the accumulated
/// stride 999/99), and the kept steps carry the base process's ᾱ exactly.
#[test]
fn respacing_keeps_the_reference_timesteps_and_alpha_bar() -> TestResult {
    let s = RespacedSchedule::cosine(100)?;
    let map = s.timestep_map();
    assert_eq!(map.len(), 100);
    assert_eq!(
        &map[..12],
        &[0, 10, 20, 30, 40, 50, 61, 71, 81, 91, 101, 111]
    );
    assert_eq!(&map[95..], &[959, 969, 979, 989, 999]);
    let base = cosine_alphas_cumprod();
    for (i, &t) in map.iter().enumerate() {
        let rel = (s.alphas_cumprod()[i] - base[t]).abs() / base[t];
        assert!(
            rel < 1e-9,
            "step {i} (t = {t}): {} vs {}",
            s.alphas_cumprod()[i],
            base[t]
        );
    }
    // The last respaced beta: 1 − ᾱ(999)/ᾱ(989) ≈ 0.99999 (ᾱ(999) is β-capped at 0.999).
    let last = s.betas()[99];
    assert!((last - 0.99999).abs() < 5e-6, "{last}");
    // The learned range's low end at step 0 borrows step 1's posterior variance.
    let plv = s.posterior_log_variance_clipped();
    assert_eq!(plv[0], plv[1]);
    // Every step of the 1000-step schedule is kept when asked for 1000.
    let full = RespacedSchedule::cosine(1000)?;
    assert!(full.timestep_map().iter().copied().eq(0..1000));
    Ok(())
}

#[test]
fn cosine_betas_are_the_definition() {
    let f = |t: f64| {
        ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    };
    let b = cosine_betas(1000);
    for (i, &beta) in b.iter().enumerate() {
        let want = (1.0 - f((i + 1) as f64 / 1000.0) / f(i as f64 / 1000.0)).min(0.999);
        assert_eq!(beta, want, "{i}");
    }
    assert_eq!(b[999], 0.999);
}

/// `space_timesteps` with several sections (the reference's docstring example: 300 steps as
/// 10, 15, 20) and its errors.
#[test]
fn sectioned_respacing() -> TestResult {
    let s = space_timesteps(300, &[10, 15, 20])?;
    assert_eq!(s.len(), 45);
    assert!(s[..10].iter().all(|&t| t < 100));
    assert!(s[10..25].iter().all(|&t| (100..200).contains(&t)));
    assert!(s[25..].iter().all(|&t| (200..300).contains(&t)));
    assert_eq!(
        (s[0], s[9], s[10], s[24], s[25], s[44]),
        (0, 99, 100, 199, 200, 299)
    );
    // 99/9 = 11 exactly: 0, 11, …, 99.
    assert!(s[..10].iter().enumerate().all(|(i, &t)| t == 11 * i));
    assert!(space_timesteps(10, &[11]).is_err());
    assert!(space_timesteps(10, &[]).is_err());
    assert!(RespacedSchedule::cosine(0).is_err());
    assert!(RespacedSchedule::cosine(1001).is_err());
    // One step: the schedule exists (the reference's cannot sample; here step 0 adds no noise).
    let one = RespacedSchedule::cosine(1)?;
    assert_eq!(one.timestep_map(), &[0]);
    Ok(())
}

/// FlowAR's grids: 25 steps is a two-piece grid of 24 Euler steps, whose truncated integer
/// times are the ones the reference feeds its timestep embedder; 50 is uniform.
#[test]
fn flowar_time_grids() -> TestResult {
    let g = TimeGrid::flowar(25)?;
    assert_eq!(g.steps(), 24);
    let ints: Vec<i64> = g.times()[..g.steps()]
        .iter()
        .map(|&t| ((t as f32) * 1000.0) as i64)
        .collect();
    assert_eq!(
        &ints[..14],
        &[
            1000, 936, 872, 809, 745, 681, 618, 554, 490, 427, 363, 300, 250, 229
        ]
    );
    assert_eq!(ints[23], 20);
    assert_eq!(*g.times().last().ok_or("empty grid")?, 0.0);
    let u = TimeGrid::flowar(50)?;
    assert_eq!(u, TimeGrid::uniform(50)?);
    assert_eq!(u.steps(), 50);
    // torch.linspace's two-sided evaluation: both ends exact.
    let l = TimeGrid::linspace(1.0, 0.3, 12);
    assert_eq!((l[0], l[11]), (1.0, 0.3));
    assert!(TimeGrid::new(vec![1.0, 1.0, 0.0]).is_err());
    assert!(TimeGrid::new(vec![0.5]).is_err());
    Ok(())
}
