//! How both binaries declare their metrics, and the text exposition.
//!
//! A binary declares each metric once, with [`declare_metrics!`]: a field of its metrics
//! struct whose doc comment is also the metric's help text and whose name, prefixed, is the
//! metric's name. The field's type says what it is (counter, gauge, histogram, one of them by
//! labels, or a [`Counters`]/[`Gauges`] family over a [`Label`] enum) and the value after `=`
//! its labels or buckets ([`Metric::Spec`]).

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// A metric that can register itself under a name and help text.
pub trait Metric: Sized {
    /// What it needs besides the name and help: `()`, its label names, its buckets, or both.
    type Spec;

    /// Creates the metric and registers it in `registry`.
    ///
    /// # Errors
    /// When the name is already registered or invalid (a programming error caught by tests).
    fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        spec: Self::Spec,
    ) -> prometheus::Result<Self>;
}

fn registered<M>(registry: &Registry, metric: M) -> prometheus::Result<M>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// The metrics that need only a name and help.
macro_rules! plain_metric {
    ($($kind:ty),+) => {$(
        impl Metric for $kind {
            type Spec = ();
            fn register(
                registry: &Registry,
                name: &str,
                help: &str,
                (): (),
            ) -> prometheus::Result<Self> {
                registered(registry, Self::new(name, help)?)
            }
        }
    )+};
}

/// The metrics by labels: their spec is the label names.
macro_rules! labelled_metric {
    ($($kind:ty),+) => {$(
        impl Metric for $kind {
            /// The label names.
            type Spec = &'static [&'static str];
            fn register(
                registry: &Registry,
                name: &str,
                help: &str,
                labels: Self::Spec,
            ) -> prometheus::Result<Self> {
                registered(registry, Self::new(Opts::new(name, help), labels)?)
            }
        }
    )+};
}

plain_metric!(IntCounter, IntGauge, Gauge);
labelled_metric!(IntCounterVec, IntGaugeVec, GaugeVec);

impl Metric for Histogram {
    /// The buckets' upper bounds.
    type Spec = &'static [f64];
    fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        buckets: Self::Spec,
    ) -> prometheus::Result<Self> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        registered(registry, Self::with_opts(opts)?)
    }
}

impl Metric for HistogramVec {
    /// The label names and the buckets' upper bounds.
    type Spec = (&'static [&'static str], &'static [f64]);
    fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        (labels, buckets): Self::Spec,
    ) -> prometheus::Result<Self> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        registered(registry, Self::new(opts, labels)?)
    }
}

/// A doc comment as help text: its lines joined with single spaces, without the code marks.
pub fn help(doc: &str) -> String {
    doc.split_whitespace()
        .map(|word| word.replace('`', ""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Declares a binary's metrics struct, each metric once:
///
/// ```ignore
/// declare_metrics! {
///     /// Core's metrics and their registry.
///     pub struct CoreMetrics, names "maple_core_" {
///         /// Requests answered, by route template, method and status.
///         pub http_requests_total: IntCounterVec = &["route", "method", "status"],
///         /// Likes in this instance's buffer, waiting for their flush.
///         pub like_buffer: IntGauge,
///     }
/// }
/// ```
///
/// The struct gets a private `registry` and a private `register()` that creates every metric
/// in a new registry: the name is the prefix and the field's name, the help the field's doc
/// ([`help`]), the labels or buckets the value after `=` ([`Metric::Spec`]; none for `()`).
/// `NAMES` lists every name, in declaration order.
#[macro_export]
macro_rules! declare_metrics {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident, names $prefix:literal {
            $(
                $(#[doc = $doc:literal])+
                pub $field:ident: $ty:ty $(= $spec:expr)?
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            registry: ::prometheus::Registry,
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl $name {
            /// Every metric's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(concat!($prefix, stringify!($field))),+];

            /// Creates every metric in a new registry.
            fn register() -> ::prometheus::Result<Self> {
                let registry = ::prometheus::Registry::new();
                Ok(Self {
                    $(
                        $field: <$ty as $crate::metrics::Metric>::register(
                            &registry,
                            concat!($prefix, stringify!($field)),
                            &$crate::metrics::help(concat!($($doc, "\n"),+)),
                            $crate::declare_metrics!(@spec $($spec)?),
                        )?,
                    )+
                    registry,
                })
            }
        }
    };
    (@spec) => { () };
    (@spec $spec:expr) => { $spec };
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

/// A counter family over one label whose values are `L`; its [`Metric::Spec`] is the
/// label's name.
#[derive(Debug, Clone)]
pub struct Counters<L> {
    vec: IntCounterVec,
    label: std::marker::PhantomData<fn(L)>,
}

impl<L: Label> Metric for Counters<L> {
    /// The label's name.
    type Spec = &'static str;

    /// Registers the family with every value's series at zero.
    fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        label_name: Self::Spec,
    ) -> prometheus::Result<Self> {
        let vec = IntCounterVec::new(Opts::new(name, help), &[label_name])?;
        registry.register(Box::new(vec.clone()))?;
        create_every::<L, _>(&vec);
        Ok(Self {
            vec,
            label: std::marker::PhantomData,
        })
    }
}

impl<L: Label> Counters<L> {
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

/// A gauge family over one label whose values are `L`; its [`Metric::Spec`] is the label's
/// name.
#[derive(Debug, Clone)]
pub struct Gauges<L> {
    vec: IntGaugeVec,
    label: std::marker::PhantomData<fn(L)>,
}

impl<L: Label> Metric for Gauges<L> {
    /// The label's name.
    type Spec = &'static str;

    /// Registers the family with every value's series at zero.
    fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        label_name: Self::Spec,
    ) -> prometheus::Result<Self> {
        let vec = IntGaugeVec::new(Opts::new(name, help), &[label_name])?;
        registry.register(Box::new(vec.clone()))?;
        create_every::<L, _>(&vec);
        Ok(Self {
            vec,
            label: std::marker::PhantomData,
        })
    }
}

impl<L: Label> Gauges<L> {
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

    crate::declare_metrics! {
        /// A test struct.
        #[derive(Debug)]
        struct Declared, names "test_" {
            /// Things done, by `colour`:
            /// red or green.
            pub done_total: Counters<Colour> = "colour",
            /// Work waiting.
            pub waiting: IntGauge,
            /// Time taken.
            pub took_seconds: HistogramVec = (&["step"], &[0.1, 1.0]),
        }
    }

    #[test]
    fn a_declared_metric_takes_its_name_from_the_field_and_its_help_from_the_doc() {
        let declared = Declared::register().expect("unique names");
        declared.done_total.inc(Colour::Green);
        declared.waiting.set(2);
        declared
            .took_seconds
            .with_label_values(&["one"])
            .observe(0.5);
        let text = String::from_utf8(render(&declared.registry)).expect("utf-8");
        for line in [
            "# HELP test_done_total Things done, by colour: red or green.",
            r#"test_done_total{colour="red"} 0"#,
            r#"test_done_total{colour="green"} 1"#,
            "# HELP test_waiting Work waiting.",
            "test_waiting 2",
            r#"test_took_seconds_bucket{step="one",le="1"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert_eq!(
            Declared::NAMES,
            &["test_done_total", "test_waiting", "test_took_seconds"]
        );
    }
}
