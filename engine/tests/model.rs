//! The engine agrees with a simple model (a BTreeMap of every version) on every read, with
//! data spread over the active memtable, frozen-then-merged checkpoints, and small blocks.

use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use bytes::Bytes;
use gnomon_engine::{Engine, EngineOptions, Version};

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// key -> version -> value (None = tombstone)
type Model = BTreeMap<Vec<u8>, BTreeMap<u128, Option<Bytes>>>;

fn model_get(model: &Model, key: &[u8], at: u128) -> Option<Bytes> {
    model.get(key)?.range(..=at).next_back()?.1.clone()
}

fn in_bounds(key: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let after_start = match start {
        Included(s) => key >= s.as_slice(),
        Excluded(s) => key > s.as_slice(),
        Unbounded => true,
    };
    let before_end = match end {
        Included(e) => key <= e.as_slice(),
        Excluded(e) => key < e.as_slice(),
        Unbounded => true,
    };
    after_start && before_end
}

fn model_scan(
    model: &Model,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
    at: u128,
    reverse: bool,
) -> Vec<(Vec<u8>, Bytes)> {
    let mut rows: Vec<_> = model
        .keys()
        .filter(|k| in_bounds(k, start, end))
        .filter_map(|k| model_get(model, k, at).map(|v| (k.clone(), v)))
        .collect();
    if reverse {
        rows.reverse();
    }
    rows
}

fn random_key(rng: &mut Lcg) -> Vec<u8> {
    // Short keys from a tiny alphabet: lots of shared prefixes and repeated keys.
    let len = 1 + rng.below(3) as usize;
    (0..len).map(|_| b"ab\0z"[rng.below(4) as usize]).collect()
}

fn random_bound(rng: &mut Lcg) -> Bound<Vec<u8>> {
    match rng.below(3) {
        0 => Unbounded,
        1 => Included(random_key(rng)),
        _ => Excluded(random_key(rng)),
    }
}

#[test]
fn engine_matches_the_model_across_layers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        checkpoint_block_size: 64,
        fsync: false,
        ..EngineOptions::default()
    };
    let (mut engine, _) = Engine::open(dir.path(), opts.clone()).unwrap();
    let mut model = Model::new();
    let mut rng = Lcg(42);
    let mut version = 0u128;
    for step in 0..400 {
        version += 1 + u128::from(rng.below(3));
        let writes: Vec<_> = (0..1 + rng.below(4))
            .map(|_| {
                let key = random_key(&mut rng);
                let value = (rng.below(4) != 0).then(|| Bytes::from(format!("{version}")));
                (key, value)
            })
            .collect();
        for (k, v) in &writes {
            model
                .entry(k.clone())
                .or_default()
                .insert(version, v.clone());
        }
        let ticket = engine.prepare_batch(Version(version)).unwrap();
        engine.apply_batch(ticket, writes);

        match step % 97 {
            30 | 60 => {
                engine.checkpoint(step).unwrap();
            }
            90 => {
                engine.checkpoint(step).unwrap();
                drop(engine);
                engine = Engine::open(dir.path(), opts.clone()).unwrap().0;
            }
            _ => {}
        }

        for _ in 0..3 {
            let at = u128::from(rng.below(version as u64 + 2));
            let key = random_key(&mut rng);
            assert_eq!(
                engine.get(&key, Version(at)),
                model_get(&model, &key, at),
                "get {key:?} at {at}"
            );
            let (start, end) = (random_bound(&mut rng), random_bound(&mut rng));
            let reverse = rng.below(2) == 0;
            let got: Vec<_> = engine
                .scan(start.clone(), end.clone(), Version(at), reverse)
                .collect();
            assert_eq!(
                got,
                model_scan(&model, &start, &end, at, reverse),
                "scan {start:?}..{end:?} at {at} reverse={reverse}"
            );
            let latest = model
                .get(&key)
                .and_then(|m| m.keys().next_back())
                .map(|v| Version(*v));
            assert_eq!(engine.latest_version(&key), latest);
        }
    }
}
