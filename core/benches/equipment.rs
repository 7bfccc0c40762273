//! Storing a fetched equipment response: what each fetch costs core before it goes into the
//! tiers. `compress` is the identity body compressed here (what every fetch did before core
//! took the proxy's gzip); `from_gzip` is the proxy's gzip taken as it is (inflated once, to
//! hash it). The body is the real 350 KB response in `data/`; the gzip is zlib's level 6, as
//! the simulator (and a typical web server) sends it. Results and the command are in
//! `docs/benchmarks.md`.
//!
//! Run: `cargo bench -p maple-core --bench equipment`
#![expect(clippy::print_stdout, reason = "a benchmark's output is its report")]

use std::hint::black_box;
use std::path::PathBuf;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use maple_common::nexon::Ocid;
use maple_core::equipment::Entry;
use maple_core::nexon::MAX_BODY_BYTES;

fn equipment(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/evan_equip.json");
    let body = std::fs::read(path).expect("fixture");
    let gzip = Bytes::from(maple_common::encoding::gzip_at(&body, 6));
    let ocid = Ocid::from_bytes([7; 16]);
    let taken = Entry::from_gzip(gzip.clone(), MAX_BODY_BYTES).expect("valid gzip");
    assert_eq!(taken.etag(), Entry::compress(ocid.clone(), &body).etag());
    println!(
        "body {} bytes, level-6 gzip {} bytes, our level-1 gzip {} bytes",
        body.len(),
        gzip.len(),
        Entry::compress(ocid.clone(), &body).gzip.len()
    );

    let mut group = c.benchmark_group("equipment entry");
    group.bench_function("compress (identity from the proxy)", |b| {
        b.iter(|| Entry::compress(ocid.clone(), black_box(&body)));
    });
    group.bench_function("from_gzip (the proxy's gzip as it is)", |b| {
        b.iter(|| Entry::from_gzip(black_box(gzip.clone()), MAX_BODY_BYTES).expect("valid"));
    });
    group.finish();
}

criterion_group!(benches, equipment);
criterion_main!(benches);
