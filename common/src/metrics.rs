//! Small helpers both binaries' metric modules use: create-and-register in one call, and the
//! text exposition. The metrics themselves are declared in each binary's `metrics` module.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Registers a counter.
///
/// # Errors
/// When the name is already registered (a programming error caught by tests).
pub fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let metric = IntCounter::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a labelled counter.
///
/// # Errors
/// When the name is already registered.
pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a gauge.
///
/// # Errors
/// When the name is already registered.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let metric = IntGauge::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a labelled gauge.
///
/// # Errors
/// When the name is already registered.
pub fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a histogram with the given buckets.
///
/// # Errors
/// When the name is already registered.
pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> prometheus::Result<Histogram> {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a labelled histogram with the given buckets (seconds).
///
/// # Errors
/// When the name is already registered.
pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let metric = HistogramVec::new(opts, labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// The Prometheus text exposition of everything in `registry`.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding into a Vec only fails on a malformed metric family, which we never build.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    out
}

/// The values one metric label may take, as an enum: registration creates every value's
/// series at zero (rules and dashboards see them, and `rate()` works, before the first
/// event), and a call site cannot misspell one. Declare one with [`metric_labels!`].
pub trait Label: Copy + Send + Sync + 'static {
    /// Every value, in the order they are registered.
    const ALL: &'static [Self];
    /// The label's text.
    fn as_str(self) -> &'static str;
}

/// Declares a [`Label`] enum: `metric_labels! { /// doc  pub enum Name { Variant => "text", … } }`.
#[macro_export]
macro_rules! metric_labels {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $crate::metrics::Label for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }
    };
}

/// Creates the series of every value of `L` in `vec`, at zero.
fn create_every<L: Label, B: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<B>,
) {
    for value in L::ALL {
        vec.with_label_values(&[value.as_str()]);
    }
}

/// A counter family over one label whose values are `L`.
#[derive(Debug, Clone)]
pub struct Counters<L> {
    vec: IntCounterVec,
    label: std::marker::PhantomData<fn(L)>,
}

impl<L: Label> Counters<L> {
    /// Registers the family (label `label_name`) with every value's series at zero.
    ///
    /// # Errors
    /// When the name is already registered.
    pub fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        label_name: &str,
    ) -> prometheus::Result<Self> {
        let vec = counter_vec(registry, name, help, &[label_name])?;
        create_every::<L, _>(&vec);
        Ok(Self {
            vec,
            label: std::marker::PhantomData,
        })
    }

    pub fn inc(&self, value: L) {
        self.vec.with_label_values(&[value.as_str()]).inc();
    }

    pub fn inc_by(&self, value: L, n: u64) {
        self.vec.with_label_values(&[value.as_str()]).inc_by(n);
    }

    pub fn get(&self, value: L) -> u64 {
        self.vec.with_label_values(&[value.as_str()]).get()
    }
}

/// A gauge family over one label whose values are `L`.
#[derive(Debug, Clone)]
pub struct Gauges<L> {
    vec: IntGaugeVec,
    label: std::marker::PhantomData<fn(L)>,
}

impl<L: Label> Gauges<L> {
    /// Registers the family (label `label_name`) with every value's series at zero.
    ///
    /// # Errors
    /// When the name is already registered.
    pub fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        label_name: &str,
    ) -> prometheus::Result<Self> {
        let vec = gauge_vec(registry, name, help, &[label_name])?;
        create_every::<L, _>(&vec);
        Ok(Self {
            vec,
            label: std::marker::PhantomData,
        })
    }

    pub fn set(&self, value: L, n: i64) {
        self.vec.with_label_values(&[value.as_str()]).set(n);
    }

    pub fn inc(&self, value: L) {
        self.vec.with_label_values(&[value.as_str()]).inc();
    }

    pub fn get(&self, value: L) -> i64 {
        self.vec.with_label_values(&[value.as_str()]).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    metric_labels! {
        /// A test label.
        enum Colour { Red => "red", Green => "green" }
    }

    #[test]
    fn every_value_is_registered_at_zero_and_counted_by_name() {
        let registry = Registry::new();
        let counters = Counters::<Colour>::register(&registry, "test_total", "Test.", "colour")
            .expect("registered");
        let gauges = Gauges::<Colour>::register(&registry, "test_now", "Test.", "colour")
            .expect("registered");
        let text = String::from_utf8(render(&registry)).expect("utf-8");
        for line in [
            r#"test_total{colour="red"} 0"#,
            r#"test_total{colour="green"} 0"#,
            r#"test_now{colour="red"} 0"#,
            r#"test_now{colour="green"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        counters.inc(Colour::Green);
        counters.inc_by(Colour::Green, 2);
        gauges.set(Colour::Red, 7);
        assert_eq!(counters.get(Colour::Green), 3);
        assert_eq!(counters.get(Colour::Red), 0);
        assert_eq!(gauges.get(Colour::Red), 7);
        let text = String::from_utf8(render(&registry)).expect("utf-8");
        assert!(text.contains(r#"test_total{colour="green"} 3"#), "{text}");
        assert_eq!(Colour::ALL, &[Colour::Red, Colour::Green]);
    }
}
